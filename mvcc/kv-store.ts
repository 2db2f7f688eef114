/**
 * The revisioned keyspace (etcd mvcc/kvstore.go). See docs/mvcc.md for the layout.
 *
 * In memory: the key index (every key's revision history) and the order-statistic set of live keys
 * (range counts). On disk (LevelDB via Backend): every revision's KeyValue in the "key" bucket, read
 * by revision when a range returns it, and consistentIndex / compaction progress in "meta".
 */
import assert from 'node:assert/strict';
import { Backend, type Entry, type BackendOptions, type Bucket } from './backend';
import { ErrClosed, ErrCompacted, ErrFutureRev } from './errors';
import { type HashContext, type HashKVResult, hashBackend, hashKeyBucket } from './hash';
import { NO_LEASE } from './key-index';
import type { Event, KeyValue, RangeOptions, RangeResult, RevRangeOptions } from './kv';
import {
  type ReadContext, fetchRevisions, fetchRevisionsSync, pickAt, pickCurrent, readEventRange,
} from './kv-store-read';
import { type IndexRestore, checkpointAfterClose, newestStoredRevision, restoreIndexOnOpen } from './kv-store-restore';
import { type TakenCheckpoint, takeIndexCheckpoint } from './index-checkpoint';
import { type CompactionContext, CompactionQueue, runCompaction } from './kv-store-compaction';
import {
  KEY_BUCKET, META_BUCKET, META_CONSISTENT_INDEX, META_FINISHED_COMPACT, META_SCHEDULED_COMPACT, encodeUint64, readMeta,
} from './kv-store-meta';
import { TxnWrite } from './kv-store-txn';
import { type StoreRevisions, StoreTxnHost } from './kv-store-txn-host';
import type { StoreMetricsHooks, TxnOps } from './metrics-hooks';
import { COMPACTION_BATCH_LIMIT, DEFAULT_VALUE_CACHE_BYTES, WATCH_BATCH_MAX_REVS } from './limits';
import { ValueCache } from './value-cache';
import { LiveKeys } from './live-keys';
import { REVISION_BYTES, writeRevision } from './revision';
import { TreeIndex, resolveRange } from './tree-index';

export { TxnWrite, KEY_BUCKET, META_BUCKET };
export type { HashKVResult };

export interface KvStoreOptions extends BackendOptions {
  /** etcd's mvcc and backend metrics (see metrics-hooks.ts). */
  readonly metrics?: StoreMetricsHooks;
  /** Keys / revisions per compaction chunk (default COMPACTION_BATCH_LIMIT). */
  readonly compactionBatchLimit?: number;
  /** Bytes of recently written and point-read values kept in memory (default DEFAULT_VALUE_CACHE_BYTES). */
  readonly valueCacheBytes?: number;
  /**
   * Write the key index to a checkpoint at a clean close and read it on the next open instead of
   * scanning the key bucket (mvcc/index-checkpoint.ts); default true. A checkpoint found on open is
   * removed either way.
   */
  readonly indexCheckpoint?: boolean;
}

export interface CompactResult {
  /** Settles when the physical deletion has finished and been flushed (rejects if the store closes first). */
  readonly done: Promise<void>;
}

/**
 * Told of every committed write txn, in revision order, right after it became readable, and of a
 * replaced backend (a leader's snapshot). The watch hub implements it (mvcc/watchable-store.ts).
 */
export interface CommitObserver {
  notify(events: readonly Event[], rev: number): void;
  restored(): void;
}

export class KvStore {
  private readonly index = new TreeIndex();
  /** Keys live at the current revision, for O(log n) range counts. */
  private readonly live = new LiveKeys();
  private readonly reads: ReadContext;
  private readonly keyBucket: Bucket;
  private readonly metaBucket: Bucket;
  private readonly keyPrefixBytes: number;
  private readonly consistentIndexKey: Buffer;
  private readonly txnHost: StoreTxnHost;
  private readonly hashing: HashContext;
  private readonly compacting: CompactionContext;
  private readonly metrics: StoreMetricsHooks;

