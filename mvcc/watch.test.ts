import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Event, KeyValue } from './kv';
import { KvStore } from './kv-store';
import type { TxnWrite } from './kv-store-txn';
import { b, removeTempDirs, tempDir } from './test-helpers';
import { ERR_DUPLICATE_WATCH_ID, ERR_EMPTY_WATCHER_RANGE } from './watch-limits';
import { WatchableStore, type WatchCreate, type WatchResponse, type WatchStream } from './watchable-store';

let store: KvStore;
let hub: WatchableStore;
let index = 1;

/** `valueCacheBytes` 0 or small: events reach the hub without prev_kv, which it then reads itself. */
async function open(opts: ConstructorParameters<typeof WatchableStore>[1] = {}, valueCacheBytes?: number): Promise<void> {
  store = await KvStore.open(tempDir(), valueCacheBytes === undefined ? {} : { valueCacheBytes });
  hub = new WatchableStore(store, opts);
}

beforeEach(() => {
  index = 1;
});

afterEach(async () => {
  hub?.close();
  await store?.close();
  removeTempDirs();
});

/** One write txn, committed as the server's apply loop does; the store notifies the hub itself. */
function commit(fn: (w: TxnWrite) => void): number {
  const w = store.write();
  fn(w);
  w.end({ consistentIndex: index++ });
  return store.rev;
}

const put = (k: string, v: string): number => commit((w) => void w.put(b(k), b(v)));
const del = (k: string, end?: string): number => commit((w) => void w.deleteRange(b(k), end === undefined ? null : b(end)));

async function settle(): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    await new Promise((r) => setImmediate(r));
    if (!hub.syncBusy) {
      await new Promise((r) => setTimeout(r, 1));
      if (!hub.syncBusy) return;
    }
  }
  throw new Error(`sync loop did not settle: ${JSON.stringify(hub.stats)}`);
}

function drain(s: WatchStream): WatchResponse[] {
  const out: WatchResponse[] = [];
  for (let r = s.next(); r !== undefined; r = s.next()) out.push(r);
  return out;
}

/** Drains until the sync loop is idle and nothing is queued. */
async function drainAll(s: WatchStream): Promise<WatchResponse[]> {
  const out: WatchResponse[] = [];
  for (;;) {
    out.push(...drain(s));
    await settle();
    if (s.pending === 0) return out;
  }
}

function watch(s: WatchStream, key: string, opts: Partial<WatchCreate> & { end?: Buffer | null } = {}): number {
  return s.watch({ id: 0, key: b(key), end: null, startRev: 0, ...opts });
}

const prefixEnd = (p: string): Buffer => {
  const e = Buffer.from(p, 'latin1');
  e[e.length - 1]++;
  return e;
};

function summary(ev: Event): string {
  const kv = ev.kv;
  const prev = ev.prevKv ? ` prev=${ev.prevKv.value.toString()}@${ev.prevKv.modRevision}` : '';
  return `${ev.type} ${kv.key.toString()}=${kv.value.toString()}@${kv.modRevision}${prev}`;
}

function eventsOf(resps: WatchResponse[], id: number): string[] {
  return resps.filter((r) => r.watchId === id).flatMap((r) => r.events.map(summary));
}

