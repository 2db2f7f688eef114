/**
 * Every limit of the watch hub, in one place, with etcd's value where etcd has one
 * (mvcc/watchable_store.go, mvcc/watcher.go, etcdserver/api/v3rpc/watch.go).
 */
import { WATCH_BATCH_MAX_REVS } from './limits';

export { WATCH_BATCH_MAX_REVS };

/** A create with watch_id 0 asks the server to pick the ID (etcd clientv3.AutoWatchID). */
export const AUTO_WATCH_ID = 0;
/** The watch_id of stream-wide responses and of refused creates (etcd clientv3.InvalidWatchID). */
export const INVALID_WATCH_ID = -1;

/**
 * Responses one watcher may have queued ahead of its stream's transport (etcd's chanBufLen, 128,
 * which etcd applies per stream; we apply it per watcher so one busy watcher cannot push its
 * neighbours into catch-up). A synced watcher whose buffer is full is moved to the unsynced group
 * and later catches up from history; it never blocks the apply loop and never loses events.
 */
export const WATCHER_BUFFER_RESPONSES = 128;

/** At most this many unsynced watchers share one catch-up read (etcd maxWatchersPerSync). */
export const MAX_WATCHERS_PER_SYNC = 512;

/**
 * Recent committed revisions kept in memory (with the prev_kv they were delivered with), so a
 * watcher that fell a little behind rejoins the live stream without reading the revisions back,
 * even under a steady write load. Bounded by
 * revisions (one catch-up batch, so a catch-up from memory is always a single response) and bytes.
 */
export const RECENT_HISTORY_MAX_REVS = WATCH_BATCH_MAX_REVS;
export const RECENT_HISTORY_MAX_BYTES = 16 * 1024 * 1024;

/** etcd's default --experimental-watch-progress-notify-interval (10 minutes). */
export const DEFAULT_PROGRESS_NOTIFY_INTERVAL_MS = 10 * 60 * 1000;
/** etcd adds up to 10% random jitter to each stream's progress interval. */
export const PROGRESS_NOTIFY_JITTER_FRACTION = 0.1;

/** Cancel reasons (mvcc/watcher.go): sent in cancel_reason, not as gRPC errors. */
export const ERR_EMPTY_WATCHER_RANGE = 'mvcc: watcher range is empty';
export const ERR_DUPLICATE_WATCH_ID = 'mvcc: duplicate watch ID provided on the WatchStream';
