/**
 * Reads over the key index (etcd mvcc/kvstore_txn.go rangeKeys): resolve which revision of each key
 * a range returns from the in-memory index, then fetch those revisions' KeyValues from the backend.
 *
 * Only the index lives in memory; values are read from LevelDB (through the backend's pending
 * overlay, so a just-committed write is visible before its batch is flushed), as etcd reads them
 * from bbolt by revision. The async path fetches in chunks of RANGE_FETCH_CHUNK revisions with
 * LevelDB's getMany, so a large range never holds more than the result plus one chunk of keys.
 */
import assert from 'node:assert/strict';
import type { Backend } from './backend';
import type { IndexedRevision, KeyIndex } from './key-index';
import type { KeyValue } from './kv';
import { decodeKeyValue } from './kv-codec';
import { RANGE_FETCH_CHUNK } from './limits';
import type { LiveKeys } from './live-keys';
import type { KeyRange, TreeIndex } from './tree-index';

export interface ReadContext {
  readonly index: TreeIndex;
  readonly live: LiveKeys;
  readonly backend: Backend;
  /** The full backend key of revision (main, sub) in the key bucket. */
  readonly revisionKey: (main: number, sub: number) => Buffer;
}

/** The revisions a range returns (at most `limit`, none when countOnly) and the range's count. */
export interface Picks {
  readonly revs: IndexedRevision[];
  readonly count: number;
}

/**
 * The range at the current revision. `count` comes from the order-statistic set of live keys, so
 * with a limit (or countOnly) only the returned page of the index is walked: O(log n + limit).
 */
export function pickCurrent(ctx: ReadContext, range: KeyRange, limit: number, countOnly: boolean): Picks {
  const revs: IndexedRevision[] = [];
  if (countOnly) return { revs, count: ctx.live.count(range) };
  ctx.index.forRangeWhile(range, (_latin1, ki) => {
    const latest = ki.latest;
    if (latest !== undefined && !latest.tombstone) revs.push(latest);
    return revs.length < limit;
  });
  // Without a limit the walk visited the whole range; its length is the count.
  return { revs, count: limit === Infinity ? revs.length : ctx.live.count(range) };
}

/**
 * The range at a past revision. Keys created or deleted after `rev` make the live set's count
 * wrong there, so this walks the whole range of the index (no values are read for the count).
 */
export function pickAt(ctx: ReadContext, range: KeyRange, rev: number, limit: number, countOnly: boolean): Picks {
  const revs: IndexedRevision[] = [];
  let count = 0;
  ctx.index.forRange(range, (_latin1, ki) => {
    const at = ki.revisionAt(rev);
    if (at === undefined) return;
    count++;
    if (!countOnly && revs.length < limit) revs.push(at);
  });
  return { revs, count };
}

/** The KeyValues at `revs`, in order; undefined where a racing compaction deleted one. */
export async function fetchRevisions(ctx: ReadContext, revs: readonly IndexedRevision[]): Promise<Array<KeyValue | undefined>> {
  const out: Array<KeyValue | undefined> = new Array(revs.length);
  for (let start = 0; start < revs.length; start += RANGE_FETCH_CHUNK) {
    const end = Math.min(revs.length, start + RANGE_FETCH_CHUNK);
    const keys: Buffer[] = new Array(end - start);
    for (let i = start; i < end; i++) keys[i - start] = ctx.revisionKey(revs[i].main, revs[i].sub);
    const records = await ctx.backend.getManyKeys(keys);
    for (let i = start; i < end; i++) {
      const record = records[i - start];
      out[i] = record === undefined ? undefined : decodeKeyValue(record);
    }
  }
  return out;
}

/** As fetchRevisions, synchronously (the apply loop's txn reads; LevelDB getSync). */
export function fetchRevisionsSync(ctx: ReadContext, revs: readonly IndexedRevision[]): KeyValue[] {
  return revs.map((rev) => readRevisionSync(ctx, rev));
}

/** The live key's latest KeyValue, synchronously. */
export function readLatestSync(ctx: ReadContext, ki: KeyIndex): KeyValue {
  const latest = ki.latest;
  assert(latest !== undefined && !latest.tombstone, 'reading the value of a key that is not live');
  return readRevisionSync(ctx, latest);
}

function readRevisionSync(ctx: ReadContext, rev: IndexedRevision): KeyValue {
  const record = ctx.backend.getKeySync(ctx.revisionKey(rev.main, rev.sub));
  assert(record !== undefined, 'indexed revision missing from the backend');
  return decodeKeyValue(record);
}
