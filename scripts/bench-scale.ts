/**
 * Memory and cost as data grows (issue 12, item 6): `npm run bench:scale`. For each key count, a
 * single-member etcd 3.4 (/usr/bin/etcd) and then a single-member cairn, each on a fresh data dir,
 * loaded over direct gRPC (etcd's protos) with the same N keys of 1 KiB random values under
 * /registry/pods/.... Measured per server:
 *
 *   - RSS after loading (VmRSS of the server process, and its anonymous part: RssFile is mmapped
 *     files, bbolt's or LevelDB's tables, which the kernel can drop);
 *   - restart to healthy (SIGTERM, start on the same data dir, first successful Range; polled every
 *     100 ms, so ±0.1 s) and RSS right after the restart;
 *   - one unpaginated Range of the whole prefix;
 *   - a paginated list of the prefix, 500 keys per page (kube-apiserver's pattern: each page asks
 *     for [last key + \0, prefix end) with limit 500, and the server counts the rest of the range);
 *   - Maintenance.Snapshot streamed to a file with backpressure (time, size, and whether the
 *     trailing sha256 matches);
 *   - the writer stall during Maintenance.Defragment: one client puts a 64-byte value to a key
 *     outside the prefix in a sequential loop; once it has done WARMUP_PUTS puts, Defragment is
 *     called (no compaction before it, so both rewrite the whole live data set); the stall is the
 *     longest single put whose [start, end] overlaps the Defragment call. The Defragment's own
 *     duration and the writer's latency before it are reported alongside;
 *   - restart after kill -9 (start on the same data dir to the first Range): etcd's restart is the
 *     same either way; cairn's SIGTERM restart reads the key-index checkpoint its clean close
 *     wrote (mvcc/index-checkpoint.ts), after a kill it scans the key bucket.
 *
 * Prints a markdown table per key count (etcd, cairn, cairn/etcd) as soon as that size is done, and
 * at the end a summary of the ratios per size against issue 12's targets.
 *
 *   npx tsc -p tsconfig.json   # required first: cairn runs from dist/
 *   nice -n 5 npm run bench:scale -- [--keys 50000,100000,300000] [--concurrency 64] [--only etcd,cairn] [--json FILE]
 *
 * The machine is shared: compare the ratios of one run, not absolute numbers across runs.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { connect, must, type EtcdClient } from '../test/support/grpc-client';
import { startMember, type Member, type MemberKind } from '../test/support/member';

const PREFIX = '/registry/pods/';
const PAGE = 500;
const VALUE_BYTES = 1024;
const WRITER_KEY = Buffer.from('/bench-scale/defrag-writer');
const WRITER_VALUE_BYTES = 64;
/** Puts the defragment writer does before Defragment is called (its baseline latency). */
const WARMUP_PUTS = 200;
/** Puts after the Defragment returns before the writer stops (the put in flight at its end is counted). */
const COOLDOWN_PUTS = 20;

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

/** VmRSS, or one of its parts (RssAnon: heap and malloc; RssFile: mmapped files, LevelDB's tables and the binary). */
function rssMb(pid: number, field: 'VmRSS' | 'RssAnon' = 'VmRSS'): number {
  const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

/** The first key after every key with this prefix (etcd's GetPrefixRangeEnd). */
function prefixEnd(prefix: string): Buffer {
  const end = Buffer.from(prefix);
  end[end.length - 1]++;
  return end;
}

const keyOf = (i: number): Buffer => Buffer.from(`${PREFIX}ns-${i % 100}/pod-${String(i).padStart(7, '0')}`);

async function load(c: EtcdClient, n: number, concurrency: number): Promise<number> {
  const t0 = Date.now();
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let i = next++; i < n; i = next++) must(await c.put({ key: keyOf(i), value: randomBytes(VALUE_BYTES) }, { deadlineMs: 60_000 }), 'put');
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return (Date.now() - t0) / 1000;
}

