/**
 * Rebuilding the in-memory index from the key bucket on open (etcd mvcc/kvstore.go restore and
 * restoreIntoIndex): one scan in revision order appends each revision to its key's history and
 * takes the current generation's create_revision and version and the lease from each key's latest
 * record (etcd rebuilds generation.created / .ver by replaying the revisions; here compaction may
 * have dropped a generation's older revisions, and the record still says how many there were).
 * Values are read by the scan (the key is inside the record) but none is kept, so the index costs
 * memory per key and revision, not per byte of data.
 *
 * After a clean stop the index comes from the checkpoint the close wrote instead
 * (mvcc/index-checkpoint.ts), when its stamp matches the backend; otherwise from the scan.
 */
import type { Backend, Bucket } from './backend';
import { type CheckpointStamp, type IndexCheckpoint, type TakenCheckpoint, stampMismatch, writeIndexCheckpoint } from './index-checkpoint';
import { levelFingerprint } from './backend-files';
import type { StoredMeta } from './kv-store-meta';
import { KeyIndex } from './key-index';
import { decodeIndexFields } from './kv-codec';
import type { LiveKeys } from './live-keys';
import { decodeRevision } from './revision';
import { compareStrings, type TreeIndex } from './tree-index';

/** Fills `index` and `live` (both empty) from a scan of the bucket; returns the newest main revision, or 0. */
export async function restoreIndex(keyBucket: Bucket, index: TreeIndex, live: LiveKeys): Promise<number> {
  let maxMain = 0;
  // A hash map while the scan (in revision order) visits keys at random, then one bulk load in key
  // order: a B-tree descent per revision with long shared key prefixes cost most of the scan.
  const byKey = new Map<string, KeyIndex>();
  for await (const chunk of keyBucket.iterateChunks()) {
    for (const [revKey, record] of chunk) {
      const rev = decodeRevision(revKey);
      const { latin1Key, createRevision, version, lease } = decodeIndexFields(record);
      let ki = byKey.get(latin1Key);
      if (ki === undefined) {
        ki = new KeyIndex();
        byKey.set(latin1Key, ki);
      }
      ki.restore(rev.main, rev.sub, rev.tombstone, createRevision, version, lease);
      maxMain = Math.max(maxMain, rev.main);
    }
  }
  const keys = [...byKey.keys()].sort(compareStrings);
  const indexes = keys.map((k) => byKey.get(k) as KeyIndex);
  byKey.clear();
  // The live set once, after the scan: a key's liveness is known only once its newest revision
  // has been seen.
  load(keys, indexes, index, live);
  return maxMain;
}

/** Fills `index` and `live` (both empty) from a checkpoint whose stamp matched the backend. */
export function restoreIndexFromCheckpoint(checkpoint: IndexCheckpoint, index: TreeIndex, live: LiveKeys): void {
  index.loadSorted(checkpoint.keys, checkpoint.indexes);
  for (const key of checkpoint.liveKeys) live.add(key);
}

function load(keys: string[], indexes: KeyIndex[], index: TreeIndex, live: LiveKeys): void {
  index.loadSorted(keys, indexes);
  for (let i = 0; i < keys.length; i++) if (indexes[i].isLive) live.add(keys[i]);
}

/** How the index was rebuilt on open, for the member's log. */
export interface IndexRestore {
  readonly source: 'checkpoint' | 'scan';
  /** Why a checkpoint that was found could not be used. */
  readonly checkpointUnusable?: string;
}

/** Main revision of the key bucket's newest entry (0 when empty); nothing may be pending in it. */
export async function newestStoredRevision(keyBucket: Bucket): Promise<number> {
  const key = await keyBucket.lastKey();
  return key === undefined ? 0 : decodeRevision(key).main;
}

/**
 * Rebuilds `index` and `live` (both empty) from `taken` when it describes the backend as opened
 * (`meta`), else by scanning; returns the newest stored main revision and how it was done.
 */
export async function restoreIndexOnOpen(
  taken: TakenCheckpoint, backend: Backend, keyBucket: Bucket, meta: StoredMeta, index: TreeIndex, live: LiveKeys,
): Promise<{ maxMain: number; restore: IndexRestore }> {
  let unusable: string | undefined;
  if (taken !== undefined && 'checkpoint' in taken) {
    const newest = await newestStoredRevision(keyBucket);
    unusable = stampMismatch(taken.checkpoint.stamp, {
      fingerprint: backend.fingerprintAtOpen, consistentIndex: meta.consistentIndex,
      scheduledCompact: meta.scheduledCompact, finishedCompact: meta.finishedCompact, newestStoredRevision: newest,
    });
    if (unusable === undefined) {
      try {
        restoreIndexFromCheckpoint(taken.checkpoint, index, live);
        return { maxMain: newest, restore: { source: 'checkpoint' } };
      } catch (e) {
        // bulkLoad refused the keys' order: fall back to the scan with a clean index.
        unusable = (e as Error).message;
        index.clear();
        live.clear();
      }
    }
  } else if (taken !== undefined) {
    unusable = taken.unusable;
  }
  const maxMain = await restoreIndex(keyBucket, index, live);
  return { maxMain, restore: unusable === undefined ? { source: 'scan' } : { source: 'scan', checkpointUnusable: unusable } };
}

/**
 * Writes the index checkpoint of a store whose backend was just closed cleanly; `stamp` was taken
 * after the key bucket's last flush, before the close.
 */
export async function checkpointAfterClose(backend: Backend, stamp: Omit<CheckpointStamp, 'fingerprint'>, index: TreeIndex): Promise<void> {
  const fingerprint = await levelFingerprint(backend.path);
  if (fingerprint === undefined) return;
  writeIndexCheckpoint(backend.path, { ...stamp, fingerprint }, index);
}