describe('watch hub: creates, IDs and cancels', () => {
  it('assigns IDs per stream from 0, skipping IDs the client chose, and refuses a duplicate ID', async () => {
    await open();
    const s1 = hub.newStream(() => undefined);
    const s2 = hub.newStream(() => undefined);
    expect(watch(s1, 'a')).toBe(0);
    expect(watch(s1, 'a', { id: 1 })).toBe(1);
    expect(watch(s1, 'a')).toBe(2);
    expect(watch(s2, 'a')).toBe(0);
    expect(watch(s1, 'a', { id: 2 })).toBe(-1);
    const r = drain(s1);
    expect(r.map((x) => [x.watchId, x.created, x.canceled, x.cancelReason])).toEqual([
      [0, true, false, ''],
      [1, true, false, ''],
      [2, true, false, ''],
      [-1, true, true, ERR_DUPLICATE_WATCH_ID],
    ]);
    expect(r.every((x) => x.revision === store.rev)).toBe(true);
  });

  it('refuses an empty range with "mvcc: watcher range is empty", but accepts range_end "\\x00" (all keys >= key)', async () => {
    await open();
    const s = hub.newStream(() => undefined);
    expect(watch(s, 'b', { end: b('a') })).toBe(-1);
    expect(watch(s, 'b', { end: b('b') })).toBe(-1);
    expect(watch(s, 'b', { end: Buffer.from([0]) })).toBe(0);
    put('a', '1');
    put('zzz', '2');
    const r = drain(s);
    expect(r[0]).toMatchObject({ watchId: -1, created: true, canceled: true, cancelReason: ERR_EMPTY_WATCHER_RANGE });
    expect(eventsOf(r, 0)).toEqual(['PUT zzz=2@3']);
  });

  it('sends the created response before any of the watcher\'s events, even for a historical start', async () => {
    await open();
    put('k', '1');
    put('k', '2');
    const s = hub.newStream(() => undefined);
    const id = watch(s, 'k', { startRev: 2 });
    const r = await drainAll(s);
    expect(r[0]).toMatchObject({ watchId: id, created: true, revision: 3 });
    expect(eventsOf(r, id)).toEqual(['PUT k=1@2', 'PUT k=2@3']);
  });

  it('a cancel answers {canceled} and drops the watcher\'s queued events; an unknown ID gets no response', async () => {
    await open();
    const s = hub.newStream(() => undefined);
    const id = watch(s, 'k');
    drain(s);
    put('k', '1');
    expect(s.cancel(id)).toBe(true);
    expect(s.cancel(42)).toBe(false);
    put('k', '2');
    const r = drain(s);
    expect(r).toHaveLength(1);
    expect(r[0]).toMatchObject({ watchId: id, canceled: true, revision: store.rev - 1 });
    expect(hub.stats).toMatchObject({ synced: 0, unsynced: 0 });
  });
});

describe('watch hub: start revisions', () => {
  it('start_revision 0 means now: earlier events are not replayed', async () => {
    await open();
    put('k', 'old');
    const s = hub.newStream(() => undefined);
    const id = watch(s, 'k');
    put('k', 'new');
    expect(eventsOf(drain(s), id)).toEqual(['PUT k=new@3']);
  });

  it('a future start_revision waits: events before it are skipped', async () => {
    await open();
    const s = hub.newStream(() => undefined);
    const id = watch(s, 'k', { startRev: 4 });
    put('k', '2');
    put('k', '3');
    expect(eventsOf(drain(s), id)).toEqual([]);
    put('k', '4');
    put('k', '5');
    expect(eventsOf(drain(s), id)).toEqual(['PUT k=4@4', 'PUT k=5@5']);
  });

  it('a historical start replays history inclusively from the store, in batches of at most batchMaxRevs revisions, then goes live', async () => {
    await open({ batchMaxRevs: 10, historyMaxRevs: 3 });
    for (let i = 0; i < 35; i++) put(`p/${i % 4}`, `v${i}`);
    const s = hub.newStream(() => undefined);
    const id = watch(s, 'p/', { end: prefixEnd('p/'), startRev: 2, prevKv: true });
    const r = await drainAll(s);
    const batches = r.filter((x) => x.watchId === id && x.events.length > 0);
    for (const x of batches) {
      const revs = new Set(x.events.map((e) => e.kv.modRevision));
      expect(revs.size).toBeLessThanOrEqual(10);
      expect(x.revision).toBe(36);
    }
    expect(batches.length).toBeGreaterThanOrEqual(4);
    const got = eventsOf(r, id);
    expect(got).toHaveLength(35);
    for (let i = 0; i < 35; i++) {
      const prev = i >= 4 ? ` prev=v${i - 4}@${i - 2}` : '';
      expect(got[i]).toBe(`PUT p/${i % 4}=v${i}@${i + 2}${prev}`);
    }
    put('p/9', 'live');
    expect(eventsOf(drain(s), id)).toEqual(['PUT p/9=live@37']);
    expect(hub.stats).toMatchObject({ synced: 1, unsynced: 0 });
  });

  it('a watch from a compacted revision is cancelled with compact_revision and header revision 0', async () => {
    await open();
    for (let i = 0; i < 5; i++) put('k', `${i}`);
    await store.compact(4).done;
    const s = hub.newStream(() => undefined);
    const bad = watch(s, 'k', { startRev: 3 });
    const ok = watch(s, 'k', { startRev: 4 });
    const r = await drainAll(s);
    expect(r.find((x) => x.watchId === bad && x.canceled)).toMatchObject({ compactRevision: 4, revision: 0, events: [] });
    expect(eventsOf(r, bad)).toEqual([]);
    expect(eventsOf(r, ok)).toEqual(['PUT k=2@4', 'PUT k=3@5', 'PUT k=4@6']);
  });
});

