/**
 * Reads over the key index (etcd mvcc/kvstore_txn.go rangeKeys): resolve which revision of each key
 * a range returns from the in-memory index, then fetch those revisions' KeyValues from the backend.
 *
 * Only the index lives in memory; values are read from LevelDB (through the backend's pending
 * overlay, so a just-committed write is visible before its batch is flushed), as etcd reads them
 * from bbolt by revision. The async path fetches in chunks of RANGE_FETCH_CHUNK revisions with
 * LevelDB's getMany, one chunk ahead, so a large range never holds more than the result plus two
 * chunks of keys.
 *
 * Reading events scans the key bucket by revision instead (etcd watchable_store.go syncWatchers:
 * UnsafeRange over the key bucket, then kvsToEvents).
 */
import assert from 'node:assert/strict';
import type { Backend } from './backend';
import type { IndexedRevision, KeyIndex } from './key-index';
import type { Event, KeyValue } from './kv';
import { decodeKeyValue } from './kv-codec';
import { RANGE_FETCH_CHUNK } from './limits';
import type { LiveKeys } from './live-keys';
import { REVISION_BYTES, readMainRevision } from './revision';
import type { KeyRange, TreeIndex } from './tree-index';
import type { ValueCache } from './value-cache';

export interface ReadContext {
  readonly index: TreeIndex;
  readonly live: LiveKeys;
  readonly backend: Backend;
  readonly cache: ValueCache;
  /** The full backend key of revision (main, sub) in the key bucket. */
  readonly revisionKey: (main: number, sub: number) => Buffer;
  /** Length of the key bucket prefix in full backend keys. */
  readonly prefixBytes: number;
}

/** The revisions a range returns (at most `limit`, none when countOnly) and the range's count. */
export interface Picks {
  readonly revs: IndexedRevision[];
  /** The latin1 key of each picked revision. */
  readonly keys: string[];
  /** True when every picked revision is its key's latest (a read at the current revision). */
  readonly latest: boolean;
  readonly count: number;
}

/**
 * The range at the current revision. `count` comes from the order-statistic set of live keys, so
 * with a limit (or countOnly) only the returned page of the index is walked: O(log n + limit).
 */
export function pickCurrent(ctx: ReadContext, range: KeyRange, limit: number, countOnly: boolean): Picks {
  const revs: IndexedRevision[] = [];
  const keys: string[] = [];
  if (countOnly) return { revs, keys, latest: true, count: ctx.live.count(range) };
  ctx.index.forRangeWhile(range, (latin1, ki) => {
    const latest = ki.latest;
    if (latest !== undefined && !latest.tombstone) {
      revs.push(latest);
      keys.push(latin1);
    }
    return revs.length < limit;
  });
  // Without a limit the walk visited the whole range; its length is the count.
  return { revs, keys, latest: true, count: limit === Infinity ? revs.length : ctx.live.count(range) };
}

/**
 * The range at a past revision. Keys created or deleted after `rev` make the live set's count
 * wrong there, so this walks the whole range of the index (no values are read for the count).
 */
export function pickAt(ctx: ReadContext, range: KeyRange, rev: number, limit: number, countOnly: boolean): Picks {
  const revs: IndexedRevision[] = [];
  const keys: string[] = [];
  let count = 0;
  ctx.index.forRange(range, (latin1, ki) => {
    const at = ki.revisionAt(rev);
    if (at === undefined) return;
    count++;
    if (!countOnly && revs.length < limit) {
      revs.push(at);
      keys.push(latin1);
    }
  });
  return { revs, keys, latest: false, count };
}

/**
 * The KeyValues of the picks, in order (from the value cache, else LevelDB); undefined where a
 * racing compaction deleted one. Only a single-key read of a key's latest revision is added to
 * the cache, so a large range does not evict the hot keys.
 */