  /** currentRev, compactMainRev and the consistent index; the txn host bumps them at commit. */
  private readonly revs: StoreRevisions = { currentRev: 1, compactMainRev: -1, appliedIndex: 0 };
  private readsOpen = 0;
  /** Compactions run one after another (etcd's FIFO compaction scheduler). */
  private readonly compactions = new CompactionQueue();
  private closing = false;
  private closed = false;
  /** The watch hub over this store (etcd's watchableStore), told of every commit and restore. */
  private observer: CommitObserver | undefined;
  private readonly checkpointOnClose: boolean;
  /** How the last open or snapshot install rebuilt the index. */
  indexRestore: IndexRestore = { source: 'scan' };

  private constructor(readonly backend: Backend, opts: KvStoreOptions) {
    this.keyBucket = backend.bucket(KEY_BUCKET);
    this.metaBucket = backend.bucket(META_BUCKET);
    this.keyPrefixBytes = this.keyBucket.prefix.length;
    this.consistentIndexKey = this.metaBucket.fullKey(META_CONSISTENT_INDEX);
    this.checkpointOnClose = opts.indexCheckpoint !== false;
    const compactionBatchLimit = opts.compactionBatchLimit ?? COMPACTION_BATCH_LIMIT;
    assert(compactionBatchLimit > 0);
    this.metrics = opts.metrics ?? {};
    const cache = new ValueCache(opts.valueCacheBytes ?? DEFAULT_VALUE_CACHE_BYTES);
    this.hashing = {
      backend, revisionKey: (main) => this.revisionKey(main), prefixBytes: this.keyPrefixBytes,
      consistentIndexKey: this.consistentIndexKey, metrics: this.metrics,
    };
    this.compacting = {
      index: this.index, backend, revisionKey: (main) => this.revisionKey(main), prefixBytes: this.keyPrefixBytes,
      chunkSize: compactionBatchLimit, shouldStop: () => this.closing,
    };
    this.reads = {
      index: this.index, live: this.live, backend, cache, revisionKey: (main, sub) => this.revisionKey(main, sub),
      prefixBytes: this.keyPrefixBytes,
    };
    this.txnHost = new StoreTxnHost({
      reads: this.reads, revs: this.revs, revisionKey: (main, sub, tombstone) => this.revisionKey(main, sub, tombstone),
      consistentIndexKey: this.consistentIndexKey, metrics: this.metrics,
      notify: (events, rev) => this.observer?.notify(events, rev),
    });
  }

  /** Opens (or creates) the store at `path`, restoring its exact state from disk. */
  static async open(path: string, opts: KvStoreOptions = {}): Promise<KvStore> {
    // Taken (and removed) before the backend can change; used only if it describes it exactly.
    const taken = await takeIndexCheckpoint(path);
    const backend = await Backend.open(path, opts);
    const store = new KvStore(backend, opts);
    try {
      await store.restore(opts.indexCheckpoint === false ? undefined : taken);
    } catch (e) {
      await backend.close();
      throw e;
    }
    return store;
  }

  /** The current revision; 1 on a fresh store, +1 per write txn with changes. */
  get rev(): number {
    return this.revs.currentRev;
  }

  /** The compacted-to revision (etcd compactMainRev); -1 if never compacted. */
  get compactRev(): number {
    return this.revs.compactMainRev;
  }

  /** The raft index of the last applied entry, as recorded by `TxnWrite.end`; 0 on a fresh store. */
  get consistentIndex(): number {
    return this.revs.appliedIndex;
  }

  /** Reads of past revisions in flight (etcd_mvcc_db_open_read_transactions). */
  get openReads(): number {
    return this.readsOpen;
  }

  /** Keys that currently have a value (etcd_debugging_mvcc_keys_total). */
  get liveKeyCount(): number {
    return this.live.size;
  }

  /** Number of keys in the index (live keys plus deleted keys not yet compacted away). */
  get indexedKeyCount(): number {
    return this.index.size;
  }

  // ---------------------------------------------------------------- reads

  /**
   * A read at the current revision, synchronously (txn compares and reads on the apply loop): the
   * values come from LevelDB with getSync. Prefer `range`, which does not block the event loop.
   */
  rangeCurrent(key: Buffer, end: Buffer | null | undefined, opts: RangeOptions = {}): RangeResult {
    this.assertOpen();
    const picks = pickCurrent(this.reads, resolveRange(key, end), normaliseLimit(opts.limit), opts.countOnly === true);
    return { kvs: fetchRevisionsSync(this.reads, picks), count: picks.count, rev: this.revs.currentRev };
  }

