/**
 * Hashing the store's contents for corruption checks (etcd 3.5 mvcc/hash.go; kvstore.go Hash and
 * HashByRev in 3.4): HashKV over the key bucket's revisions up to a revision, Hash over the whole
 * backend. Both are crc32c, as etcd's (crc32 with the Castagnoli table). The store waits for any
 * running compaction before calling these, so every member hashes the same surviving revisions.
 */
import type { Backend } from './backend';
import { crc32cUpdate } from './crc32c';
import { KEY_BUCKET } from './kv-store-meta';
import type { StoreMetricsHooks } from './metrics-hooks';

export interface HashKVResult {
  /** crc32c over the key bucket's surviving revisions up to hashRev. */
  readonly hash: number;
  /** The store's compact revision when hashed (-1 if never compacted). */
  readonly compactRev: number;
  readonly hashRev: number;
}

export interface HashContext {
  readonly backend: Backend;
  /** The full backend key of revision (main, 0) in the key bucket. */
  readonly revisionKey: (main: number) => Buffer;
  /** Length of the key bucket prefix in full backend keys. */
  readonly prefixBytes: number;
  /** The full key of meta's consistent_index, which Hash leaves out. */
  readonly consistentIndexKey: Buffer;
  readonly metrics: StoreMetricsHooks;
}

/**
 * crc32c over the revisions (key-bucket key and stored value) with main <= hashRev: equal on any
 * two stores that applied the same writes and compactions.
 */
export async function hashKeyBucket(ctx: HashContext, hashRev: number): Promise<number> {
  const started = performance.now();
  let crc = crc32cUpdate(0, Buffer.from(KEY_BUCKET));
  for await (const chunk of ctx.backend.iterateChunks(ctx.revisionKey(0), ctx.revisionKey(hashRev + 1))) {
    for (const [key, value] of chunk) {
      crc = crc32cUpdate(crc, key.subarray(ctx.prefixBytes));
      crc = crc32cUpdate(crc, value);
    }
  }
  ctx.metrics.hash?.('hashRev', (performance.now() - started) / 1000);
  return crc;
}

/** crc32c over the whole backend (all buckets), excluding consistent_index (etcd's Hash ignores it). */
export async function hashBackend(ctx: HashContext): Promise<number> {
  const started = performance.now();
  let crc = 0;
  for await (const chunk of ctx.backend.allEntries()) {
    for (const [key, value] of chunk) {
      if (key.equals(ctx.consistentIndexKey) || ctx.backend.isSyncMarker(key)) continue;
      crc = crc32cUpdate(crc, key);
      crc = crc32cUpdate(crc, value);
    }
  }
  ctx.metrics.hash?.('hash', (performance.now() - started) / 1000);
  return crc;
}