async function fullRange(c: EtcdClient, n: number): Promise<number> {
  const t0 = Date.now();
  const r = must(await c.range({ key: Buffer.from(PREFIX), range_end: prefixEnd(PREFIX) }, { deadlineMs: 300_000 }), 'range') as { kvs: unknown[] };
  if (r.kvs.length !== n) throw new Error(`unpaginated range returned ${r.kvs.length} keys, want ${n}`);
  return (Date.now() - t0) / 1000;
}

async function paginatedList(c: EtcdClient, n: number): Promise<number> {
  const t0 = Date.now();
  let key = Buffer.from(PREFIX);
  let seen = 0;
  for (;;) {
    const r = must(await c.range({ key, range_end: prefixEnd(PREFIX), limit: PAGE }, { deadlineMs: 60_000 }), 'range page') as {
      kvs: Array<{ key: Buffer }>;
      more: boolean;
      count: string;
    };
    if (seen === 0 && Number(r.count) !== n) throw new Error(`first page count ${r.count}, want ${n}`);
    seen += r.kvs.length;
    if (!r.more) break;
    key = Buffer.concat([r.kvs[r.kvs.length - 1].key, Buffer.from([0])]);
  }
  if (seen !== n) throw new Error(`paginated list saw ${seen} keys, want ${n}`);
  return (Date.now() - t0) / 1000;
}

async function snapshot(c: EtcdClient, file: string): Promise<{ snapshotS: number; snapshotMb: number }> {
  const t0 = Date.now();
  const r = must(await c.snapshotToFile(file, { deadlineMs: 600_000 }), 'snapshot');
  const snapshotS = (Date.now() - t0) / 1000;
  if (!r.hashOk) throw new Error(`snapshot of ${r.bytes} bytes: the trailing sha256 does not match`);
  if (fs.statSync(file).size !== r.bytes) throw new Error(`snapshot file is ${fs.statSync(file).size} bytes, ${r.bytes} received`);
  return { snapshotS, snapshotMb: r.bytes / 1024 ** 2 };
}

const quantile = (sorted: number[], q: number): number => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] : NaN);

interface DefragResult {
  defragS: number;
  stallMs: number;
  putsDuringDefrag: number;
  baselineP50Ms: number;
  baselineMaxMs: number;
}

/** One sequential writer on its own connection; Defragment on another; the longest put overlapping the Defragment. */
async function defragStall(endpoint: string): Promise<DefragResult> {
  const writer = connect(endpoint);
  const admin = connect(endpoint);
  const value = Buffer.alloc(WRITER_VALUE_BYTES, 'w');
  const puts: Array<{ s: number; e: number }> = [];
  let stopAfter = Infinity;
  let onWarm!: () => void;
  const warm = new Promise<void>((r) => (onWarm = r));
  const loop = (async (): Promise<void> => {
    while (puts.length < stopAfter) {
      const s = performance.now();
      must(await writer.put({ key: WRITER_KEY, value }, { deadlineMs: 300_000 }), 'writer put');
      puts.push({ s, e: performance.now() });
      if (puts.length === WARMUP_PUTS) onWarm();
    }
  })();
  try {
    await Promise.race([warm, loop]);
    const t0 = performance.now();
    must(await admin.defragment({}, { deadlineMs: 600_000 }), 'defragment');
    const t1 = performance.now();
    stopAfter = puts.length + COOLDOWN_PUTS;
    await loop;
    const before = puts.filter((p) => p.e <= t0).map((p) => p.e - p.s).sort((a, b) => a - b);
    const during = puts.filter((p) => p.s < t1 && p.e > t0);
    return {
      defragS: (t1 - t0) / 1000,
      stallMs: Math.max(0, ...during.map((p) => p.e - p.s)),
      putsDuringDefrag: during.length,
      baselineP50Ms: quantile(before, 0.5),
      baselineMaxMs: before[before.length - 1],
    };
  } finally {
    stopAfter = 0;
    await loop.catch(() => undefined);
    writer.close();
    admin.close();
  }
}