  /**
   * A read at any revision (`rev` 0 = current). rev > current → ErrFutureRev; 0 < rev < compactRev
   * → ErrCompacted (a read at compactRev itself is allowed). Values are fetched from LevelDB in
   * chunks without blocking the event loop.
   */
  async range(key: Buffer, end: Buffer | null | undefined, opts: RevRangeOptions = {}): Promise<RangeResult> {
    this.assertOpen();
    const rev = opts.rev ?? 0;
    const range = resolveRange(key, end);
    const limit = normaliseLimit(opts.limit);
    const countOnly = opts.countOnly === true;
    // Reads stay open across event-loop turns while their values come from LevelDB
    // (etcd_mvcc_db_open_read_transactions).
    this.readsOpen++;
    try {
      if (rev <= 0 || rev === this.revs.currentRev) {
        for (;;) {
          const readRev = this.revs.currentRev;
          const picks = pickCurrent(this.reads, range, limit, countOnly);
          const kvs = await fetchRevisions(this.reads, picks);
          const count = picks.count;
          // A compaction above readRev that ran meanwhile may have deleted a revision we picked (it
          // was superseded): read again at the newer current revision, as a later read would.
          if (allPresent(kvs)) return { kvs, count, rev: readRev };
          // A compaction at or below readRev keeps every picked revision: anything else is damage.
          assert(this.revs.compactMainRev > readRev, 'indexed revision missing from the backend');
          this.assertOpen();
        }
      }
      this.checkRevision(rev);
      const picks = pickAt(this.reads, range, rev, limit, countOnly);
      const kvs = await fetchRevisions(this.reads, picks);
      const count = picks.count;
      // A compaction that started meanwhile may have deleted what we read.
      if (rev < this.revs.compactMainRev) throw new ErrCompacted();
      assert(allPresent(kvs), 'indexed revision missing from the backend');
      return { kvs, count, rev: this.revs.currentRev };
    } finally {
      this.readsOpen--;
    }
  }

  /** Calls `visit` with each live key that has a lease (the lessor's re-attach after restart). */
  forEachLiveLease(visit: (latin1Key: string, lease: bigint) => void): void {
    this.index.forRange(resolveRange(Buffer.from([0]), Buffer.from([0])), (latin1, ki) => {
      if (ki.isLive && ki.lease !== NO_LEASE) visit(latin1, ki.lease);
    });
  }

  /** The key's KeyValue as of `rev`; undefined if it did not exist then or `rev` is compacted. */
  async kvAt(key: Buffer, rev: number): Promise<KeyValue | undefined> {
    if (rev <= 0 || rev < this.revs.compactMainRev) return undefined;
    try {
      return (await this.range(key, null, { rev })).kvs[0];
    } catch (e) {
      if (e instanceof ErrCompacted) return undefined;
      throw e;
    }
  }

  /**
   * As `kvAt`, synchronously (value cache, else LevelDB getSync): the watch hub's prev_kv for an
   * event it delivers from memory, read only for watchers that asked for prev_kv.
   */
  kvAtSync(key: Buffer, rev: number): KeyValue | undefined {
    this.assertOpen();
    if (rev <= 0 || rev < this.revs.compactMainRev || rev > this.revs.currentRev) return undefined;
    // At rev >= compactMainRev every revision the index picks survives compaction (see compact).
    return fetchRevisionsSync(this.reads, pickAt(this.reads, resolveRange(key, null), rev, 1, false))[0];
  }

  /** The key's value just before revision `rev` (a watch event's prev_kv), i.e. `kvAt(key, rev - 1)`. */
  prevKvAt(key: Buffer, rev: number): Promise<KeyValue | undefined> {
    return this.kvAt(key, rev - 1);
  }

  /**
   * Every change with fromRev <= main revision <= toRev, in revision order, covering at most
   * `maxRevs` distinct main revisions (so a caller resumes from the last event's revision + 1).
   * DELETE events carry only key and modRevision; events carry no prevKv. fromRev < compactRev →
   * ErrCompacted.
   */
  async readEvents(fromRev: number, toRev: number, maxRevs: number = WATCH_BATCH_MAX_REVS): Promise<Event[]> {
    this.assertOpen();
    assert(maxRevs > 0, 'maxRevs must be positive');
    if (fromRev < this.revs.compactMainRev) throw new ErrCompacted();
    const first = Math.max(fromRev, 0);
    const last = Math.min(toRev, this.revs.currentRev);
    if (last < first) return [];
    const events = await readEventRange(this.reads, first, last, maxRevs);
    if (fromRev < this.revs.compactMainRev) throw new ErrCompacted();
    return events;
  }

