/**
 * One client watch stream (etcd mvcc/watcher.go watchStream plus the ordering rules of
 * v3rpc/watch.go): watch IDs, the ordered queue of responses waiting for the transport, and the
 * watchers it owns. The transport pulls with `next()` while it has room and is told by `onReady`
 * when there is something to pull, so a slow client only ever slows itself down.
 *
 * Ordering guarantees (everything goes through one FIFO):
 *  - a watcher's `created` response precedes all of its events;
 *  - a stream-wide progress notification (watch_id -1) follows every event enqueued before it;
 *  - after a client cancel, the watcher's queued events are dropped and nothing follows the
 *    `canceled` response.
 */
import assert from 'node:assert/strict';
import type { Event } from './kv';
import { type KeyRange, resolveRange } from './tree-index';
import {
  AUTO_WATCH_ID,
  ERR_DUPLICATE_WATCH_ID,
  ERR_EMPTY_WATCHER_RANGE,
  INVALID_WATCH_ID,
  WATCHER_BUFFER_RESPONSES,
} from './watch-limits';

/** What the transport sends; the server adds the header fields other than the revision. */
export interface WatchResponse {
  readonly watchId: number;
  /** header.revision: 0 in a compaction cancel, as etcd sends it. */
  readonly revision: number;
  readonly events: readonly Event[];
  readonly created: boolean;
  readonly canceled: boolean;
  readonly compactRevision: number;
  readonly cancelReason: string;
  /** The watcher asked for large responses to be split (WatchCreateRequest.fragment). */
  readonly fragment: boolean;
}

export interface WatchCreate {
  /** Client-chosen ID, or AUTO_WATCH_ID (0) for the next free one. */
  readonly id: number;
  readonly key: Buffer;
  /** null = the single key; a single 0x00 byte = every key >= key; otherwise [key, end). */
  readonly end: Buffer | null;
  /**
   * 0 = from the next revision; otherwise the first revision to deliver (inclusive). A negative
   * value is below every compact revision (compactRev is -1 before the first compaction), so the
   * watcher is cancelled with compact_revision, except -1 on a never-compacted store, which etcd
   * turns into a watcher of future revisions only.
   */
  readonly startRev: number;
  readonly noPut?: boolean;
  readonly noDelete?: boolean;
  readonly prevKv?: boolean;
  readonly progressNotify?: boolean;
  readonly fragment?: boolean;
}

/** What a stream needs from the hub (WatchableStore implements it). */
export interface WatchHub {
  readonly currentRev: number;
  /** Registers a new watcher: synced if it starts after the current revision, else unsynced. */
  add(w: Watcher): void;
  remove(w: Watcher): void;
  /** A watcher's buffer drained while it is unsynced: it may catch up now. */
  wake(w: Watcher): void;
}

export class Watcher {
  readonly latin1Key: string;
  readonly range: KeyRange;
  readonly single: boolean;
  /** Events before this revision are never delivered (a watch with a future start revision). */
  readonly startRev: number;
  /** While unsynced: the next revision this watcher must receive. */
  minRev: number;
  synced = false;
  /** No longer registered (cancelled by the client or for compaction, or its stream closed). */
  removed = false;
  /** Cancelled by the client or its stream closed: its queued responses are dropped. */
  dropped = false;
  /** Responses in the stream queue not yet handed to the transport. */
  queued = 0;
  /** No event was queued since the last periodic progress tick (etcd sws.progress[id]). */
  progressDue = true;
  readonly noPut: boolean;
  readonly noDelete: boolean;
  readonly prevKv: boolean;
  readonly progressNotify: boolean;
  readonly fragment: boolean;

  constructor(
    readonly id: number,
    readonly stream: WatchStream,
    req: WatchCreate,
    startRev: number,
  ) {
    this.latin1Key = req.key.toString('latin1');
    this.range = resolveRange(req.key, req.end);
    this.single = this.range.high === undefined;
    this.startRev = startRev;
    this.minRev = startRev;
    this.noPut = req.noPut === true;
    this.noDelete = req.noDelete === true;
    this.prevKv = req.prevKv === true;
    this.progressNotify = req.progressNotify === true;
    this.fragment = req.fragment === true;
  }

  /** The watcher's buffer is full: the next response must come from catch-up instead. */
  get full(): boolean {
    return this.queued >= this.stream.bufferResponses;
  }

  matches(latin1: string): boolean {
    const r = this.range;
    if (r.high === undefined) return latin1 === r.low;
    return latin1 >= r.low && latin1 < r.high;
  }
}

interface QueueEntry {
  /** The watcher the response belongs to (counted in its buffer), or null for stream-level ones. */
  readonly w: Watcher | null;
  readonly resp: WatchResponse;
}

const NO_EVENTS: readonly Event[] = Object.freeze([]);

function response(fields: Partial<WatchResponse> & { watchId: number; revision: number }): WatchResponse {
  return {
    events: NO_EVENTS,
    created: false,
    canceled: false,
    compactRevision: 0,
    cancelReason: '',
    fragment: false,
    ...fields,
  };
}

export class WatchStream {
  private readonly watchers = new Map<number, Watcher>();
  private nextId = 0;
  private queue: QueueEntry[] = [];
  private head = 0;
  private closed = false;
  /** Events in queued responses not yet handed to the transport (etcd's pending_events_total). */
  private queuedEvents = 0;

  constructor(
    private readonly hub: WatchHub,
    private readonly onReady: () => void,
    readonly bufferResponses: number = WATCHER_BUFFER_RESPONSES,
  ) {
    assert(bufferResponses > 0);
  }

  get watcherCount(): number {
    return this.watchers.size;
  }

  /** Events in responses waiting for the transport. */
  get pendingEvents(): number {
    return this.queuedEvents;
  }

