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

/**
 * A snapshot install (Backend.replaceAll) writes the new contents in LevelDB batches of at most this
 * many bytes (or BATCH_LIMIT entries), so its memory does not grow with the snapshot's size.
 */
export const INSTALL_BATCH_BYTES = 1024 * 1024;

/** Entries fetched from LevelDB per `nextv()` call when iterating. */
export const ITERATOR_CHUNK_ENTRIES = 1_000;

/**
 * A Range reads the values it returns from LevelDB in getMany calls of at most this many revisions,
 * so a large unpaginated range holds the result plus two chunks of keys (one is fetched ahead), and
 * LevelDB's thread pool serves other reads between chunks.
 */
export const RANGE_FETCH_CHUNK = 1_000;

/**
 * The store's LRU of recently written and point-read values (mvcc/value-cache.ts), in bytes. A put
 * reads no value (create_revision, version and lease are in the key index, as in etcd); the cache
 * serves point reads of hot keys (leases' and elections' keys, a controller's config) without a
 * LevelDB lookup, and a prev_kv watcher's previous value when it was written recently. etcd has no
 * such cache (bbolt reads through the page cache). 8 MiB holds tens of thousands of small hot
 * values; it was 64 MiB while puts read the previous value, which at 100k puts of 1 KiB held
 * ~85 MB of RSS (the entries' objects in the V8 heap too) for no read it saved.
 */
export const DEFAULT_VALUE_CACHE_BYTES = 8 * 1024 * 1024;

/**
 * LevelDB's block cache (uncompressed blocks of recently read tables), in bytes. cairn-only
 * (etcd's bbolt relies on the page cache): `--backend-leveldb-cache-bytes`. LevelDB's
 * own default is 8 MiB; values are no longer cached by the store, so a larger cache keeps hot
 * values in process memory at a bounded cost.
 */
export const DEFAULT_LEVELDB_CACHE_BYTES = 32 * 1024 * 1024;