  // ---------------------------------------------------------------- writes

  /** Starts the write txn. One at a time; it must be ended before the next `write()`. */
  write(): TxnWrite {
    this.assertOpen();
    return this.txnHost.begin();
  }

  /**
   * Compacts history up to `rev` (etcd Compact): rev <= compactRev → ErrCompacted, rev > current →
   * ErrFutureRev. The compaction is recorded durably (with `consistentIndex`, if given, in the same
   * batch) and reads below `rev` fail from now on; physical deletion runs in the background.
   */
  compact(rev: number, opts: { consistentIndex?: number } = {}): CompactResult {
    this.assertOpen();
    assert(!this.txnHost.busy, 'compact during a write txn');
    if (rev <= this.revs.compactMainRev) throw new ErrCompacted();
    if (rev > this.revs.currentRev) throw new ErrFutureRev();
    this.revs.compactMainRev = rev;
    this.metaBucket.put(META_SCHEDULED_COMPACT, encodeUint64(rev));
    if (opts.consistentIndex !== undefined) this.txnHost.recordConsistentIndex(opts.consistentIndex);
    return { done: this.scheduleCompaction(rev) };
  }

  /** Resolves when no compaction is queued or running. */
  compactionIdle(): Promise<void> {
    return this.compactions.idle();
  }

  // ---------------------------------------------------------------- hashing & maintenance

  /**
   * HashKV (hash.ts) over the revisions with main <= rev that survive compaction, after any running
   * compaction finishes. `rev` 0 = current.
   */
  async hashKV(rev = 0): Promise<HashKVResult> {
    this.assertOpen();
    this.checkRevision(rev);
    await this.compactionIdle();
    this.checkRevision(rev);
    const hashRev = rev > 0 ? rev : this.revs.currentRev;
    const compactRev = this.revs.compactMainRev;
    return { hash: await hashKeyBucket(this.hashing, hashRev), compactRev, hashRev };
  }

  /** Hash (hash.ts) over the whole backend, after any running compaction finishes. */
  async hash(): Promise<number> {
    this.assertOpen();
    await this.compactionIdle();
    return hashBackend(this.hashing);
  }

  /**
   * A backend bucket for the server's own state ("members", "alarm", "lease", …). Its writes join
   * the same pending batch as the store's, so the next `TxnWrite.end`'s consistentIndex covers them.
   * "key" holds revisions and belongs to the store; in "meta" the store owns consistent_index,
   * scheduledCompactRev and finishedCompactRev.
   */
  bucket(name: string): Bucket {
    return this.backend.bucket(name);
  }

  /** Flushes pending writes to LevelDB now; with sync: true also fsyncs (before raft log compaction). */
  forceCommit(opts: { sync?: boolean } = {}): Promise<void> {
    return this.backend.forceCommit(opts);
  }

  /** Approximate on-disk size (Status.dbSize). */
  dbSizeBytes(): Promise<number> {
    return this.backend.sizeBytes();
  }

  /** Approximate bytes of live data (Status.dbSizeInUse). */
  dbSizeInUseBytes(): Promise<number> {
    return this.backend.sizeInUseBytes();
  }

  /** Rewrites LevelDB's files without dead entries; reads and writes continue meanwhile. */
  async defragment(): Promise<void> {
    this.assertOpen();
    const started = performance.now();
    this.metrics.defrag?.(true);
    try {
      await this.backend.defragment();
    } finally {
      this.metrics.defrag?.(false, (performance.now() - started) / 1000);
    }
  }

  /** Reports a read-only txn's operations (ranges served outside a write txn), as etcd's read txns count. */
  recordRead(ops: TxnOps): void {
    this.metrics.txn?.(ops);
  }

