/**
 * One verification run: start a cluster behind its proxies, run a workload while the nemesis injects
 * its seeded fault schedule, heal everything, take the final read, stop the cluster, then check the
 * history and write the results. A run directory holds:
 *
 *   history.jsonl   every operation, nemesis event and watch observation (cluster-tests/history.ts)
 *   verdicts.json   each checker's verdict, with minimal counterexamples
 *   report.html     the self-contained report (timeline per client, fault windows, violations)
 *   schedule.json   the planned fault schedule (a pure function of the seed)
 *   run.json        the options and the summary
 *   n1/ n1.log ...  each member's data dir and log
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { overallStatus, runCheckers } from './checkers';
import type { Verdict } from './checkers/verdict';
import { Cluster, type Crash } from './cluster';
import { pairOperations, indexHistory } from './history';
import { Nemesis, type NemesisFamily, planSchedule } from './nemesis';
import { Prng } from './prng';
import { Recorder } from './recorder';
import { renderHtmlReport } from './report/html';
import { DEFAULT_RATE_HZ, RateLimiter, type WorkloadContext } from './workloads/common';
import { makeWorkload } from './workloads';

/** Default clients per member (each its own connection). */
export const DEFAULT_CLIENTS_PER_MEMBER = 3;
/** Longest run the CLI accepts. */
export const MAX_RUN_S = 3_600;
/** How long the workload may take to wind down after the run's time is up. */
export const WIND_DOWN_TIMEOUT_MS = 30_000;

export interface RunOptions {
  readonly workload: string;
  readonly nemeses: readonly NemesisFamily[];
  readonly nodes: number;
  readonly timeS: number;
  readonly seed: number;
  /** Run directory (default: a fresh temp dir). */
  readonly dir?: string;
  readonly clientsPerMember?: number;
  readonly rateHz?: number;
  /** The harness self-test: members serve linearizable reads from local state (no ReadIndex). */
  readonly unsafeLocalReads?: boolean;
  /** Members lose unfsynced writes when killed (a power cut; pair with the `crash` nemesis). */
  readonly loseUnsyncedWrites?: boolean;
  /** The durability self-test: members acknowledge writes without fsync. */
  readonly unsafeNoFsync?: boolean;
  /** --snapshot-count for the members (default cluster.ts SNAPSHOT_COUNT, low so snapshots happen). */
  readonly snapshotCount?: number;
  /** Members and clients over mutual TLS (cluster-tests/tls.ts). */
  readonly tls?: boolean;
  /** Progress lines (default: none). */
  readonly log?: (line: string) => void;
}

export interface RunResult {
  readonly dir: string;
  readonly workload: string;
  readonly nemesis: string;
  readonly seed: number;
  readonly ops: { readonly ok: number; readonly fail: number; readonly info: number };
  readonly faults: number;
  readonly verdicts: readonly Verdict[];
  /** Members that exited by themselves (a cairn bug even if every checker passes). */
  readonly crashes: readonly Crash[];
  /**
   * pass / fail (a checker found a violation) / crash (a member process died by itself) / unknown
   * (a checker gave up) / error (the harness itself failed).
   */
  readonly overall: 'pass' | 'fail' | 'crash' | 'unknown' | 'error';
  readonly errors: readonly string[];
  readonly durationS: number;
}

/** Processes started by runs in progress, for Ctrl-C. */
const activeClusters = new Set<Cluster>();
let signalHandlersInstalled = false;
function installSignalHandlers(): void {
  if (signalHandlersInstalled) return;
  signalHandlersInstalled = true;
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      process.stderr.write(`\n${sig}: stopping ${activeClusters.size} cluster(s)\n`);
      void Promise.all([...activeClusters].map((c) => c.stop())).finally(() => process.exit(130));
    });
  }
}