describe('watch hub: filters and prev_kv', () => {
  it('NOPUT and NODELETE filter per watcher, and nothing is sent when every event is filtered out', async () => {
    await open();
    const s = hub.newStream(() => undefined);
    const noPut = watch(s, 'k', { noPut: true });
    const noDel = watch(s, 'k', { noDelete: true });
    const range = watch(s, 'a', { end: b('z'), noDelete: true });
    drain(s);
    put('k', '1');
    del('k');
    const r = drain(s);
    expect(eventsOf(r, noPut)).toEqual(['DELETE k=@3']);
    expect(eventsOf(r, noDel)).toEqual(['PUT k=1@2']);
    expect(eventsOf(r, range)).toEqual(['PUT k=1@2']);
    expect(r.filter((x) => x.watchId === noPut)).toHaveLength(1);
  });

  it.each([undefined, 0])('prev_kv is set on updates and deletes (also for multi-key deletes) and only for watchers that ask (value cache %s)', async (cacheBytes) => {
    await open({}, cacheBytes);
    const s = hub.newStream(() => undefined);
    const withPrev = watch(s, 'a', { end: b('z'), prevKv: true });
    const without = watch(s, 'a', { end: b('z') });
    drain(s);
    put('a', '1');
    put('a', '2');
    put('b', '3');
    del('a', 'c');
    const r = drain(s);
    expect(eventsOf(r, withPrev)).toEqual(['PUT a=1@2', 'PUT a=2@3 prev=1@2', 'PUT b=3@4', 'DELETE a=@5 prev=2@3', 'DELETE b=@5 prev=3@4']);
    expect(eventsOf(r, without)).toEqual(['PUT a=1@2', 'PUT a=2@3', 'PUT b=3@4', 'DELETE a=@5', 'DELETE b=@5']);
    // One response per revision: the two deletes share one.
    expect(r.filter((x) => x.watchId === withPrev && x.events.length > 0)).toHaveLength(4);
  });

  it.each([undefined, 0])('prev_kv during catch-up from the store matches the live prev_kv (value cache %s)', async (cacheBytes) => {
    await open({ historyMaxRevs: 1 }, cacheBytes);
    put('a', '1');
    put('x', 'unrelated');
    put('a', '2');
    del('a');
    put('a', '3');
    const s = hub.newStream(() => undefined);
    const id = watch(s, 'a', { startRev: 2, prevKv: true });
    expect(eventsOf(await drainAll(s), id)).toEqual(['PUT a=1@2', 'PUT a=2@4 prev=1@2', 'DELETE a=@5 prev=2@4', 'PUT a=3@6']);
  });
});