  /**
   * Stops any compaction at its next chunk (it resumes on open), flushes with fsync, and closes;
   * then writes the index checkpoint the next open reads instead of scanning.
   */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    await this.compactions.drained();
    this.closed = true;
    if (!this.checkpointOnClose) {
      await this.backend.close();
      return;
    }
    let stamp: Parameters<typeof checkpointAfterClose>[1];
    try {
      // No txn can start now, so once this flush is done nothing is pending in the key bucket.
      await this.backend.forceCommit();
      const meta = await readMeta(this.metaBucket);
      stamp = {
        consistentIndex: meta.consistentIndex, scheduledCompact: meta.scheduledCompact,
        finishedCompact: meta.finishedCompact, newestStoredRevision: await newestStoredRevision(this.keyBucket),
      };
    } finally {
      await this.backend.close();
    }
    await checkpointAfterClose(this.backend, stamp, this.index);
  }

  // ---------------------------------------------------------------- internals

  private assertOpen(): void {
    if (this.closed || this.closing) throw new ErrClosed();
  }

  /** ErrFutureRev / ErrCompacted for a read at `rev` (0 = current). */
  private checkRevision(rev: number): void {
    if (rev > this.revs.currentRev) throw new ErrFutureRev();
    if (rev > 0 && rev < this.revs.compactMainRev) throw new ErrCompacted();
  }

  /** The full backend key of revision (main, sub) in the key bucket. */
  private revisionKey(main: number, sub = 0, tombstone = false): Buffer {
    const key = Buffer.allocUnsafe(this.keyPrefixBytes + REVISION_BYTES + (tombstone ? 1 : 0));
    this.keyBucket.prefix.copy(key, 0);
    writeRevision(key, this.keyPrefixBytes, main, sub, tombstone);
    return key;
  }

  private scheduleCompaction(rev: number): Promise<void> {
    const finished = (at: number): void => this.metaBucket.put(META_FINISHED_COMPACT, encodeUint64(at));
    return this.compactions.schedule(() => runCompaction(this.compacting, rev, finished, this.metrics));
  }

  /**
   * Installs a snapshot of another member's backend (etcd's kvstore.Restore after a raft snapshot):
   * every bucket is replaced and the index, cache, revisions and consistent index are rebuilt.
   * Compactions in progress finish first; the caller (the apply loop) must not write meanwhile.
   */
  async replaceContents(chunks: AsyncIterable<Entry[]> | Iterable<Entry[]>): Promise<void> {
    this.assertOpen();
    assert(!this.txnHost.busy, 'replaceContents during a write txn');
    await this.compactionIdle();
    await this.backend.replaceAll(chunks);
    this.index.clear();
    this.live.clear();
    this.reads.cache.clear();
    this.revs.currentRev = 1;
    this.revs.compactMainRev = -1;
    await this.restore();
    this.observer?.restored();
  }

  /** Attaches the watch hub (one per store): it hears of commits from the store itself, as in etcd. */
  observe(observer: CommitObserver): void {
    assert(this.observer === undefined, 'a store has one watch hub');
    this.observer = observer;
  }

  /** Every backend entry, consistent as of the first chunk: what a snapshot sends to a follower. */
  snapshotEntries(): AsyncGenerator<Entry[]> {
    return this.backend.allEntries();
  }

  /**
   * Rebuilds the index and revision bookkeeping from disk (etcd kvstore.restore): one scan of the
   * key bucket builds every key's revisions; values are not kept (ranges read them by revision).
   */
  private async restore(taken?: TakenCheckpoint): Promise<void> {
    const meta = await readMeta(this.metaBucket);
    const { consistentIndex, scheduledCompact: scheduled, finishedCompact: finished } = meta;
    this.revs.appliedIndex = consistentIndex;
    const { maxMain, restore } = await restoreIndexOnOpen(taken, this.backend, this.keyBucket, meta, this.index, this.live);
    this.indexRestore = restore;
    this.revs.compactMainRev = Math.max(scheduled ?? -1, finished ?? -1);
    // Compaction may have removed every revision up to compactMainRev (e.g. trailing tombstones).
    this.revs.currentRev = Math.max(1, maxMain, this.revs.compactMainRev);
    if (scheduled !== undefined && (finished === undefined || finished < scheduled)) {
      this.scheduleCompaction(scheduled).catch(() => undefined);
    }
  }
}

function allPresent(kvs: Array<KeyValue | undefined>): kvs is KeyValue[] {
  return kvs.every((kv) => kv !== undefined);
}

function normaliseLimit(limit: number | undefined): number {
  return limit !== undefined && limit > 0 ? limit : Infinity;
}
