/**
 * The watch hub (etcd mvcc/watchable_store.go): every watcher of every stream, in two groups.
 *
 *  - **synced** watchers are current: each commit is fanned out to them by `notify`, one response
 *    per revision, straight into their stream's queue. Single-key watchers are found through a map,
 *    range watchers by a scan.
 *  - **unsynced** watchers are behind: new watchers with a past start revision, and synced watchers
 *    whose bounded buffer was full when a commit arrived (etcd's "victims"). A single sync loop
 *    catches them up, in responses of at most WATCH_BATCH_MAX_REVS revisions, from the recent
 *    in-memory history or, further back, from the store (`readEvents`, one read per group of
 *    watchers, prev_kv via `prevKvAt`), and moves them back to the synced group. A watcher whose
 *    start is compacted away is cancelled with `compact_revision`.
 *
 * Commits carry prev_kv only where the write txn had it at hand (it reads no value); for watchers
 * that asked for prev_kv the hub reads the rest at mod_revision - 1 (watch-prev-kv.ts).
 *
 * `notify` never waits and never allocates per-watcher state beyond one queued response, so a slow
 * or stalled client cannot delay the apply loop or other watchers, and memory stays bounded by
 * WATCHER_BUFFER_RESPONSES per watcher plus the recent history.
 */
import assert from 'node:assert/strict';
import { ErrClosed, ErrCompacted } from './errors';
import type { Event, KeyValue } from './kv';
import type { CommitObserver, KvStore } from './kv-store';
import { RecentHistory } from './watch-history';
import { lacksPrevKv, withPrevKv } from './watch-prev-kv';
import {
  MAX_WATCHERS_PER_SYNC,
  RECENT_HISTORY_MAX_BYTES,
  RECENT_HISTORY_MAX_REVS,
  WATCHER_BUFFER_RESPONSES,
  WATCH_BATCH_MAX_REVS,
} from './watch-limits';
import { type WatchHub, type Watcher, WatchStream } from './watch-stream';

export { WatchStream, Watcher } from './watch-stream';
export type { WatchCreate, WatchResponse } from './watch-stream';

/** After an unexpected catch-up failure the sync loop retries after this long (etcd resyncs every 100 ms). */
export const SYNC_RETRY_MS = 100;

export interface WatchableStoreOptions {
  readonly bufferResponses?: number;
  readonly maxWatchersPerSync?: number;
  readonly historyMaxRevs?: number;
  readonly historyMaxBytes?: number;
  /** Catch-up reads of at most this many revisions (tests lower it; etcd: 1000). */
  readonly batchMaxRevs?: number;
}

export interface WatchStats {
  readonly streams: number;
  readonly synced: number;
  readonly unsynced: number;
}

/** Receives the hub's counts after they change (coalesced: at most once per event-loop turn). */
export type WatchStatsListener = (stats: WatchStats) => void;

export class WatchableStore implements WatchHub, CommitObserver {
  /** Synced single-key watchers by latin1 key. */
  private readonly syncedByKey = new Map<string, Set<Watcher>>();
  /** Synced range and prefix watchers. */
  private readonly syncedRanges = new Set<Watcher>();
  private syncedCount = 0;
  private readonly unsynced = new Set<Watcher>();
  private readonly streams = new Set<WatchStream>();
  private history: RecentHistory;
  private readonly historyMaxRevs: number;
  private readonly historyMaxBytes: number;
  private readonly bufferResponses: number;
  private readonly maxWatchersPerSync: number;
  private readonly batchMaxRevs: number;
  private syncScheduled = false;
  private syncing = false;
  private syncAgain = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly statsListeners: WatchStatsListener[] = [];
  private statsDirty = false;

  constructor(
    readonly store: KvStore,
    opts: WatchableStoreOptions = {},
  ) {
    this.bufferResponses = opts.bufferResponses ?? WATCHER_BUFFER_RESPONSES;
    this.maxWatchersPerSync = opts.maxWatchersPerSync ?? MAX_WATCHERS_PER_SYNC;
    this.batchMaxRevs = opts.batchMaxRevs ?? WATCH_BATCH_MAX_REVS;
    this.historyMaxRevs = opts.historyMaxRevs ?? RECENT_HISTORY_MAX_REVS;
    this.historyMaxBytes = opts.historyMaxBytes ?? RECENT_HISTORY_MAX_BYTES;
    this.history = new RecentHistory(store.rev, this.historyMaxRevs, this.historyMaxBytes);
    assert(this.history.lastRev === store.rev);
    // A catch-up from memory must fit one response.
    assert((opts.historyMaxRevs ?? RECENT_HISTORY_MAX_REVS) <= this.batchMaxRevs);
    store.observe(this);
  }

  get currentRev(): number {
    return this.store.rev;
  }

