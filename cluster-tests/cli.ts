/**
 * `npm run jepsen -- [options]`: run the verification harness against this build's bin/cairn.
 *
 *   npm run build
 *   npm run jepsen -- --workload register --nemesis partition,kill --nodes 3 --time 60 --seed 42
 *
 * Options:
 *   --workload w[,w...]   register | list-append | kubernetes | lease-lock | all (default register);
 *                         several workloads run one after another, each with its own cluster
 *   --nemesis n[,n...]    partition, network, kill, pause, member, snapshot, crash, all, none
 *                         (default all; crash = SIGKILL every member at once)
 *   --nodes N             3 or 5 (default 3)
 *   --time S              seconds of workload per run (default 60)
 *   --seed N              the fault schedule is a function of the seed (default 1)
 *   --dir D               parent directory of the run directories (default: a temp dir per run)
 *   --clients N           clients per member (default 3)
 *   --rate HZ             cap on the total operation rate (default 200)
 *   --snapshot-count N    the members' --snapshot-count (default 200, as low as Jepsen's etcd suite,
 *                         so snapshots and snapshot catch-up happen within a run)
 *   --unsafe-local-reads  the harness self-test: members serve linearizable reads without ReadIndex;
 *                         the checkers must then report stale reads
 *   --lose-unsynced       members keep unfsynced writes in memory only, so a kill loses them as a
 *                         power cut would (a storage fault layer; use with --nemesis crash)
 *   --unsafe-no-fsync     the durability self-test: members acknowledge writes without fsync; with
 *                         --lose-unsynced and --nemesis crash the checkers must report lost writes
 *   --tls                 members serve client and peer traffic over mutual TLS (certificates made
 *                         with openssl into <run dir>/pki); every harness client presents one
 *
 * Exit status: 0 every run passed (lease-lock warnings allowed), 1 a violation, a member crash or a
 * harness error,
 * 2 inconclusive (a checker hit a search limit), 3 bad usage.
 */
import * as path from 'node:path';
import { NEMESIS_FAMILIES, parseNemeses } from './nemesis';
import { summaryTable as checkerTable } from './report/summary';
import { type RunResult, DEFAULT_CLIENTS_PER_MEMBER, runOnce, summaryTable } from './run';
import { DEFAULT_RATE_HZ } from './workloads/common';
import { WORKLOADS } from './workloads';

export const EXIT_PASS = 0;
export const EXIT_VIOLATION = 1;
export const EXIT_INCONCLUSIVE = 2;
export const EXIT_USAGE = 3;

export interface CliOptions {
  workloads: string[];
  nemesis: string;
  nodes: number;
  timeS: number;
  seed: number;
  dir?: string;
  clients: number;
  rateHz: number;
  snapshotCount?: number;
  unsafeLocalReads: boolean;
  loseUnsynced: boolean;
  unsafeNoFsync: boolean;
  tls: boolean;
}