describe('watch hub: prev_kv read at rev - 1', () => {
  it.each([1000, 1])('is absent for the event at the compact revision, as etcd\'s read of a compacted revision fails (history %i revs)', async (historyMaxRevs) => {
    await open({ historyMaxRevs }, 0);
    for (let i = 1; i <= 5; i++) put('k', `${i}`); // revs 2..6
    await store.compact(4).done;
    const s = hub.newStream(() => undefined);
    const id = watch(s, 'k', { startRev: 4, prevKv: true });
    expect(eventsOf(await drainAll(s), id)).toEqual(['PUT k=3@4', 'PUT k=4@5 prev=3@4', 'PUT k=5@6 prev=4@5']);
  });
});

describe('watch hub: progress', () => {
  it('RequestProgress answers watch_id -1 behind queued events, only when every watcher is synced', async () => {
    await open();
    put('k', '1');
    const s = hub.newStream(() => undefined);
    expect(s.requestProgress()).toBe(true); // no watchers: trivially synced
    drain(s);
    watch(s, 'k', { startRev: 1 });
    expect(s.requestProgress()).toBe(false); // the historical watcher is unsynced
    const r1 = await drainAll(s);
    expect(r1.some((x) => x.watchId === -1)).toBe(false);
    put('k', '2');
    expect(s.requestProgress()).toBe(true);
    const r2 = drain(s);
    expect(r2.map((x) => [x.watchId, x.events.length, x.revision])).toEqual([
      [0, 1, 3],
      [-1, 0, 3],
    ]);
  });

  it('periodic progress goes to synced progress_notify watchers with no events since the last tick', async () => {
    await open();
    const s = hub.newStream(() => undefined);
    const a = watch(s, 'a', { progressNotify: true });
    const bId = watch(s, 'b', { progressNotify: true });
    watch(s, 'c');
    drain(s);
    s.progressTick();
    expect(drain(s).map((x) => x.watchId)).toEqual([a, bId]);
    put('a', '1');
    s.progressTick(); // a had an event since the last tick
    expect(drain(s).map((x) => [x.watchId, x.events.length, x.revision])).toEqual([
      [a, 1, 2],
      [bId, 0, 2],
    ]);
    s.progressTick();
    expect(drain(s).map((x) => x.watchId)).toEqual([a, bId]);
  });
});