  get stats(): WatchStats {
    return { streams: this.streams.size, synced: this.syncedCount, unsynced: this.unsynced.size };
  }

  /** Events queued on every stream and not yet sent (etcd_debugging_mvcc_pending_events_total). */
  get pendingEvents(): number {
    let n = 0;
    for (const s of this.streams) n += s.pendingEvents;
    return n;
  }

  /** Total registered watchers (synced + unsynced), as etcd's watcher gauge counts them. */
  get watcherCount(): number {
    return this.syncedCount + this.unsynced.size;
  }

  /**
   * Calls `listener` with the current counts now and after every change (etcd's watch_stream_total,
   * watcher_total and slow_watcher_total gauges). Changes are coalesced per event-loop turn, so a
   * burst of 10,000 creates costs one call.
   */
  onStats(listener: WatchStatsListener): void {
    this.statsListeners.push(listener);
    listener(this.stats);
  }

  private statsChanged(): void {
    if (this.statsDirty || this.statsListeners.length === 0) return;
    this.statsDirty = true;
    setImmediate(() => {
      this.statsDirty = false;
      const stats = this.stats;
      for (const l of this.statsListeners) l(stats);
    });
  }

  /** Whether the sync loop has work scheduled or running (tests wait for it to settle). */
  get syncBusy(): boolean {
    return this.syncScheduled || this.syncing;
  }

  /** A new client stream; `onReady` is called when its queue goes from empty to non-empty. */
  newStream(onReady: () => void): WatchStream {
    assert(!this.closed, 'watch hub closed');
    const stream = new WatchStream(this, onReady, this.bufferResponses);
    this.streams.add(stream);
    this.statsChanged();
    return stream;
  }

  /** Closes a stream and forgets it. */
  closeStream(stream: WatchStream): void {
    stream.close();
    this.streams.delete(stream);
    this.statsChanged();
  }

  /**
   * One committed write txn: `events` all have main revision `rev` (= the store's revision now), in
   * txn order, with prev_kv where the txn had it. Called by the store itself (CommitObserver), in
   * revision order.
   */
  notify(events: readonly Event[], rev: number): void {
    assert.equal(rev, this.store.rev, 'notify must run right after the commit');
    if (this.syncedCount === 0) {
      this.history.push(rev, events);
      return;
    }
    const keys = events.map((ev) => ev.kv.key.toString('latin1'));
    // The events as prev_kv watchers get them, each filled in on first need (one read per event,
    // not per watcher); the recent history keeps what was filled in, for watchers catching up.
    let full: Event[] | undefined;
    const withPrev = (i: number): Event => {
      const ev = (full ?? events)[i];
      if (!lacksPrevKv(ev)) return ev;
      full ??= events.slice();
      return (full[i] = withPrevKv(this.store, ev));
    };
    let stripped: Event[] | undefined;
    let allWithPrev: Event[] | undefined;
    const shared = (w: Watcher): readonly Event[] => {
      if (w.prevKv) return (allWithPrev ??= events.map((_, i) => withPrev(i)));
      stripped ??= events.map(withoutPrev);
      return stripped;
    };

    if (this.syncedByKey.size > 0) {
      for (let i = 0; i < events.length; i++) {
        const set = this.syncedByKey.get(keys[i]);
        if (set === undefined) continue;
        // A txn touches a key at most once (duplicate keys are refused), so this is the watcher's only event.
        for (const w of [...set]) {
          if (passesFilter(w, events[i])) this.deliver(w, rev, [w.prevKv ? withPrev(i) : withoutPrev(events[i])]);
        }
      }
    }
    for (const w of [...this.syncedRanges]) {
      let all = !w.noPut && !w.noDelete;
      for (let i = 0; all && i < keys.length; i++) all = w.matches(keys[i]);
      this.deliver(w, rev, all ? shared(w) : select(w, events, keys, rev, withPrev));
    }
    this.history.push(rev, full ?? events);
  }

  /**
   * The store's contents were replaced by a leader's snapshot, so its revision jumped past what the
   * recent history holds (etcd watchableStore.Restore). The history restarts at the new revision and
   * every synced watcher goes back to unsynced from the first revision it has not seen, so the sync
   * loop delivers the skipped revisions from the store, or cancels the watcher as compacted, as for
   * any watcher that fell behind. Without this the next commit trips RecentHistory's no-gap assert
   * inside the applier and every later write on this member answers "Unknown" to its client.
   */
  restored(): void {
    const next = this.history.lastRev + 1;
    this.history = new RecentHistory(this.store.rev, this.historyMaxRevs, this.historyMaxBytes);
    const synced = [...this.syncedRanges];
    for (const set of this.syncedByKey.values()) synced.push(...set);
    for (const w of synced) {
      this.removeSynced(w);
      w.minRev = Math.max(w.minRev, next);
      this.unsynced.add(w);
    }
    this.statsChanged();
    this.scheduleSync();
  }

