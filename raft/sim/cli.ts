import { runSeed, reproduceCommand, type SimResult } from './simulator';
import type { TestingBugs } from '../config';

/**
 * npm run sim -- --seeds N --start S [--members 1|3|5] [--ticks T] [--trace] [--bug name]
 *
 * Runs seeds S..S+N-1 of the deterministic cluster simulator. A failing seed prints the one-line
 * command that replays it; --trace dumps that seed's message trace.
 */
interface Args {
  seeds: number;
  start: number;
  members?: number;
  ticks?: number;
  trace: boolean;
  bugs?: TestingBugs;
}

const BUGS: Record<string, keyof TestingBugs> = {
  'wrong-term-votes': 'countVotesFromWrongTerm',
  'commit-prior-term': 'commitPriorTermByCount',
  'no-log-check': 'grantVoteWithoutLogCheck',
  'commit-past-last-new': 'followerCommitPastLastNew',
  'self-ack-unpersisted': 'leaderSelfAckUnpersisted',
  'heartbeat-commit-unclamped': 'heartbeatCommitUnclamped',
  'read-without-quorum': 'readIndexWithoutQuorum',
  'read-before-term-commit': 'readIndexBeforeCommitInTerm',
};

function parse(argv: string[]): Args {
  const a: Args = { seeds: 100, start: 1, trace: false };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    const v = (): string => {
      const x = argv[++i];
      if (x === undefined) throw new Error(`missing value for ${k}`);
      return x;
    };
    if (k === '--seeds') a.seeds = Number(v());
    else if (k === '--start') a.start = Number(v());
    else if (k === '--members') a.members = Number(v());
    else if (k === '--ticks') a.ticks = Number(v());
    else if (k === '--trace') a.trace = true;
    else if (k === '--bug') {
      const name = v();
      const key = BUGS[name];
      if (!key) throw new Error(`unknown bug ${name}; one of ${Object.keys(BUGS).join(', ')}`);
      a.bugs = { ...a.bugs, [key]: true };
    } else if (k === '--help' || k === '-h') {
      process.stdout.write(`usage: npm run sim -- --seeds N --start S [--members 1|3|5] [--ticks T] [--trace] [--bug ${Object.keys(BUGS).join('|')}]\n`);
      process.exit(0);
    } else throw new Error(`unknown argument ${k}`);
  }
  if (!Number.isInteger(a.seeds) || a.seeds < 1 || !Number.isInteger(a.start)) throw new Error('--seeds and --start must be integers');
  if (a.members !== undefined && ![1, 3, 5].includes(a.members)) throw new Error("--members must be 1, 3 or 5");
  return a;
}

function main(): void {
  const args = parse(process.argv.slice(2));
  const t0 = Date.now();
  const failures: SimResult[] = [];
  let elections = 0;
  let committed = 0;
  let reads = 0;
  let crashes = 0;
  for (let s = args.start; s < args.start + args.seeds; s++) {
    const r = runSeed({ seed: s, members: args.members, ticks: args.ticks, trace: args.trace, bugs: args.bugs });
    elections += r.stats.leaderElections;
    committed += r.stats.committed;
    reads += r.stats.reads;
    crashes += r.stats.crashes;
    if (args.trace) for (const line of r.trace) process.stdout.write(`${line}\n`);
    if (!r.ok) {
      failures.push(r);
      process.stdout.write(`seed ${s} FAILED (${r.members} members): ${r.error ?? ''}\n  reproduce: ${reproduceCommand(s, args.members, args.ticks)}\n`);
    }
  }
  const ms = Date.now() - t0;
  process.stdout.write(
    `${args.seeds} seeds [${args.start}..${args.start + args.seeds - 1}] in ${(ms / 1000).toFixed(1)}s: ` +
      `${args.seeds - failures.length} passed, ${failures.length} failed; ` +
      `${elections} leader elections, ${committed} entries committed, ${reads} reads checked, ${crashes} crashes\n`,
  );
  process.exitCode = failures.length > 0 ? 1 : 0;
}

main();