interface Row {
  kind: MemberKind;
  loadS: number;
  rssLoadedMb: number;
  anonLoadedMb: number;
  stopS: number;
  restartS: number;
  rssRestartedMb: number;
  anonRestartedMb: number;
  fullRangeS: number;
  paginatedS: number;
  snapshotS: number;
  snapshotMb: number;
  defrag: DefragResult;
  /** kill -9, then start on the same data dir to the first Range (cairn: no index checkpoint). */
  crashRestartS: number;
  loadAvg: [number, number];
}

async function measure(kind: MemberKind, n: number, concurrency: number): Promise<Row> {
  const m: Member = await startMember({ kind, readyTimeoutMs: 300_000, extraArgs: ['--quota-backend-bytes', String(8 * 1024 ** 3)] });
  const loadStart = os.loadavg()[0];
  try {
    let c = connect(m.endpoint);
    const loadS = await load(c, n, concurrency);
    const rssLoadedMb = rssMb(m.pid);
    const anonLoadedMb = rssMb(m.pid, 'RssAnon');
    c.close();
    const t0 = Date.now();
    await m.stop(60_000);
    const stopS = (Date.now() - t0) / 1000;
    await m.restart(); // the member is stopped: this only starts it and waits for a Range
    const restartS = (Date.now() - t0) / 1000;
    const rssRestartedMb = rssMb(m.pid);
    const anonRestartedMb = rssMb(m.pid, 'RssAnon');
    c = connect(m.endpoint);
    const fullRangeS = await fullRange(c, n);
    const paginatedS = await paginatedList(c, n);
    const { snapshotS, snapshotMb } = await snapshot(c, path.join(m.tmpDir, 'scale.snapshot.db'));
    fs.rmSync(path.join(m.tmpDir, 'scale.snapshot.db'));
    c.close();
    const defrag = await defragStall(m.endpoint);
    const t1 = Date.now();
    await m.kill('SIGKILL');
    await m.restart();
    const crashRestartS = (Date.now() - t1) / 1000;
    const loadAvg: [number, number] = [loadStart, os.loadavg()[0]];
    return { kind, loadS, rssLoadedMb, anonLoadedMb, stopS, restartS, rssRestartedMb, anonRestartedMb, fullRangeS, paginatedS, snapshotS, snapshotMb, defrag, crashRestartS, loadAvg };
  } finally {
    await m.cleanup();
  }
}

const f = (x: number, d = 1): string => (Number.isFinite(x) ? x.toFixed(d) : '-');

/** The rows of issue 12's table, with its targets at 300k keys (cairn/etcd ≤ target). */
const TARGETS: Array<{ label: string; pick: (r: Row) => number; target: number }> = [
  { label: 'RSS after loading', pick: (r) => r.rssLoadedMb, target: 1.0 },
  { label: 'restart to healthy', pick: (r) => r.restartS, target: 1.0 },
  { label: 'one unpaginated range of every key', pick: (r) => r.fullRangeS, target: 1.0 },
  { label: 'snapshot (Maintenance.Snapshot)', pick: (r) => r.snapshotS, target: 1.0 },
  { label: `paginated list, ${PAGE} per page`, pick: (r) => r.paginatedS, target: 0.5 },
  { label: 'longest writer stall during defragment', pick: (r) => r.defrag.stallMs, target: 0.25 },
];

