import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../support/cluster';
import { connect, must, type EtcdClient } from '../support/grpc-client';
import { startInproc, type InprocMember } from './support/inproc';
import { loadEtcdServices } from '../../proto';
import { barrier, barrierAll, create, openWatch, prefixEnd, RecordingStream, type WatchResponseMsg } from './support/watch-client';

/**
 * Watch at scale over the real gRPC transport (an in-process member, so the test can look at the
 * hub's state): thousands of watchers on one stream, a thousand streams, and a stalled consumer.
 * Every assertion is about correctness (each watcher sees exactly its events, in revision order,
 * once); none is about speed.
 */

let m: InprocMember;
let kv: EtcdClient;

beforeAll(async () => {
  m = await startInproc();
  kv = connect(m.endpoint);
}, 30_000);

afterAll(async () => {
  kv?.close();
  await m?.close();
});

/** One committed write: its revision and the (key, type) of each event, in txn order. */
interface Write {
  rev: number;
  events: { key: string; type: 'PUT' | 'DELETE'; value: string }[];
}

async function put(key: string, value: string): Promise<Write> {
  const r = must(await kv.put({ key: Buffer.from(key), value: Buffer.from(value) }), 'put');
  return { rev: Number(r.header.revision), events: [{ key, type: 'PUT', value }] };
}

async function txnPut(pairs: [string, string][]): Promise<Write> {
  const r = must(
    await kv.txn({ success: pairs.map(([k, v]) => ({ request_put: { key: Buffer.from(k), value: Buffer.from(v) } })) }),
    'txn',
  );
  return { rev: Number(r.header.revision), events: pairs.map(([key, value]) => ({ key, type: 'PUT' as const, value })) };
}

async function del(key: string): Promise<Write> {
  const r = must(await kv.deleteRange({ key: Buffer.from(key) }), 'delete');
  return { rev: Number(r.header.revision), events: [{ key, type: 'DELETE', value: '' }] };
}

/** Runs `n` writes `make(i)` with `concurrency` in flight, so revisions interleave and buffers fill. */
async function writeAll(n: number, concurrency: number, make: (i: number) => Promise<Write>): Promise<Write[]> {
  const out: Write[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < n) out.push(await make(next++));
    }),
  );
  return out.sort((a, b) => a.rev - b.rev);
}

const fmt = (rev: number, e: { key: string; type: string; value: string }): string => `${rev} ${e.type} ${e.key}=${e.value}`;

function expected(writes: Write[], match: (key: string) => boolean): string[] {
  return writes.flatMap((w) => w.events.filter((e) => match(e.key)).map((e) => fmt(w.rev, e)));
}

/** The events of each watch ID on a stream, in arrival order, checking each response's header. */
function eventsById(rs: WatchResponseMsg[]): Map<number, string[]> {
  const out = new Map<number, string[]>();
  for (const r of rs) {
    if (r.created || r.canceled) continue;
    const id = Number(r.watch_id);
    let list = out.get(id);
    if (!list) out.set(id, (list = []));
    for (const e of r.events) {
      // header.revision is at least the event's revision (catch-up batches report the current one).
      expect(Number(r.header!.revision)).toBeGreaterThanOrEqual(Number(e.kv!.mod_revision));
      list.push(fmt(Number(e.kv!.mod_revision), { key: e.kv!.key.toString(), type: e.type === 0 ? 'PUT' : 'DELETE', value: e.kv!.value.toString() }));
    }
  }
  return out;
}

const eventCount = (rs: WatchResponseMsg[]): number => rs.reduce((n, r) => n + r.events.length, 0);

/** Waits until `s` has received `n` events (counted incrementally: RecordingStream re-runs predicates per response). */
function events(s: RecordingStream<WatchResponseMsg>, n: number, timeoutMs: number, what: string): Promise<void> {
  let got = eventCount(s.responses);
  return new Promise((resolve, reject) => {
    const done = (): void => {
      clearTimeout(timer);
      s.call.off('data', onData);
      resolve();
    };
    const onData = (r: WatchResponseMsg): void => {
      got += r.events.length;
      if (got >= n) done();
    };
    const timer = setTimeout(() => {
      s.call.off('data', onData);
      reject(new Error(`timed out waiting for ${what}: ${got} of ${n} events`));
    }, timeoutMs);
    if (got >= n) done();
    else s.call.on('data', onData);
  });
}

/** Waits until every watch stream of earlier tests is gone on the server. */
async function noStreams(): Promise<void> {
  await waitFor('no streams left over', 10_000, () => m.hub.stats.streams === 0 && m.hub.stats.synced + m.hub.stats.unsynced === 0);
}

async function settled(): Promise<void> {
  await waitFor('the hub to settle', 20_000, () => !m.hub.syncBusy && m.hub.stats.unsynced === 0);
}

