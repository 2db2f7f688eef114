/**
 * Memory and cost as data grows (issue 12): a single-member cairn and a single-member etcd 3.4
 * (/usr/bin/etcd), side by side in one run, each loaded with the same N keys of 1 KiB random values
 * under /registry/pods/..., over direct gRPC (etcd's protos). Prints, per server:
 *
 *   - RSS after loading (VmRSS of the server process, and its anonymous part: RssFile is mmapped
 *     files, bbolt's or LevelDB's tables, which the kernel can drop);
 *   - restart to healthy (SIGTERM, start on the same data dir, first successful Range; polled every
 *     100 ms, so ±0.1 s) and RSS right after the restart;
 *   - one unpaginated Range of the whole prefix;
 *   - a paginated list of the prefix, 500 keys per page (kube-apiserver's pattern: each page asks
 *     for [last key + \0, prefix end) with limit 500, and the server counts the rest of the range).
 *
 *   npx vite-node scripts/bench-memory.ts -- [--keys 100000] [--concurrency 64] [--only cairn,etcd]
 *
 * Needs `npx tsc -p tsconfig.json` first (cairn runs from dist/). The machine is shared: compare
 * the ratios of one run, not absolute numbers across runs.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { connect, must, type EtcdClient } from '../test/support/grpc-client';
import { startMember, type Member, type MemberKind } from '../test/support/member';

const PREFIX = '/registry/pods/';
const PAGE = 500;
const VALUE_BYTES = 1024;

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
}

async function measure(kind: MemberKind, n: number, concurrency: number): Promise<Row> {
  const m: Member = await startMember({ kind, readyTimeoutMs: 300_000, extraArgs: ['--quota-backend-bytes', String(8 * 1024 ** 3)] });
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
    c.close();
    return { kind, loadS, rssLoadedMb, anonLoadedMb, stopS, restartS, rssRestartedMb, anonRestartedMb, fullRangeS, paginatedS };
  } finally {
    await m.cleanup();
  }
}

async function main(): Promise<void> {
  const n = Number(arg('keys', '100000'));
  const concurrency = Number(arg('concurrency', '64'));
  const kinds = arg('only', 'etcd,cairn').split(',') as MemberKind[];
  const rows: Row[] = [];
  for (const kind of kinds) {
    console.error(`${kind}: loading ${n} keys of ${VALUE_BYTES} B ...`);
    rows.push(await measure(kind, n, concurrency));
    console.error(JSON.stringify(rows[rows.length - 1]));
  }
  const f = (x: number, d = 1): string => x.toFixed(d);
  console.log(`\n${n} keys x ${VALUE_BYTES} B, ${new Date().toISOString()}`);
  console.log('| | ' + rows.map((r) => r.kind).join(' | ') + (rows.length === 2 ? ' | ratio |' : ' |'));
  console.log('|---|' + rows.map(() => '---:|').join('') + (rows.length === 2 ? '---:|' : ''));
  const line = (label: string, pick: (r: Row) => number, unit: string, d = 1): void => {
    const vals = rows.map(pick);
    const ratio = rows.length === 2 ? ` | ${f(vals[1] / vals[0], 2)}x` : '';
    console.log(`| ${label} | ${vals.map((v) => `${f(v, d)} ${unit}`).join(' | ')}${ratio} |`);
  };
  line('load (puts, concurrency ' + concurrency + ')', (r) => r.loadS, 's');
  line('RSS after loading', (r) => r.rssLoadedMb, 'MB', 0);
  line('  of which anonymous (RssAnon)', (r) => r.anonLoadedMb, 'MB', 0);
  line('restart to healthy (SIGTERM to first Range)', (r) => r.restartS, 's');
  line('  of which stopping', (r) => r.stopS, 's');
  line('RSS after restart', (r) => r.rssRestartedMb, 'MB', 0);
  line('  of which anonymous (RssAnon)', (r) => r.anonRestartedMb, 'MB', 0);
  line('one unpaginated range', (r) => r.fullRangeS, 's', 2);
  line(`paginated list, ${PAGE} per page`, (r) => r.paginatedS, 's', 2);
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