export function parseArgs(argv: readonly string[]): CliOptions {
  const o: CliOptions = { workloads: ['register'], nemesis: 'all', nodes: 3, timeS: 60, seed: 1, clients: DEFAULT_CLIENTS_PER_MEMBER, rateHz: DEFAULT_RATE_HZ, unsafeLocalReads: false, loseUnsynced: false, unsafeNoFsync: false, tls: false };
  const num = (flag: string, v: string | undefined): number => {
    const n = Number(v);
    if (v === undefined || !Number.isFinite(n)) throw new Error(`${flag} needs a number`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const [flag, inline] = a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined];
    const value = (): string | undefined => inline ?? argv[++i];
    switch (flag) {
      case '--workload':
      case '-w': {
        const v = value() ?? '';
        o.workloads = v === 'all' ? Object.keys(WORKLOADS) : v.split(',').filter(Boolean);
        for (const w of o.workloads) if (WORKLOADS[w] === undefined) throw new Error(`unknown workload "${w}" (known: ${Object.keys(WORKLOADS).join(', ')}, all)`);
        break;
      }
      case '--nemesis':
        o.nemesis = value() ?? '';
        parseNemeses(o.nemesis);
        break;
      case '--nodes':
        o.nodes = num(flag, value());
        if (o.nodes !== 3 && o.nodes !== 5) throw new Error('--nodes must be 3 or 5');
        break;
      case '--time':
        o.timeS = num(flag, value());
        break;
      case '--seed':
        o.seed = num(flag, value());
        break;
      case '--dir':
        o.dir = value();
        break;
      case '--clients':
        o.clients = num(flag, value());
        break;
      case '--rate':
        o.rateHz = num(flag, value());
        break;
      case '--snapshot-count':
        o.snapshotCount = num(flag, value());
        break;
      case '--unsafe-local-reads':
        o.unsafeLocalReads = true;
        break;
      case '--lose-unsynced':
        o.loseUnsynced = true;
        break;
      case '--unsafe-no-fsync':
        o.unsafeNoFsync = true;
        break;
      case '--tls':
        o.tls = true;
        break;
      default:
        throw new Error(`unknown option ${a}`);
    }
  }
  return o;
}

export async function main(argv: readonly string[], log: (line: string) => void = (l) => process.stdout.write(l + '\n')): Promise<number> {
  let o: CliOptions;
  try {
    o = parseArgs(argv);
  } catch (e) {
    log(`jepsen: ${(e as Error).message}`);
    log(`usage: npm run jepsen -- --workload register --nemesis ${NEMESIS_FAMILIES.slice(0, 2).join(',')} --nodes 3 --time 60 --seed 42 (see cluster-tests/cli.ts)`);
    return EXIT_USAGE;
  }
  const results: RunResult[] = [];
  for (const w of o.workloads) {
    log(`== ${w} / nemesis ${o.nemesis} / ${o.nodes} nodes / ${o.timeS} s / seed ${o.seed}${o.unsafeLocalReads ? ' / UNSAFE LOCAL READS' : ''}${o.loseUnsynced ? ' / kills lose unsynced writes' : ''}${o.unsafeNoFsync ? ' / UNSAFE NO FSYNC' : ''}${o.tls ? ' / mTLS' : ''}`);
    const r = await runOnce({
      workload: w,
      nemeses: parseNemeses(o.nemesis),
      nodes: o.nodes,
      timeS: o.timeS,
      seed: o.seed,
      dir: o.dir === undefined ? undefined : path.join(o.dir, `${w}-seed${o.seed}`),
      clientsPerMember: o.clients,
      rateHz: o.rateHz,
      unsafeLocalReads: o.unsafeLocalReads,
      loseUnsyncedWrites: o.loseUnsynced,
      unsafeNoFsync: o.unsafeNoFsync,
      snapshotCount: o.snapshotCount,
      tls: o.tls,
      log: (l) => log(`  ${l}`),
    });
    results.push(r);
    log('');
    log(checkerTable(r.verdicts));
    for (const c of r.crashes) log(`  CRASH: member ${c.member} exited by itself (${c.exit}) at ${c.atIso}:\n    ${c.logExcerpt.split('\n').join('\n    ')}`);
    for (const e of r.errors) log(`  harness error: ${e}`);
    log(`  ${r.overall.toUpperCase()} in ${r.durationS.toFixed(0)} s; report ${path.join(r.dir, 'report.html')}`);
    log('');
  }
  log(summaryTable(results));
  if (results.some((r) => r.overall === 'fail' || r.overall === 'crash' || r.overall === 'error')) return EXIT_VIOLATION;
  if (results.some((r) => r.overall === 'unknown')) return EXIT_INCONCLUSIVE;
  return EXIT_PASS;
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e: unknown) => {
      process.stderr.write(`jepsen: ${e instanceof Error ? e.stack : String(e)}\n`);
      process.exit(EXIT_VIOLATION);
    },
  );
}