  /** Responses waiting for the transport. */
  get pending(): number {
    return this.queue.length - this.head;
  }

  /**
   * Creates a watcher and queues its `created` response (etcd watchStream.Watch and the recvLoop
   * create branch). Returns the watch ID, or INVALID_WATCH_ID if the create was refused, in which
   * case the queued response is created+canceled with the reason.
   */
  watch(req: WatchCreate): number {
    assert(!this.closed, 'watch on a closed stream');
    const rev = this.hub.currentRev;
    const refuse = (reason: string): number => {
      this.push(null, response({ watchId: INVALID_WATCH_ID, revision: rev, created: true, canceled: true, cancelReason: reason }));
      return INVALID_WATCH_ID;
    };
    const end = req.end;
    if (end !== null && end.length > 0 && !(end.length === 1 && end[0] === 0) && Buffer.compare(req.key, end) >= 0) {
      return refuse(ERR_EMPTY_WATCHER_RANGE);
    }
    let id = req.id;
    if (id !== AUTO_WATCH_ID) {
      if (this.watchers.has(id)) return refuse(ERR_DUPLICATE_WATCH_ID);
    } else {
      while (this.watchers.has(this.nextId)) this.nextId++;
      id = this.nextId++;
    }
    // Only 0 means "from the next revision" (etcd v3rpc/watch.go recvLoop: `if rev == 0 { rev =
    // wsrev + 1 }`). A negative start is kept: the hub cancels it as compacted, as etcd does.
    const startRev = req.startRev !== 0 ? req.startRev : rev + 1;
    const w = new Watcher(id, this, req, startRev);
    this.watchers.set(id, w);
    this.push(null, response({ watchId: id, revision: rev, created: true }));
    this.hub.add(w);
    return id;
  }

  /** Cancels a watcher and queues `{watch_id, canceled}`; an unknown ID gets no response (false). */
  cancel(id: number): boolean {
    const w = this.watchers.get(id);
    if (w === undefined) return false;
    this.detach(w);
    this.push(null, response({ watchId: id, revision: this.hub.currentRev, canceled: true }));
    return true;
  }

  /**
   * A client progress request (etcd RequestProgressAll, 3.4.37 / 3.5.13): one `{watch_id: -1}`
   * notification at the current revision, queued behind every event already queued, and only if
   * every watcher on the stream is synced. Returns whether it was queued.
   */
  requestProgress(): boolean {
    for (const w of this.watchers.values()) if (!w.synced) return false;
    this.push(null, response({ watchId: INVALID_WATCH_ID, revision: this.hub.currentRev }));
    return true;
  }

  /**
   * The periodic progress tick (etcd sendLoop's progressTicker): every synced progress_notify
   * watcher that received no events since the previous tick gets `{watch_id, header.revision}`.
   */
  progressTick(): void {
    const rev = this.hub.currentRev;
    for (const w of this.watchers.values()) {
      if (!w.progressNotify) continue;
      // A full buffer means the watcher is receiving events; no notification is needed.
      if (w.progressDue && w.synced && !w.full) this.push(w, response({ watchId: w.id, revision: rev }));
      w.progressDue = true;
    }
  }

  /** The next response for the transport, or undefined when the queue is empty. */
  next(): WatchResponse | undefined {
    while (this.head < this.queue.length) {
      const entry = this.queue[this.head];
      this.queue[this.head] = undefined as unknown as QueueEntry;
      this.head++;
      if (this.head === this.queue.length) {
        this.queue = [];
        this.head = 0;
      } else if (this.head >= 4096 && this.head * 2 >= this.queue.length) {
        this.queue = this.queue.slice(this.head);
        this.head = 0;
      }
      const w = entry.w;
      this.queuedEvents -= entry.resp.events.length;
      if (w !== null) {
        if (w.dropped) continue;
        w.queued--;
        if (w.queued === 0 && !w.synced && !w.removed) this.hub.wake(w);
      }
      return entry.resp;
    }
    return undefined;
  }

  /** Ends the stream: every watcher is removed and queued responses are dropped. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const w of [...this.watchers.values()]) this.detach(w);
    this.queue = [];
    this.head = 0;
    this.queuedEvents = 0;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  // ---------------------------------------------------------------- used by the hub

  /** Queues an event (or progress) response of `w`, counted against its buffer. */
  enqueue(w: Watcher, resp: WatchResponse): void {
    assert(this.watchers.get(w.id) === w && !w.removed);
    if (resp.events.length > 0) w.progressDue = false;
    this.push(w, resp);
  }

  /** Cancels `w` because the history it needs is compacted; its queued events are still sent first. */
  cancelCompacted(w: Watcher, compactRev: number): void {
    assert(this.watchers.get(w.id) === w);
    this.hub.remove(w);
    w.removed = true;
    this.watchers.delete(w.id);
    // etcd builds this header from a zero revision (mvcc WatchResponse{CompactRevision}).
    this.push(null, response({ watchId: w.id, revision: 0, canceled: true, compactRevision: compactRev }));
  }

  eventResponse(w: Watcher, revision: number, events: readonly Event[]): WatchResponse {
    return response({ watchId: w.id, revision, events, fragment: w.fragment });
  }

  private detach(w: Watcher): void {
    this.hub.remove(w);
    w.removed = true;
    w.dropped = true;
    this.watchers.delete(w.id);
  }

  private push(w: Watcher | null, resp: WatchResponse): void {
    if (this.closed) return;
    if (w !== null) w.queued++;
    const wasEmpty = this.head === this.queue.length;
    this.queue.push({ w, resp });
    this.queuedEvents += resp.events.length;
    if (wasEmpty) this.onReady();
  }
}