  /** Stops the sync loop; streams are closed by their owners. */
  close(): void {
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    for (const s of this.streams) s.close();
    this.streams.clear();
  }

  // ---------------------------------------------------------------- WatchHub (used by streams)

  add(w: Watcher): void {
    if (w.startRev > this.store.rev) {
      this.makeSynced(w);
    } else {
      w.minRev = w.startRev;
      this.unsynced.add(w);
      this.scheduleSync();
    }
    this.statsChanged();
  }

  remove(w: Watcher): void {
    if (w.synced) this.removeSynced(w);
    else this.unsynced.delete(w);
    this.statsChanged();
  }

  wake(_w: Watcher): void {
    this.scheduleSync();
  }

  // ---------------------------------------------------------------- live delivery

  private deliver(w: Watcher, rev: number, events: readonly Event[]): void {
    if (events.length === 0 || rev < w.startRev) return;
    if (w.queued >= this.bufferResponses) {
      // Buffer full: this revision and what follows come from catch-up once the client drains.
      this.removeSynced(w);
      w.minRev = rev;
      this.unsynced.add(w);
      this.statsChanged();
      return;
    }
    w.stream.enqueue(w, w.stream.eventResponse(w, rev, events));
  }

  private makeSynced(w: Watcher): void {
    if (this.unsynced.delete(w)) this.statsChanged();
    w.synced = true;
    this.syncedCount++;
    if (w.single) {
      let set = this.syncedByKey.get(w.latin1Key);
      if (set === undefined) {
        set = new Set();
        this.syncedByKey.set(w.latin1Key, set);
      }
      set.add(w);
    } else {
      this.syncedRanges.add(w);
    }
  }

  private removeSynced(w: Watcher): void {
    assert(w.synced);
    w.synced = false;
    this.syncedCount--;
    if (w.single) {
      const set = this.syncedByKey.get(w.latin1Key)!;
      set.delete(w);
      if (set.size === 0) this.syncedByKey.delete(w.latin1Key);
    } else {
      this.syncedRanges.delete(w);
    }
  }

  // ---------------------------------------------------------------- catch-up

  private scheduleSync(): void {
    if (this.syncScheduled || this.closed) return;
    this.syncScheduled = true;
    setImmediate(() => {
      this.syncScheduled = false;
      void this.runSync();
    });
  }

  /** The single sync loop (etcd syncWatchersLoop): runs until no unsynced watcher can progress. */
  private async runSync(): Promise<void> {
    if (this.syncing) {
      this.syncAgain = true;
      return;
    }
    this.syncing = true;
    try {
      for (;;) {
        this.syncAgain = false;
        const group: Watcher[] = [];
        for (const w of [...this.unsynced]) {
          // A watcher with responses still queued waits for its client (wake() restarts us).
          if (w.queued > 0 || w.removed) continue;
          if (this.syncFromMemory(w)) continue;
          if (group.length < this.maxWatchersPerSync) group.push(w);
        }
        if (group.length === 0 || this.closed) break;
        await this.syncFromStore(group);
      }
    } catch (e) {
      if (!(e instanceof ErrClosed) && !this.closed) {
        this.retryTimer = setTimeout(() => this.scheduleSync(), SYNC_RETRY_MS);
      }
    } finally {
      this.syncing = false;
      if (this.syncAgain) this.scheduleSync();
    }
  }

  /**
   * Synchronous catch-up: cancels a watcher whose start is compacted, syncs one that is already
   * current, or serves it from recent history. False when it needs a store read.
   */
  private syncFromMemory(w: Watcher): boolean {
    const compactRev = this.store.compactRev;
    // etcd cancels when minRev < compactRev (a watch from compactRev itself still works).
    if (w.minRev < compactRev) {
      this.unsynced.delete(w);
      w.stream.cancelCompacted(w, compactRev); // hub.remove: the watcher gauge goes down too
      return true;
    }
    if (w.minRev < 0) {
      // Only start_revision -1 on a never-compacted store (compactRev -1) gets here. etcd's
      // syncWatchers reads [minRev, curRev] from the backend with the revisions encoded as
      // unsigned big-endian bytes (revToBytes), so a negative minRev is a range that starts past
      // its end and finds nothing: the watcher joins the synced group with no history and sees
      // only later revisions. Reading from the store here would replay everything instead.
      this.makeSynced(w);
      return true;
    }
    const cur = this.store.rev;
    if (w.minRev <= cur) {
      if (w.minRev < this.history.firstRev) return false;
      const events = this.history.eventsFrom(w.minRev);
      // prev_kv missing from the history is read at modRevision - 1 (absent if compacted, as in etcd).
      const evs = select(w, events, events.map(latin1), w.minRev, (i) => withPrevKv(this.store, events[i]));
      if (evs.length > 0) w.stream.enqueue(w, w.stream.eventResponse(w, cur, evs));
    }
    this.makeSynced(w);
    return true;
  }

