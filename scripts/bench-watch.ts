/**
 * Watch and lease benchmarks, side by side against the real etcd and cairn (called by
 * scripts/bench.ts after the KV benchmarks, each target a fresh single member):
 *
 *  - watch event latency, put to event, with 1 and with 1,000 watchers of the key (p50, p99);
 *  - event fan-out throughput: 1,000 prefix watchers on 10 streams under a 16-writer put load;
 *  - lease keepalive throughput: 10 keepalive streams, 100 requests in flight on each;
 *  - memory per watcher: the member's resident memory and language heap (its own /metrics) before
 *    and after 50,000 watchers, measured first on the fresh member.
 *
 *   npm run bench -- --only none --duration 5s     # just these
 */
import * as grpc from '@grpc/grpc-js';
import { loadEtcdServices } from '../proto';

interface Target {
  name: string;
  endpoint: string;
}

interface WatchResp {
  watch_id: string;
  created: boolean;
  canceled: boolean;
  events: { kv: { key: Buffer; mod_revision: string } | null }[];
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function durationMs(): number {
  const i = process.argv.indexOf('--duration');
  const v = i >= 0 ? process.argv[i + 1] : '5s';
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(v ?? '');
  if (!m) return 5000;
  return Number(m[1]) * (m[2] === 'ms' ? 1 : m[2] === 'm' ? 60_000 : 1000);
}

function ctor(service: 'KV' | 'Watch' | 'Lease'): grpc.ServiceClientConstructor {
  return (loadEtcdServices().etcdserverpb as grpc.GrpcObject)[service] as grpc.ServiceClientConstructor;
}

const OPTS: grpc.ChannelOptions = { 'grpc.use_local_subchannel_pool': 1, 'grpc.max_receive_message_length': -1 };

class Kv {
  private readonly c: grpc.Client & Record<string, (req: object, cb: (e: grpc.ServiceError | null, r: { header: { revision: string } }) => void) => void>;
  constructor(endpoint: string) {
    this.c = new (ctor('KV'))(endpoint, grpc.credentials.createInsecure(), OPTS) as never;
  }
  put(key: string, value: string): Promise<number> {
    return new Promise((resolve, reject) =>
      this.c.Put({ key: Buffer.from(key), value: Buffer.from(value) }, (e, r) => (e ? reject(e) : resolve(Number(r.header.revision)))),
    );
  }
  close(): void {
    this.c.close();
  }
}

/** A watch stream with `n` watchers created one at a time; `onEvent(rev)` per delivered event. */
async function watchStream(client: grpc.Client, key: string, rangeEnd: string, n: number, onEvent: (rev: number, now: number) => void): Promise<grpc.ClientDuplexStream<object, WatchResp>> {
  const call = (client as unknown as { Watch(): grpc.ClientDuplexStream<object, WatchResp> }).Watch();
  let created = 0;
  let wake: (() => void) | undefined;
  call.on('data', (r: WatchResp) => {
    if (r.created) {
      created++;
      wake?.();
      return;
    }
    const now = performance.now();
    for (const e of r.events) onEvent(Number(e.kv!.mod_revision), now);
  });
  call.on('error', () => undefined);
  // Pipelined creates (each is answered in order), in chunks so the client never floods the server.
  for (let i = 0; i < n; i += 500) {
    const chunk = Math.min(500, n - i);
    for (let j = 0; j < chunk; j++) call.write({ create_request: { key: Buffer.from(key), range_end: Buffer.from(rangeEnd) } });
    while (created < i + chunk) await new Promise<void>((r) => (wake = r));
  }
  return call;
}

function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

/** Put-to-event latency: sequential puts to one key, each timed until all `watchers` received it. */
async function latency(t: Target, watchers: number, puts: number): Promise<{ p50: number; p99: number }> {
  const key = `/bench/lat/${watchers}`;
  const kv = new Kv(t.endpoint);
  const streams = Math.max(1, Math.ceil(watchers / 100));
  const conn = new (ctor('Watch'))(t.endpoint, grpc.credentials.createInsecure(), OPTS);
  const samples: number[] = [];
  let sentAt = 0;
  let pending = 0;
  let done: (() => void) | undefined;
  const calls: grpc.ClientDuplexStream<object, WatchResp>[] = [];
  for (let s = 0; s < streams; s++) {
    const n = Math.min(100, watchers - s * 100);
    calls.push(
      await watchStream(conn, key, '', n, (_rev, now) => {
        samples.push(now - sentAt);
        if (--pending === 0) done?.();
      }),
    );
  }
  for (let i = 0; i < 20 + puts; i++) {
    if (i === 20) samples.length = 0; // warm-up
    pending = watchers;
    const all = new Promise<void>((r) => (done = r));
    sentAt = performance.now();
    await kv.put(key, `v${i}`);
    await all;
  }
  for (const c of calls) c.cancel();
  conn.close();
  kv.close();
  return { p50: percentile(samples, 50), p99: percentile(samples, 99) };
}

/** Events delivered per second to 1,000 prefix watchers (10 streams) under a 16-writer put load. */
async function fanout(t: Target, ms: number): Promise<number> {
  const prefix = '/bench/fan/';
  const end = '/bench/fan0';
  const conn = new (ctor('Watch'))(t.endpoint, grpc.credentials.createInsecure(), OPTS);
  let delivered = 0;
  const calls: grpc.ClientDuplexStream<object, WatchResp>[] = [];
  for (let s = 0; s < 10; s++) calls.push(await watchStream(conn, prefix, end, 100, () => void delivered++));
  const kv = new Kv(t.endpoint);
  let written = 0;
  const start = performance.now();
  const stopAt = start + ms;
  await Promise.all(
    Array.from({ length: 16 }, async (_, w) => {
      while (performance.now() < stopAt) {
        await kv.put(`${prefix}${w}`, `v${written}`);
        written++;
      }
    }),
  );
  // Wait for the backlog to drain (bounded), then count what arrived over the whole period.
  const want = written * 1000;
  const deadline = performance.now() + 60_000;
  while (delivered < want && performance.now() < deadline) await sleep(20);
  const elapsed = (performance.now() - start) / 1000;
  for (const c of calls) c.cancel();
  conn.close();
  kv.close();
  return delivered / elapsed;
}

/** Keepalive responses per second: 10 streams, 100 requests in flight each, over 100 leases. */
async function keepalives(t: Target, ms: number): Promise<number> {
  type Lease = grpc.Client & {
    LeaseGrant(req: object, cb: (e: grpc.ServiceError | null, r: { ID: string }) => void): void;
    LeaseRevoke(req: object, cb: (e: grpc.ServiceError | null) => void): void;
    LeaseKeepAlive(): grpc.ClientDuplexStream<object, { TTL: string }>;
  };
  const client = new (ctor('Lease'))(t.endpoint, grpc.credentials.createInsecure(), OPTS) as unknown as Lease;
  const ids: string[] = [];
  for (let i = 0; i < 100; i++) ids.push(await new Promise<string>((res, rej) => client.LeaseGrant({ ID: '0', TTL: '600' }, (e, r) => (e ? rej(e) : res(r.ID)))));
  let answered = 0;
  const stopAt = performance.now() + ms;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: 10 }, (_, s) => {
      const call = client.LeaseKeepAlive();
      let sent = 0;
      let got = 0;
      return new Promise<void>((resolve) => {
        const send = (): void => {
          call.write({ ID: ids[(s * 10 + (sent % 10)) % ids.length] });
          sent++;
        };
        call.on('data', (r: { TTL: string }) => {
          if (r.TTL === '0') throw new Error('lease lost during the keepalive benchmark');
          got++;
          answered++;
          if (performance.now() < stopAt) send();
          else if (got === sent) {
            call.cancel();
            resolve();
          }
        });
        call.on('error', () => resolve());
        for (let i = 0; i < 100; i++) send();
      });
    }),
  );
  const elapsed = (performance.now() - start) / 1000;
  for (const id of ids) await new Promise<void>((res) => client.LeaseRevoke({ ID: id }, () => res()));
  client.close();
  return answered / elapsed;
}