/**
 * Everything on `s` before a barrier (a watcher on a key outside /scale*, /stall*): what the
 * test's writes caused, duplicates included. After `settled()`, when every watcher is synced.
 */
const BARRIER_KEY = Buffer.from('/barrier');
const putBarrier = (): Promise<Write> => put(BARRIER_KEY.toString(), 'x');

describe('watch at scale', () => {
  it('10,000 watchers on one stream (prefix and single-key) each see exactly their events, in order, once', async () => {
    const P = '/scale1/';
    const N = 10_000;
    const KEYS = 50;
    const s = openWatch(m.endpoint);
    try {
      // Even watchers watch the prefix, odd ones a single key (the hub's two lookup paths).
      for (let i = 0; i < N; i++) {
        s.send(i % 2 === 0 ? create({ key: P, range_end: prefixEnd(P) }) : create({ key: `${P}k${(i >> 1) % KEYS}` }));
      }
      let createdCount = 0;
      s.call.on('data', (r: WatchResponseMsg) => void (r.created && createdCount++));
      await s.until(() => createdCount >= N, 30_000, `${N} created`);
      const created = s.responses;
      expect(created.filter((r) => r.created).map((r) => Number(r.watch_id))).toEqual(Array.from({ length: N }, (_, i) => i));
      expect(m.hub.stats.synced).toBeGreaterThanOrEqual(N);

      // 25 revisions, 8 in flight: single puts, a 3-key txn every 10th write, and deletes.
      const writes = await writeAll(25, 8, (i) =>
        i % 10 === 9 ? txnPut([[`${P}k${i % KEYS}`, `t${i}`], [`${P}k${(i + 1) % KEYS}`, `t${i}`], [`${P}x${i}`, `t${i}`]]) : i % 7 === 6 ? del(`${P}k${(i - 1) % KEYS}`) : put(`${P}k${i % KEYS}`, `v${i}`),
      );
      const all = expected(writes, () => true);
      const perKey = new Map<number, string[]>();
      for (let k = 0; k < KEYS; k++) perKey.set(k, expected(writes, (key) => key === `${P}k${k}`));
      const total = (N / 2) * all.length + Array.from({ length: N / 2 }, (_, j) => perKey.get(j % KEYS)!.length).reduce((a, b) => a + b, 0);
      await events(s, total, 40_000, 'all events');
      await settled();
      const rs = await barrier(s, BARRIER_KEY, putBarrier); // nothing more may arrive
      expect(eventCount(rs)).toBe(total);
      const got = eventsById(rs);
      for (let i = 0; i < N; i++) {
        const want = i % 2 === 0 ? all : perKey.get((i >> 1) % KEYS)!;
        const have = got.get(i) ?? [];
        if (have.length !== want.length || have.some((x, j) => x !== want[j])) expect(have, `watcher ${i}`).toEqual(want);
      }
    } finally {
      s.close();
    }
  }, 60_000);

  it('1,000 streams, each watching the prefix, all see every event in order exactly once', async () => {
    const P = '/scale2/';
    const STREAMS = 1000;
    // 10 connections of 100 streams, as many clients would open.
    const streams: RecordingStream<WatchResponseMsg>[] = [];
    try {
      const pkg = loadEtcdServices().etcdserverpb as grpc.GrpcObject;
      const Watch = pkg.Watch as grpc.ServiceClientConstructor;
      const conns = Array.from({ length: 10 }, () => new Watch(m.endpoint, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 }));
      for (let i = 0; i < STREAMS; i++) {
        const conn = conns[i % conns.length];
        const s = new RecordingStream<WatchResponseMsg>(conn, (conn as unknown as { Watch(): grpc.ClientDuplexStream<unknown, WatchResponseMsg> }).Watch());
        s.send(create({ key: P, range_end: prefixEnd(P), prev_kv: i % 2 === 0 }));
        streams.push(s);
      }
      for (const s of streams) await s.until((rs) => rs.some((r) => r.created), 30_000, 'created');
      // 60 revisions, 16 in flight, interleaved with every stream draining.
      const writes = await writeAll(60, 16, (i) => (i % 20 === 19 ? del(`${P}k${(i - 1) % 13}`) : put(`${P}k${i % 13}`, `v${i}`)));
      const want = expected(writes, () => true);
      for (const s of streams) await events(s, want.length, 40_000, 'all events');
      await settled();
      const before = await barrierAll(streams, BARRIER_KEY, putBarrier, 30_000); // nothing more may arrive
      for (const [i, rs] of before.entries()) {
        const got = eventsById(rs).get(0) ?? [];
        if (got.length !== want.length || got.some((x, j) => x !== want[j])) expect(got, `stream ${i}`).toEqual(want);
        // prev_kv only where asked, and right: the previous value of the key.
        const withPrev = rs.flatMap((r) => r.events).filter((e) => e.prev_kv !== null).length;
        if (i % 2 === 1) expect(withPrev).toBe(0);
        else expect(withPrev).toBeGreaterThan(0);
      }
    } finally {
      for (const s of streams) s.close();
    }
  }, 60_000);
});