  /** One catch-up read from the store for a group of watchers (etcd syncWatchers). */
  private async syncFromStore(group: Watcher[]): Promise<void> {
    const cur = this.store.rev;
    let minRev = Infinity;
    for (const w of group) minRev = Math.min(minRev, w.minRev);
    let events: Event[];
    try {
      events = await this.store.readEvents(minRev, cur, this.batchMaxRevs);
    } catch (e) {
      if (e instanceof ErrCompacted) return; // the next round cancels whoever is below compactRev
      throw e;
    }
    let revs = 0;
    let last = -1;
    for (const ev of events) {
      if (ev.kv.modRevision !== last) {
        revs++;
        last = ev.kv.modRevision;
      }
    }
    const batchEnd = revs >= this.batchMaxRevs ? last : cur;
    const keys = events.map(latin1);

    const picks = new Map<Watcher, number[]>();
    const needPrev = new Set<number>();
    for (const w of group) {
      if (w.removed || w.minRev > batchEnd) continue;
      const idx: number[] = [];
      const from = Math.max(w.minRev, w.startRev);
      for (let i = 0; i < events.length; i++) {
        const ev = events[i];
        if (ev.kv.modRevision < from || !passesFilter(w, ev) || !w.matches(keys[i])) continue;
        idx.push(i);
        if (w.prevKv) needPrev.add(i);
      }
      picks.set(w, idx);
    }
    const prev = await this.prevKvs(events, keys, needPrev);

    const withPrev: (Event | undefined)[] = [];
    for (const [w, idx] of picks) {
      if (w.removed || !this.unsynced.has(w)) continue;
      const evs = idx.map((i) => {
        if (!w.prevKv || prev[i] === undefined) return events[i];
        return (withPrev[i] ??= { type: events[i].type, kv: events[i].kv, prevKv: prev[i] });
      });
      if (evs.length > 0) w.stream.enqueue(w, w.stream.eventResponse(w, cur, evs));
      w.minRev = batchEnd + 1;
      // Close the remaining gap from memory right away, so a steady write load cannot outrun us.
      this.syncFromMemory(w);
    }
  }

  /**
   * prev_kv of the events at `need` (etcd ranges at mod_revision - 1): from an earlier event of the
   * same key in the batch when there is one, absent for a key's first version, else from the store
   * (absent if that revision is compacted).
   */
  private async prevKvs(events: Event[], keys: string[], need: Set<number>): Promise<(KeyValue | undefined)[]> {
    const prev: (KeyValue | undefined)[] = new Array(events.length);
    if (need.size === 0) return prev;
    const lastByKey = new Map<string, Event>();
    const lookups: Promise<void>[] = [];
    for (let i = 0; i < events.length; i++) {
      const ev = events[i];
      const before = lastByKey.get(keys[i]);
      lastByKey.set(keys[i], ev);
      if (!need.has(i)) continue;
      if (before !== undefined) {
        prev[i] = before.type === 'PUT' ? before.kv : undefined;
      } else if (!(ev.type === 'PUT' && ev.kv.version === 1)) {
        lookups.push(
          this.store.prevKvAt(ev.kv.key, ev.kv.modRevision).then((kv) => {
            prev[i] = kv;
          }),
        );
      }
    }
    await Promise.all(lookups);
    return prev;
  }
}

function latin1(ev: Event): string {
  return ev.kv.key.toString('latin1');
}

function withoutPrev(ev: Event): Event {
  return ev.prevKv === undefined ? ev : { type: ev.type, kv: ev.kv };
}

function passesFilter(w: Watcher, ev: Event): boolean {
  return ev.type === 'PUT' ? !w.noPut : !w.noDelete;
}

/**
 * The events (revision >= fromRev and >= the watcher's start) that `w` receives, prev_kv as asked:
 * `withPrev(i)` is event i with its prev_kv filled in.
 */
function select(
  w: Watcher, events: readonly Event[], keys: readonly string[], fromRev: number, withPrev: (i: number) => Event,
): Event[] {
  const out: Event[] = [];
  const from = Math.max(fromRev, w.startRev);
  for (let i = 0; i < events.length; i++) {
    const ev = events[i];
    if (ev.kv.modRevision < from || !passesFilter(w, ev) || !w.matches(keys[i])) continue;
    out.push(w.prevKv ? withPrev(i) : withoutPrev(ev));
  }
  return out;
}
