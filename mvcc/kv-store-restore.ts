/**
 * Rebuilding the in-memory index from the key bucket on open (etcd mvcc/kvstore.go restore and
 * restoreIntoIndex): one scan in revision order appends each revision to its key's history and
 * takes the current generation's create_revision and version and the lease from each key's latest
 * record (etcd rebuilds generation.created / .ver by replaying the revisions; here compaction may
 * have dropped a generation's older revisions, and the record still says how many there were).
 * Values are read by the scan (the key is inside the record) but none is kept, so the index costs
 * memory per key and revision, not per byte of data.
 */
import type { Bucket } from './backend';
import { KeyIndex } from './key-index';
import { decodeIndexFields } from './kv-codec';
import type { LiveKeys } from './live-keys';
import { decodeRevision } from './revision';
import type { TreeIndex } from './tree-index';

/** Fills `index` and `live` (both empty) from the bucket; returns the newest main revision, or 0. */
export async function restoreIndex(keyBucket: Bucket, index: TreeIndex, live: LiveKeys): Promise<number> {
  let maxMain = 0;
  for await (const chunk of keyBucket.iterateChunks()) {
    for (const [revKey, record] of chunk) {
      const rev = decodeRevision(revKey);
      const { latin1Key, createRevision, version, lease } = decodeIndexFields(record);
      let ki = index.get(latin1Key);
      if (ki === undefined) {
        ki = new KeyIndex();
        index.set(latin1Key, ki);
      }
      ki.restore(rev.main, rev.sub, rev.tombstone, createRevision, version, lease);
      maxMain = Math.max(maxMain, rev.main);
    }
  }
  // Building the live set once, in key order, after the scan: a key's liveness is known only once
  // its newest revision has been seen.
  index.forRange({ low: '', high: '\u0100' }, (latin1Key, ki) => {
    if (ki.isLive) live.add(latin1Key);
  });
  return maxMain;
}