async function metric(t: Target, name: string): Promise<number> {
  const text = await (await fetch(`http://${t.endpoint}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
  return line ? Number(line.split(' ').pop()) : NaN;
}

/**
 * Memory per watcher for 50,000 single-key watchers on 50 streams, measured first on the fresh
 * member: resident memory, and the language heap (cairn: V8 heap used; etcd: Go heap in use).
 */
async function memoryPerWatcher(t: Target): Promise<{ rss: number; heap: number }> {
  const N = 50_000;
  const heapMetric = async (): Promise<number> => {
    const v8 = await metric(t, 'nodejs_heap_size_used_bytes');
    return Number.isFinite(v8) ? v8 : metric(t, 'go_memstats_heap_inuse_bytes');
  };
  await sleep(2000);
  const rss0 = await metric(t, 'process_resident_memory_bytes');
  const heap0 = await heapMetric();
  const conn = new (ctor('Watch'))(t.endpoint, grpc.credentials.createInsecure(), OPTS);
  const calls: grpc.ClientDuplexStream<object, WatchResp>[] = [];
  for (let s = 0; s < 50; s++) calls.push(await watchStream(conn, `/bench/mem/${s}`, '', N / 50, () => undefined));
  await sleep(3000);
  const rss1 = await metric(t, 'process_resident_memory_bytes');
  const heap1 = await heapMetric();
  for (const c of calls) c.cancel();
  conn.close();
  await sleep(500);
  return { rss: (rss1 - rss0) / N, heap: (heap1 - heap0) / N };
}

const fmt = (n: number, digits = 0): string => (Number.isFinite(n) ? n.toFixed(digits) : 'n/a');

export async function benchWatch(targets: Target[]): Promise<string> {
  const ms = durationMs();
  const rows: { label: string; unit: string; higherBetter: boolean; values: Map<string, number> }[] = [];
  const row = (label: string, unit: string, higherBetter: boolean): Map<string, number> => {
    const values = new Map<string, number>();
    rows.push({ label, unit, higherBetter, values });
    return values;
  };
  const lat1p50 = row('watch latency, 1 watcher, p50', 'ms', false);
  const lat1p99 = row('watch latency, 1 watcher, p99', 'ms', false);
  const lat1kp50 = row('watch latency, 1,000 watchers, p50', 'ms', false);
  const lat1kp99 = row('watch latency, 1,000 watchers, p99', 'ms', false);
  const fan = row('fan-out, 1,000 watchers, 16 writers', 'events/s', true);
  const ka = row('lease keepalive, 10 streams x 100 in flight', 'renewals/s', true);
  const mem = row('memory per watcher (RSS delta, 50,000 watchers)', 'bytes', false);
  const heap = row('heap per watcher (etcd: Go heap in use; cairn: V8 heap used)', 'bytes', false);
  for (const t of targets) {
    process.stderr.write(`watch bench: ${t.name}\n`);
    const m = await memoryPerWatcher(t);
    mem.set(t.name, m.rss);
    heap.set(t.name, m.heap);
    const l1 = await latency(t, 1, 300);
    lat1p50.set(t.name, l1.p50);
    lat1p99.set(t.name, l1.p99);
    const l1k = await latency(t, 1000, 100);
    lat1kp50.set(t.name, l1k.p50);
    lat1kp99.set(t.name, l1k.p99);
    fan.set(t.name, await fanout(t, ms));
    ka.set(t.name, await keepalives(t, ms));
  }
  const [ref, sub] = targets.map((t) => t.name);
  const lines = [
    `Watch and lease, single member, ${targets.map((t) => t.name).join(' vs ')}, ${ms / 1000} s per throughput run, ${new Date().toISOString().slice(0, 10)}, ${process.version}.`,
    '',
    `| benchmark | unit | ${ref} | ${sub} | ${sub}/${ref} |`,
    '|---|---|---:|---:|---:|',
  ];
  for (const r of rows) {
    const a = r.values.get(ref) ?? NaN;
    const b = r.values.get(sub) ?? NaN;
    const digits = r.unit === 'ms' ? 2 : 0;
    lines.push(`| ${r.label} | ${r.unit} | ${fmt(a, digits)} | ${fmt(b, digits)} | **${fmt(b / a, 2)}x** |`);
  }
  lines.push('', 'Latency is from sending the Put to receiving the event (it includes the commit); for 1,000 watchers every delivery is one sample. Ratios above 1 are better for throughput and worse for latency and memory. Memory is measured first, on the fresh member, from its own /metrics (etcd publishes about 350 bytes per watcher, without the client-stream overhead).');
  return lines.join('\n');
}
