/**
 * Every limit in mvcc/, in one place. Defaults follow etcd where etcd has one.
 */

/** Flush the pending backend batch at least this often (etcd backend `defaultBatchInterval`, 100 ms). */
export const BATCH_INTERVAL_MS = 100;

/**
 * Flush the pending backend batch as soon as it holds this many distinct keys (etcd backend
 * `defaultBatchLimit`, 10000). Checked at the end of each write txn, so a txn is never split
 * across two LevelDB batches.
 */
export const BATCH_LIMIT = 10_000;

/**
 * Physical compaction handles this many index keys / backend revisions per chunk, then yields to
 * the event loop so reads and writes interleave (etcd `compactionBatchLimit`, 1000).
 */
export const COMPACTION_BATCH_LIMIT = 1_000;

/** A watch catch-up read returns at most this many distinct main revisions (etcd `watchBatchMaxRevs`). */
export const WATCH_BATCH_MAX_REVS = 1_000;

/** Entries fetched from LevelDB per `nextv()` call when iterating. */
export const ITERATOR_CHUNK_ENTRIES = 1_000;