describe('a stalled consumer over gRPC', () => {
  const gauge = async (name: 'watcherTotal' | 'slowWatcherTotal'): Promise<number> => (await m.metrics[name].get()).values[0]?.value ?? 0;

  /** A watch stream whose client stops reading: HTTP/2 flow control pushes back to the server. */
  function stalled(key: string, startRev = 0): RecordingStream<WatchResponseMsg> {
    const s = openWatch(m.endpoint);
    s.send(create({ key, range_end: prefixEnd(key), start_revision: startRev }));
    return s;
  }

  it('does not delay the others, is moved to the unsynced group, and later gets every event in order exactly once', async () => {
    const P = '/stall1/';
    await noStreams();
    const base = 0;
    const slow = stalled(P);
    await slow.until((rs) => rs.some((r) => r.created), 10_000, 'created');
    slow.call.pause();
    const fast = openWatch(m.endpoint);
    fast.send(create({ key: P, range_end: prefixEnd(P) }));
    await fast.until((rs) => rs.some((r) => r.created), 10_000, 'created');

    // 600 revisions of 8 KiB values (~5 MB): far beyond the stalled stream's HTTP/2 windows and its 128-response buffer.
    const big = 'x'.repeat(8192);
    const writes = await writeAll(600, 4, (i) => put(`${P}k${i % 17}`, `${i}:${big}`));
    const want = expected(writes, () => true);
    // The live consumer gets everything while the other one is still stalled.
    await events(fast, want.length, 30_000, 'fast events');
    expect(eventsById(fast.responses).get(0)).toEqual(want);
    expect(slow.call.isPaused()).toBe(true);
    expect(eventCount(slow.responses)).toBeLessThan(want.length);
    // The stalled watcher was moved out of the live group, and the gauges say so.
    await waitFor('the stalled watcher in the unsynced group', 10_000, () => m.hub.stats.unsynced === 1);
    expect(m.hub.stats.unsynced).toBe(1);
    // The gauges follow the hub's counts one event-loop turn later (coalesced).
    await waitFor('the slow watcher gauge', 10_000, async () => (await gauge('slowWatcherTotal')) === 1);
    expect(await gauge('slowWatcherTotal')).toBe(1);
    expect(await gauge('watcherTotal')).toBe(base + 2);

    slow.call.resume();
    await events(slow, want.length, 30_000, 'slow events');
    await settled();
    const rs = await barrier(slow, BARRIER_KEY, putBarrier); // nothing more may arrive
    expect(eventsById(rs).get(0)).toEqual(want);
    await waitFor('the slow watcher gauge to drop', 10_000, async () => (await gauge('slowWatcherTotal')) === 0);
    slow.close();
    fast.close();
    await waitFor('the watcher gauge to drop', 10_000, async () => (await gauge('watcherTotal')) === base);
  }, 60_000);

  it('whose history is compacted meanwhile gets a gapless prefix of its events, then a compacted cancel; the watcher gauge drops', async () => {
    const P = '/stall2/';
    await noStreams();
    const base = 0;
    const slow = stalled(P);
    await slow.until((rs) => rs.some((r) => r.created), 10_000, 'created');
    slow.call.pause();
    const big = 'y'.repeat(8192);
    const writes = await writeAll(1500, 4, (i) => put(`${P}k${i % 11}`, `${i}:${big}`));
    const want = expected(writes, () => true);
    await waitFor('the stalled watcher in the unsynced group', 10_000, () => m.hub.stats.unsynced === 1);
    // Compact past everything the stalled watcher has been sent; recent in-memory history is 1000 revisions, so it needs the store.
    const compactRev = writes[writes.length - 1].rev;
    must(await kv.compact({ revision: String(compactRev), physical: true }), 'compact');
    slow.call.resume();
    const rs = await slow.until((r) => r.some((x) => x.canceled), 30_000, 'compacted cancel');
    const cancel = rs.find((x) => x.canceled)!;
    expect(cancel).toMatchObject({ watch_id: '0', compact_revision: String(compactRev), canceled: true });
    expect(rs[rs.length - 1]).toBe(cancel);
    // What it did get is exactly the first events, in order, with no gap and no duplicate.
    const got = eventsById(rs).get(0) ?? [];
    expect(got.length).toBeLessThan(want.length);
    expect(got).toEqual(want.slice(0, got.length));
    await waitFor('the watcher gauges to drop', 10_000, async () => (await gauge('watcherTotal')) === base && (await gauge('slowWatcherTotal')) === 0);
    slow.close();
  }, 60_000);
});