export async function fetchRevisions(ctx: ReadContext, picks: Picks): Promise<Array<KeyValue | undefined>> {
  const { revs, keys } = picks;
  const out: Array<KeyValue | undefined> = new Array(revs.length);
  // Cache hits are filled in at once; the misses of the chunk go to LevelDB in one getMany.
  const lookup = (start: number): { missAt: number[]; records: Promise<Array<Buffer | undefined>> | null } => {
    const end = Math.min(revs.length, start + RANGE_FETCH_CHUNK);
    const missAt: number[] = [];
    const missKeys: Buffer[] = [];
    for (let i = start; i < end; i++) {
      out[i] = ctx.cache.get(keys[i], revs[i].main);
      if (out[i] !== undefined) continue;
      missAt.push(i);
      missKeys.push(ctx.revisionKey(revs[i].main, revs[i].sub));
    }
    if (missKeys.length === 0) return { missAt, records: null };
    const records = ctx.backend.getManyKeys(missKeys);
    records.catch(() => undefined); // awaited below; a failure of a chunk never awaited is not unhandled
    return { missAt, records };
  };
  // One chunk ahead: LevelDB reads the next chunk on libuv's thread pool while this one is decoded.
  let next = revs.length > 0 ? lookup(0) : null;
  for (let start = 0; next !== null; start += RANGE_FETCH_CHUNK) {
    const cur = next;
    next = start + RANGE_FETCH_CHUNK < revs.length ? lookup(start + RANGE_FETCH_CHUNK) : null;
    if (cur.records === null) continue;
    const records = await cur.records;
    for (let j = 0; j < cur.missAt.length; j++) {
      const record = records[j];
      out[cur.missAt[j]] = record === undefined ? undefined : decodeKeyValue(record);
    }
  }
  // A point read of a key's latest value is what the next Get or put of that key needs.
  const only = out[0];
  if (revs.length === 1 && only !== undefined && picks.latest) ctx.cache.set(keys[0], only);
  return out;
}

/** As fetchRevisions, synchronously (the apply loop's txn reads; LevelDB getSync). */
export function fetchRevisionsSync(ctx: ReadContext, picks: Picks): KeyValue[] {
  return picks.revs.map((rev, i) => ctx.cache.get(picks.keys[i], rev.main) ?? readRevisionSync(ctx, rev));
}

/** The live key's latest KeyValue, synchronously; kept in the value cache. */
export function readLatestSync(ctx: ReadContext, latin1Key: string, ki: KeyIndex): KeyValue {
  const latest = ki.latest;
  assert(latest !== undefined && !latest.tombstone, 'reading the value of a key that is not live');
  const cached = ctx.cache.get(latin1Key, latest.main);
  if (cached !== undefined) return cached;
  const kv = readRevisionSync(ctx, latest);
  ctx.cache.set(latin1Key, kv);
  return kv;
}

function readRevisionSync(ctx: ReadContext, rev: IndexedRevision): KeyValue {
  const record = ctx.backend.getKeySync(ctx.revisionKey(rev.main, rev.sub));
  assert(record !== undefined, 'indexed revision missing from the backend');
  return decodeKeyValue(record);
}

/**
 * Every change with first <= main revision <= last, in revision order, covering at most `maxRevs`
 * distinct main revisions. DELETE events carry only key and modRevision; events carry no prevKv.
 */
export async function readEventRange(ctx: ReadContext, first: number, last: number, maxRevs: number): Promise<Event[]> {
  const events: Event[] = [];
  const revEnd = ctx.prefixBytes + REVISION_BYTES;
  let revs = 0;
  let lastMain = -1;
  outer: for await (const chunk of ctx.backend.iterateChunks(ctx.revisionKey(first, 0), ctx.revisionKey(last + 1, 0))) {
    for (const [key, record] of chunk) {
      const main = readMainRevision(key, ctx.prefixBytes);
      if (main !== lastMain) {
        if (revs === maxRevs) break outer;
        revs++;
        lastMain = main;
      }
      events.push({ type: key.length === revEnd ? 'PUT' : 'DELETE', kv: decodeKeyValue(record) });
    }
  }
  return events;
}