export async function runOnce(opts: RunOptions): Promise<RunResult> {
  if (!(opts.timeS > 0 && opts.timeS <= MAX_RUN_S)) throw new Error(`--time must be in (0, ${MAX_RUN_S}]`);
  const log = opts.log ?? (() => undefined);
  const t0 = Date.now();
  const nemesisName = opts.nemeses.length === 0 ? 'none' : opts.nemeses.join(',');
  const dir = opts.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), `cairn-jepsen-${opts.workload}-s${opts.seed}-`));
  fs.mkdirSync(dir, { recursive: true });
  const runMs = opts.timeS * 1000;
  const schedule = planSchedule(opts.seed, opts.nemeses, runMs);
  fs.writeFileSync(path.join(dir, 'schedule.json'), JSON.stringify({ seed: opts.seed, nemeses: opts.nemeses, runMs, schedule }, null, 2) + '\n');
  const workload = makeWorkload(opts.workload);
  const rand = new Prng(opts.seed);
  const rec = new Recorder(path.join(dir, 'history.jsonl'));
  const errors: string[] = [];
  log(`run dir ${dir}`);
  log(`${schedule.length} faults planned: ${schedule.map((f) => `${f.family}@${(f.atMs / 1000).toFixed(0)}s`).join(' ')}`);

  installSignalHandlers();
  const cluster = await Cluster.start({ dir, size: opts.nodes, token: `jepsen-${opts.seed}`, rand: rand.fork('cluster'), unsafeLocalReads: opts.unsafeLocalReads, loseUnsyncedWrites: opts.loseUnsyncedWrites, unsafeNoFsync: opts.unsafeNoFsync, snapshotCount: opts.snapshotCount, tls: opts.tls });
  activeClusters.add(cluster);
  log(`cluster of ${opts.nodes} up (leader ${(await cluster.leader())?.name ?? '?'})`);
  const nemesis = new Nemesis(cluster, rec, schedule);
  try {
    let stop = false;
    const ctx: WorkloadContext = {
      cluster,
      rec,
      rand: rand.fork('workload'),
      clientsPerMember: opts.clientsPerMember ?? DEFAULT_CLIENTS_PER_MEMBER,
      limiter: new RateLimiter(opts.rateHz ?? DEFAULT_RATE_HZ),
      stopped: () => stop,
    };
    const running = workload.run(ctx).catch((e: unknown) => errors.push(`workload: ${e instanceof Error ? e.stack : String(e)}`));
    // Handled now: a rejection must not go unobserved while the run sleeps below.
    const faults = nemesis.run(() => stop).catch((e: unknown) => errors.push(`nemesis: ${e instanceof Error ? e.stack : String(e)}`));
    const timer = setInterval(() => log(`  t=${((Date.now() - t0) / 1000).toFixed(0)}s ${rec.entries.length} history entries`), 10_000);
    await new Promise((r) => setTimeout(r, runMs));
    stop = true;
    clearInterval(timer);
    await faults;
    await withTimeout(running, WIND_DOWN_TIMEOUT_MS, 'workload wind-down');
    log('healing every fault');
    await nemesis.healAll();
    await cluster.waitHealthy();
    await workload.finalRead(ctx);
  } catch (e) {
    errors.push(e instanceof Error ? (e.stack ?? e.message) : String(e));
    await nemesis.healAll().catch(() => undefined);
  } finally {
    errors.push(...nemesis.errors);
    rec.close();
    await cluster.stop();
    activeClusters.delete(cluster);
  }

  log(`checking ${rec.entries.length} history entries`);
  const history = indexHistory(rec.entries);
  const verdicts = runCheckers(history);
  const ops = { ok: 0, fail: 0, info: 0 };
  for (const op of pairOperations(history)) if (op.f !== 'final-read') ops[op.outcome]++;
  const faults = rec.entries.filter((e) => e.kind === 'nemesis' && e.phase === 'start').length;
  const crashes = [...cluster.crashes];
  const checked = overallStatus(verdicts);
  const overall = checked === 'fail' ? 'fail' : crashes.length > 0 ? 'crash' : errors.length > 0 ? 'error' : checked;
  const durationS = (Date.now() - t0) / 1000;
  const result: RunResult = { dir, workload: opts.workload, nemesis: nemesisName, seed: opts.seed, ops, faults, verdicts, crashes, overall, errors, durationS };
  fs.writeFileSync(path.join(dir, 'verdicts.json'), JSON.stringify({ history: path.join(dir, 'history.jsonl'), overall, verdicts }, null, 2) + '\n');
  const subtitle = `workload ${opts.workload}, nemesis ${nemesisName}, ${opts.nodes} nodes, ${opts.timeS} s, seed ${opts.seed}${opts.unsafeLocalReads ? ', UNSAFE LOCAL READS (harness self-test)' : ''}${opts.loseUnsyncedWrites ? ', kills lose unsynced writes' : ''}${opts.unsafeNoFsync ? ', UNSAFE NO FSYNC (harness self-test)' : ''}${opts.tls ? ', mTLS' : ''}`;
  fs.writeFileSync(path.join(dir, 'report.html'), renderHtmlReport(history, verdicts, { title: `cairn ${opts.workload} / ${nemesisName}`, subtitle }));
  const { verdicts: _v, ...summary } = result;
  fs.writeFileSync(path.join(dir, 'run.json'), JSON.stringify({ options: { ...opts, log: undefined }, ...summary, verdicts: verdicts.map((v) => ({ checker: v.checker, status: v.status, summary: v.summary })) }, null, 2) + '\n');
  return result;
}

async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} took more than ${ms} ms`)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

/** The summary table: one row per run, one column per checker. */
export function summaryTable(results: readonly RunResult[]): string {
  const checkers = [...new Set(results.flatMap((r) => r.verdicts.map((v) => v.checker)))];
  const header = ['workload', 'nemesis', 'seed', 'ok', 'fail', 'info', 'faults', 'crashes', ...checkers, 'overall'];
  const rows = results.map((r) => [
    r.workload,
    r.nemesis,
    String(r.seed),
    String(r.ops.ok),
    String(r.ops.fail),
    String(r.ops.info),
    String(r.faults),
    String(r.crashes.length),
    ...checkers.map((c) => r.verdicts.find((v) => v.checker === c)?.status ?? '-'),
    r.overall.toUpperCase(),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const line = (cells: readonly string[]): string => cells.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}