describe('watch hub: slow consumers', () => {
  it.each([undefined, 0])('a stalled stream does not delay others, stays bounded, and later receives every event in order exactly once (value cache %s)', async (cacheBytes) => {
    await open({ bufferResponses: 8, historyMaxRevs: 50, batchMaxRevs: 100 }, cacheBytes);
    const slow = hub.newStream(() => undefined);
    const fast = hub.newStream(() => undefined);
    const slowId = watch(slow, 'k/', { end: prefixEnd('k/'), prevKv: true });
    const fastId = watch(fast, 'k/', { end: prefixEnd('k/') });
    drain(slow);
    drain(fast);
    const fastGot: string[] = [];
    const N = 600;
    for (let i = 0; i < N; i++) {
      put(`k/${i % 7}`, `${i}`);
      // The fast consumer sees each event right away.
      const r = drain(fast);
      expect(r).toHaveLength(1);
      fastGot.push(...eventsOf(r, fastId));
      // The stalled one never holds more than its buffer.
      expect(slow.pending).toBeLessThanOrEqual(8 + 1);
    }
    await settle();
    expect(hub.stats.unsynced).toBe(1);
    const slowGot = eventsOf(await drainAll(slow), slowId);
    expect(slowGot.map((e) => e.replace(/ prev=.*/, ''))).toEqual(fastGot);
    expect(slowGot).toHaveLength(N);
    for (let i = 7; i < N; i++) expect(slowGot[i]).toContain(` prev=${i - 7}@${i - 7 + 2}`);
    expect(hub.stats).toMatchObject({ synced: 2, unsynced: 0 });
  });

  it('a stalled watcher whose history is compacted meanwhile gets its buffered events, then a compacted cancel', async () => {
    await open({ bufferResponses: 4, historyMaxRevs: 5 });
    const s = hub.newStream(() => undefined);
    const id = watch(s, 'k');
    drain(s);
    for (let i = 0; i < 50; i++) put('k', `${i}`);
    await store.compact(40).done;
    const r = await drainAll(s);
    expect(eventsOf(r, id)).toEqual([0, 1, 2, 3].map((i) => `PUT k=${i}@${i + 2}`));
    expect(r[r.length - 1]).toMatchObject({ watchId: id, canceled: true, compactRevision: 40 });
    expect(hub.stats).toMatchObject({ synced: 0, unsynced: 0 });
  });

  // Value cache: default (prev_kv mostly at hand in the events), off (the hub reads every prev_kv),
  // or a few entries (both).
  it.each([
    [1, undefined], [2, 0], [3, 300], [4, undefined], [5, 0], [6, 300], [7, undefined], [8, 0], [12345, undefined], [12345, 0],
  ])('randomised (seed %i, value cache %s): every watcher sees exactly its events, in order, once, whatever the drain pattern', async (initialSeed, cacheBytes) => {
    let seed = initialSeed;
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    await open({ bufferResponses: 3, historyMaxRevs: 7, batchMaxRevs: 9, maxWatchersPerSync: 4 }, cacheBytes);
    const keys = ['a', 'b', 'c', 'd', 'e'];
    const streams = [0, 1, 2].map(() => hub.newStream(() => undefined));
    const got = new Map<string, string[]>();
    const specs: { s: number; id: number; key: string; end: string | null; start: number; noPut: boolean; noDelete: boolean; prevKv: boolean }[] = [];
    const collect = (si: number, rs: WatchResponse[]): void => {
      for (const r of rs) for (const ev of r.events) got.get(`${si}/${r.watchId}`)!.push(summary(ev));
    };
    for (let step = 0; step < 400; step++) {
      const op = rand(10);
      if (op < 6) {
        const k = keys[rand(keys.length)];
        if (rand(4) === 0) del(k);
        else put(k, `v${step}`);
      } else if (op < 8) {
        const si = rand(3);
        if (rand(2) === 0) collect(si, drain(streams[si]));
      } else if (specs.length < 30) {
        const si = rand(3);
        const key = keys[rand(keys.length)];
        const end = rand(2) === 0 ? null : keys[Math.min(keys.length - 1, keys.indexOf(key) + 1 + rand(3))] + '\x00';
        const start = rand(3) === 0 ? 0 : 1 + rand(store.rev + 3);
        const spec = { s: si, id: 0, key, end, start, noPut: rand(5) === 0, noDelete: rand(5) === 0, prevKv: rand(2) === 0 };
        spec.id = watch(streams[si], key, { end: end === null ? null : b(end), startRev: start, noPut: spec.noPut, noDelete: spec.noDelete, prevKv: spec.prevKv });
        const effectiveStart = start === 0 ? store.rev + 1 : start;
        spec.start = effectiveStart;
        got.set(`${si}/${spec.id}`, []);
        specs.push(spec);
      }
      if (rand(5) === 0) await new Promise((r) => setImmediate(r));
    }
    for (let si = 0; si < 3; si++) collect(si, await drainAll(streams[si]));
    // Expected: the store's full history, filtered per watcher, prev_kv from a read at rev - 1.
    const all = await store.readEvents(1, store.rev, 1e9);
    for (const spec of specs) {
      const want: string[] = [];
      for (const ev of all) {
        const k = ev.kv.key.toString();
        const inRange = spec.end === null ? k === spec.key : k >= spec.key && k < spec.end;
        if (!inRange || ev.kv.modRevision < spec.start) continue;
        if (ev.type === 'PUT' ? spec.noPut : spec.noDelete) continue;
        let prevKv: KeyValue | undefined;
        if (spec.prevKv) prevKv = await store.prevKvAt(ev.kv.key, ev.kv.modRevision);
        want.push(summary({ type: ev.type, kv: ev.kv, prevKv }));
      }
      expect(got.get(`${spec.s}/${spec.id}`), JSON.stringify(spec)).toEqual(want);
    }
    expect(hub.stats.unsynced).toBe(0);
  });
});