function printSize(n: number, rows: Row[], concurrency: number): void {
  const two = rows.length === 2;
  console.log(`\n### ${n} keys x ${VALUE_BYTES} B (${new Date().toISOString()}, load average ${rows.map((r) => `${r.kind} ${f(r.loadAvg[0])}→${f(r.loadAvg[1])}`).join(', ')})\n`);
  console.log(`| ${n} keys | ` + rows.map((r) => (r.kind === 'etcd' ? 'etcd 3.4' : r.kind)).join(' | ') + (two ? ' | cairn/etcd |' : ' |'));
  console.log('|---|' + rows.map(() => '---:|').join('') + (two ? '---:|' : ''));
  const line = (label: string, pick: (r: Row) => number, unit: string, d = 1): void => {
    const vals = rows.map(pick);
    const ratio = two ? ` | ${f(vals[1] / vals[0], 2)}x` : '';
    console.log(`| ${label} | ${vals.map((v) => (unit ? `${f(v, d)} ${unit}` : f(v, d))).join(' | ')}${ratio} |`);
  };
  line(`load (puts, concurrency ${concurrency})`, (r) => r.loadS, 's');
  line('RSS after loading', (r) => r.rssLoadedMb, 'MB', 0);
  line('  of which anonymous (RssAnon)', (r) => r.anonLoadedMb, 'MB', 0);
  line('restart to healthy (SIGTERM to first Range)', (r) => r.restartS, 's');
  line('  of which stopping', (r) => r.stopS, 's');
  line('RSS after restart', (r) => r.rssRestartedMb, 'MB', 0);
  line('  of which anonymous (RssAnon)', (r) => r.anonRestartedMb, 'MB', 0);
  line('one unpaginated range of every key', (r) => r.fullRangeS, 's', 2);
  line(`paginated list, ${PAGE} per page`, (r) => r.paginatedS, 's', 2);
  line('snapshot (Maintenance.Snapshot to a file)', (r) => r.snapshotS, 's', 2);
  line('  snapshot size', (r) => r.snapshotMb, 'MB', 0);
  line('defragment (its own duration)', (r) => r.defrag.defragS, 's', 2);
  line('longest writer stall during defragment', (r) => r.defrag.stallMs, 'ms', 0);
  line('  writer puts overlapping the defragment', (r) => r.defrag.putsDuringDefrag, '', 0);
  line('  writer put p50 before it', (r) => r.defrag.baselineP50Ms, 'ms', 2);
  line('  writer put max before it', (r) => r.defrag.baselineMaxMs, 'ms', 1);
  line('restart after kill -9 (to first Range)', (r) => r.crashRestartS, 's');
}

function printSummary(results: Array<{ n: number; rows: Row[] }>): void {
  const both = results.filter((r) => r.rows.length === 2);
  if (!both.length) return;
  console.log(`\n### cairn/etcd by key count (issue 12's targets are at 300k keys)\n`);
  console.log('| cairn/etcd | ' + both.map((r) => `${r.n / 1000}k`).join(' | ') + ' | target | at the largest size |');
  console.log('|---|' + both.map(() => '---:|').join('') + '---:|---|');
  for (const t of TARGETS) {
    const ratios = both.map((r) => t.pick(r.rows[1]) / t.pick(r.rows[0]));
    const last = ratios[ratios.length - 1];
    console.log(`| ${t.label} | ${ratios.map((x) => `${f(x, 2)}x`).join(' | ')} | ≤ ${f(t.target, 2)}x | ${last <= t.target ? 'met' : 'not met'} |`);
  }
}

async function main(): Promise<void> {
  const sizes = arg('keys', '50000,100000,300000').split(',').map(Number);
  if (sizes.some((n) => !Number.isInteger(n) || n <= 0)) throw new Error(`--keys wants a comma-separated list of key counts`);
  const concurrency = Number(arg('concurrency', '64'));
  const kinds = arg('only', 'etcd,cairn').split(',') as MemberKind[];
  const jsonFile = arg('json', '');
  const results: Array<{ n: number; rows: Row[] }> = [];
  for (const n of sizes) {
    const rows: Row[] = [];
    for (const kind of kinds) {
      console.error(`${new Date().toISOString()} ${kind}: ${n} keys of ${VALUE_BYTES} B, load average ${f(os.loadavg()[0])} ...`);
      rows.push(await measure(kind, n, concurrency));
      console.error(JSON.stringify(rows[rows.length - 1]));
    }
    results.push({ n, rows });
    if (jsonFile) fs.writeFileSync(jsonFile, JSON.stringify(results, null, 2));
    printSize(n, rows, concurrency);
  }
  printSummary(results);
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
