import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Logger } from 'pino';
import { failStop } from '../../etcdserver/fatal';
import { ENTRY_HEADER_BYTES, SNAPSHOT_REPLACES_LOG, encodeEntryHeader, encodeHardState, encodeSnapshot, type WalEntry, type WalHardState, type WalSnapshotMeta } from './payload';
import { RecordType, encodeRecord, frameBytes } from './record';
import { replay, type WalContents } from './replay';
import { FilePipeline, SEGMENT_SIZE_BYTES, fsyncDir, preallocate, segmentName, type SegmentName } from './segment-files';
import { migrateLegacyWal } from './legacy-leveldb';
import { openSegments } from './open';

export type { WalEntry, WalHardState, WalSnapshotMeta } from './payload';
export type { WalContents } from './replay';
export { WalCorruptionError } from './decoder';

/**
 * The write-ahead log (etcd's server/storage/wal): Raft's entries, hard state, snapshot markers and
 * member metadata, appended to preallocated segment files under <data-dir>/member/wal, apart from
 * the key-value backend (member/snap/db) as etcd keeps them. See docs/wal.md for the format, the
 * repair rules and what is fsynced when.
 *
 * Group commit: a save's records (one Ready's entries and hard state) are one write, made at once
 * on this thread (a copy into the page cache: no thread-pool round trip, which under load costs
 * more than the copy); a synced save then waits for the next fdatasync, and everything written
 * while one fdatasync runs shares the next. A save resolves only once its records are written
 * and, when it asked for sync, fdatasynced.
 */

/** etcd's --max-wals default: segments kept even when a snapshot covers them (0 keeps all). */
export const DEFAULT_MAX_WAL_FILES = 5;

/** etcd's warnSyncDuration: an fdatasync slower than this is logged. */
const WARN_SYNC_SECONDS = 1;

/**
 * A sync round of one save holding at most this many entries (a lightly loaded member: one client
 * writing, a heartbeat's term change) is fdatasynced on the calling thread. The thread-pool round
 * trip (hand-off, wake-up, completion back to the event loop) cost more than the fsync itself at
 * one client: 0.7 ms p50 measured around an fdatasync of 0.12 ms. A larger round means requests
 * are arriving; its fdatasync runs in the thread pool so they are read and proposed meanwhile.
 */
export const INLINE_SYNC_MAX_ENTRIES = 1;

/**
 * ... and only while the previous fdatasync took less than this: on a disk that has become slow,
 * blocking the event loop would stall reads, watches and heartbeats for as long as the fsync takes.
 */
export const INLINE_SYNC_MAX_SECONDS = 0.002;

/** Test-only faults for cluster-tests (CAIRN_TESTING_* variables); never set in production. */
export interface WalTestingFaults {
  /** Keep unsynced writes in memory until the next synced one: SIGKILL then acts as a power cut. */
  readonly loseUnsyncedWrites?: boolean;
  /** Write every Ready without fsync and still report it durable: the bug the self-test must catch. */
  readonly unsafeNoFsync?: boolean;
}

/** Measurements for metrics (etcd_disk_wal_fsync_duration_seconds, etcd_disk_wal_write_bytes_total). */
export interface WalObserver {
  fsyncSeconds?(seconds: number): void;
  writeBytes?(bytes: number): void;
}

export interface WalOptions {
  observer?: WalObserver;
  faults?: WalTestingFaults;
  /** --max-wals. */
  maxWalFiles?: number;
  /** Tests only (etcd exports SegmentSizeBytes for the same reason). */
  segmentSizeBytes?: number;
  log?: Logger;
}

interface PendingRecord {
  type: RecordType;
  parts: Uint8Array[];
  dataBytes: number;
  entryIndex?: number;
  state?: WalHardState;
  snapshot?: WalSnapshotMeta;
  metadata?: Buffer;
}

interface Waiter {
  sync: boolean;
  /** Entry records in the save (decides whether its round may fdatasync inline). */
  entries: number;
  /** The caller lets its round fdatasync inline (false: a leader whose messages are still being sent). */
  syncInline: boolean;
  resolve: () => void;
  reject: (e: unknown) => void;
}

export class Wal {
  /** loseUnsyncedWrites: unsynced records kept in memory until a synced save writes them. */
  private held: PendingRecord[] = [];
  /** Saves that arrived during a cut, written to the new segment after it. */
  private queued: PendingRecord[] = [];
  private queuedWaiters: Waiter[] = [];
  /** Written, waiting for the next fdatasync. */
  private syncWaiters: Waiter[] = [];
  private syncing: Promise<void> | undefined;
  private lastSyncSeconds = 0;
  private cutting: Promise<void> | undefined;
  private closed = false;
  /** The latest of each, as written: copied to the head of every new segment. */
  private metadata: Buffer | undefined;
  private lastSnapshot: WalSnapshotMeta | undefined;
  private lastState: WalHardState | undefined;
  private durableSnapshotIndex = 0;
  private compactIndex = 0;
  private readonly pipeline: FilePipeline;
  private readonly segmentSizeBytes: number;
  private readonly maxWalFiles: number;

  private constructor(
    private readonly dir: string,
    private readonly opts: WalOptions,
    private tail: fs.promises.FileHandle,
    private tailOffset: number,
    private crc: number,
    private lastEntryIndex: number,
    private readonly segments: SegmentName[],
    private contents: WalContents | undefined,
  ) {
    this.segmentSizeBytes = opts.segmentSizeBytes ?? SEGMENT_SIZE_BYTES;
    this.maxWalFiles = opts.maxWalFiles ?? DEFAULT_MAX_WAL_FILES;
    this.pipeline = new FilePipeline(dir, this.segmentSizeBytes);
    this.metadata = contents?.metadata ? Buffer.from(contents.metadata) : undefined;
    this.lastSnapshot = contents?.snapshot;
    this.durableSnapshotIndex = contents?.snapshot?.index ?? 0;
    this.lastState = contents?.hardState;
  }

  /**
   * Opens (or creates) the WAL in `dir` and replays it. Throws WalCorruptionError when it cannot be
   * replayed as written; a torn last record is repaired first (see docs/wal.md).
   */
  static async open(dir: string, opts: WalOptions = {}): Promise<Wal> {
    await migrateLegacyWal(dir, (d, contents) => Wal.writeNew(d, contents, opts), opts.log);
    const size = opts.segmentSizeBytes ?? SEGMENT_SIZE_BYTES;
    const o = await openSegments(dir, size, opts.log);
    const r = await replay(dir, o.segments);
    const tail = await fs.promises.open(path.join(dir, o.segments[o.segments.length - 1].name), 'r+');
    try {
      // A segment just created is zeros after its crc record already.
      if (!o.created) await zeroToEnd(tail, r.tailOffset, size);
    } catch (e) {
      await tail.close();
      throw e;
    }
    if (r.torn) opts.log?.warn({ file: o.segments[o.segments.length - 1].name, offset: r.tailOffset }, 'wal: repaired a torn write at the end of the last segment');
    return new Wal(dir, opts, tail, r.tailOffset, r.crc, r.lastEntryIndex, o.segments, r.contents);
  }

  /** A new WAL in `dir` holding `contents` (the LevelDB WAL's migration), fsynced. */
  private static async writeNew(dir: string, contents: WalContents, opts: WalOptions): Promise<void> {
    const w = await Wal.open(dir, { segmentSizeBytes: opts.segmentSizeBytes, log: opts.log });
    try {
      if (contents.metadata) await w.saveMetadata(contents.metadata);
      await w.save({ entries: contents.entries, hardState: contents.hardState, snapshot: contents.snapshot, sync: true });
    } finally {
      await w.close();
    }
  }

  /**
   * Everything needed to rebuild Raft's in-memory storage after a restart or crash (read at open).
   * Once: the WAL does not keep a second copy of the log in memory.
   */
  async readAll(): Promise<WalContents> {
    const c = this.contents;
    if (!c) throw new Error('wal: readAll called twice');
    this.contents = undefined;
    return c;
  }

  /**
   * Persist one Ready: a snapshot from the leader (replacing this member's whole log), entries (a
   * later record at an index replaces an earlier one and everything after it) and the hard state.
   */
  async save(opts: { entries: readonly WalEntry[]; hardState?: WalHardState; snapshot?: WalSnapshotMeta; sync: boolean; syncInline?: boolean }): Promise<void> {
    const recs: PendingRecord[] = [];
    if (opts.snapshot) recs.push(snapshotRecord(opts.snapshot, SNAPSHOT_REPLACES_LOG));
    for (const e of opts.entries) {
      const head = Buffer.allocUnsafe(ENTRY_HEADER_BYTES);
      encodeEntryHeader(e, head, 0);
      recs.push({ type: RecordType.Entry, parts: [head, e.data], dataBytes: ENTRY_HEADER_BYTES + e.data.length, entryIndex: e.index });
    }
    if (opts.hardState) {
      const data = encodeHardState(opts.hardState);
      recs.push({ type: RecordType.State, parts: [data], dataBytes: data.length, state: opts.hardState });
    }
    if (recs.length === 0) return;
    // unsafeNoFsync, a test-only bug cluster-tests' self-test must catch: Raft is told the Ready is
    // durable although nothing was fsynced (with loseUnsyncedWrites, it stays in memory).
    await this.enqueue(recs, opts.sync && !this.opts.faults?.unsafeNoFsync, opts.syncInline ?? true);
  }

  async saveMetadata(metadata: Uint8Array): Promise<void> {
    const data = Buffer.from(metadata);
    await this.enqueue([{ type: RecordType.Metadata, parts: [data], dataBytes: data.length, metadata: data }], true);
  }

  /** Records a snapshot the member took of its own state (log compaction), durably. */
  async saveSnapshot(snapshot: WalSnapshotMeta): Promise<void> {
    await this.enqueue([snapshotRecord(snapshot, 0)], true);
  }

  /**
   * Entries at or below `index` are covered by a snapshot and a synced backend: segments holding
   * nothing newer than it and the last durable snapshot are released, oldest first, while more
   * than --max-wals remain (etcd's ReleaseLockTo + purge).
   */
  async compact(index: number): Promise<void> {
    this.compactIndex = Math.max(this.compactIndex, index);
    const upTo = Math.min(this.compactIndex, this.durableSnapshotIndex);
    let removed = false;
    while (this.maxWalFiles > 0 && this.segments.length > this.maxWalFiles && this.segments[1].index - 1 <= upTo) {
      const s = this.segments.shift() as SegmentName;
      await fs.promises.rm(path.join(this.dir, s.name), { force: true }).catch((e: unknown) => this.failed(e));
      removed = true;
    }
    if (removed) this.opts.log?.info({ 'released-to': upTo, segments: this.segments.length }, 'wal: released segments covered by the snapshot');
  }

  async close(): Promise<void> {
    // A clean stop keeps what it wrote, even with loseUnsyncedWrites (only a kill loses it).
    if (this.held.length > 0 && !this.closed) await this.enqueue([], true);
    while (this.cutting || this.syncing) await (this.cutting ?? this.syncing);
    this.closed = true;
    await this.pipeline.close();
    await this.tail.close();
  }

  /**
   * Records are written at once (a write to the page cache, on this thread, in call order, which
   * is the crc chain's order); a synced save then waits for the next fdatasync, which covers every
   * write before it. While one fdatasync runs, the saves written meanwhile wait for one more.
   */
  private enqueue(recs: PendingRecord[], sync: boolean, syncInline = true): Promise<void> {
    if (this.closed) return Promise.reject(new Error('wal: closed'));
    // Power-cut simulation: an unsynced write stays in memory until a synced one carries it.
    if (this.opts.faults?.loseUnsyncedWrites && !sync) {
      this.held.push(...recs);
      return Promise.resolve();
    }
    if (this.held.length > 0) {
      recs = [...this.held, ...recs];
      this.held = [];
    }
    let entries = 0;
    for (const r of recs) if (r.entryIndex !== undefined) entries++;
    return new Promise((resolve, reject) => {
      const waiter = { sync, entries, syncInline, resolve, reject };
      if (this.cutting) {
        this.queued.push(...recs);
        this.queuedWaiters.push(waiter);
        return;
      }
      this.writeAndWait(recs, [waiter]);
    });
  }

  private writeAndWait(recs: PendingRecord[], waiters: Waiter[]): void {
    try {
      this.write(recs);
    } catch (e) {
      for (const w of waiters) w.reject(e);
      this.failed(e);
      return;
    }
    for (const w of waiters) {
      if (w.sync) this.syncWaiters.push(w);
      else w.resolve();
    }
    const full = this.tailOffset >= this.segmentSizeBytes;
    if (this.syncWaiters.length > 0 && !this.syncing) {
      // Started now, not after whatever the caller does next (the Ready loop applies committed
      // entries right after its save: the fsync runs meanwhile). A cut waits for this round.
      if (!full && this.inlineRound(this.syncWaiters)) this.syncInline();
      else this.syncing = this.syncLoop();
    }
    if (full) this.startCut();
    else if (this.tailOffset >= this.segmentSizeBytes / 2) this.pipeline.prepare();
  }

  private inlineRound(w: readonly Waiter[]): boolean {
    return w.length === 1 && w[0].syncInline && w[0].entries <= INLINE_SYNC_MAX_ENTRIES && this.lastSyncSeconds < INLINE_SYNC_MAX_SECONDS;
  }

  /** This round's fdatasync on the calling thread (see INLINE_SYNC_MAX_ENTRIES). */
  private syncInline(): void {
    const w = this.syncWaiters;
    this.syncWaiters = [];
    const snapshotIndex = this.lastSnapshot?.index ?? 0;
    try {
      const started = process.hrtime.bigint();
      fs.fdatasyncSync(this.tail.fd);
      this.observeSync(started);
    } catch (e) {
      for (const x of w) x.reject(e);
      this.failed(e);
      return;
    }
    this.durableSnapshotIndex = snapshotIndex;
    for (const x of w) x.resolve();
  }

  /** One fdatasync per round for everything written before it, until no synced save waits. */
  private async syncLoop(): Promise<void> {
    while (this.syncWaiters.length > 0) {
      const waiters = this.syncWaiters;
      this.syncWaiters = [];
      const snapshotIndex = this.lastSnapshot?.index ?? 0;
      try {
        await this.sync(this.tail);
      } catch (e) {
        for (const w of waiters) w.reject(e);
        this.failed(e);
        continue;
      }
      this.durableSnapshotIndex = snapshotIndex;
      for (const w of waiters) w.resolve();
    }
    this.syncing = undefined;
  }

  /**
   * A WAL write or fsync that failed leaves unknown what reached the disk (after a failed fsync the
   * kernel may have dropped the dirty pages, so retrying can report success for data that is gone),
   * and Raft already counts on the record: etcd's raftNode does `lg.Fatal("failed to save Raft hard
   * state and entries")`. A failure racing close() only rejects.
   */
  private failed(e: unknown): void {
    if (!this.closed) failStop('wal write failed', e);
  }

  /** Encodes `recs` (continuing the crc chain) and writes them at the tail's end, synchronously. */
  private write(recs: PendingRecord[]): void {
    if (recs.length === 0) return;
    let total = 0;
    for (const r of recs) total += frameBytes(r.dataBytes);
    const buf = Buffer.allocUnsafe(total);
    let off = 0;
    for (const r of recs) {
      this.crc = encodeRecord(buf, off, r.type, r.parts, this.crc);
      off += frameBytes(r.dataBytes);
      this.track(r);
    }
    let done = 0;
    while (done < total) done += fs.writeSync(this.tail.fd, buf, done, total - done, this.tailOffset + done);
    this.tailOffset += total;
    this.opts.observer?.writeBytes?.(total);
  }

  private startCut(): void {
    if (this.cutting) return;
    this.cutting = this.cut().then(
      () => {
        this.cutting = undefined;
        const recs = this.queued;
        const waiters = this.queuedWaiters;
        this.queued = [];
        this.queuedWaiters = [];
        if (waiters.length > 0) this.writeAndWait(recs, waiters);
      },
      (e: unknown) => {
        for (const w of this.queuedWaiters) w.reject(e);
        this.failed(e);
      },
    );
  }

  private track(r: PendingRecord): void {
    if (r.entryIndex !== undefined) this.lastEntryIndex = r.entryIndex;
    if (r.state) this.lastState = r.state;
    if (r.snapshot) this.lastSnapshot = r.snapshot;
    if (r.metadata) this.metadata = r.metadata;
  }

  private async sync(h: fs.promises.FileHandle): Promise<void> {
    const started = process.hrtime.bigint();
    await h.datasync();
    this.observeSync(started);
  }

  /** Records an fdatasync's duration (metrics, the slow-disk warning, the inline rule). */
  private observeSync(started: bigint): void {
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    this.lastSyncSeconds = seconds;
    this.opts.observer?.fsyncSeconds?.(seconds);
    if (seconds > WARN_SYNC_SECONDS) this.opts.log?.warn({ took: `${seconds}s`, 'expected-duration': `${WARN_SYNC_SECONDS}s` }, 'slow fdatasync');
  }

  /**
   * etcd's cut: the full segment is fdatasynced (a non-last segment can never be repaired), the
   * preallocated next one gets its head (crc, metadata, snapshot marker, hard state: the segments
   * before it may be released) and is fdatasynced, then renamed into place and the directory
   * fsynced. A crash before the rename leaves a `.tmp` file that open removes.
   */
  private async cut(): Promise<void> {
    // No write reaches the old tail any more (saves queue while cutting); wait out its syncs.
    while (this.syncing) await this.syncing;
    await this.sync(this.tail);
    const tmp = await this.pipeline.open();
    const h = await fs.promises.open(tmp, 'r+');
    let off: number;
    try {
      const head: PendingRecord[] = [{ type: RecordType.Crc, parts: [], dataBytes: 0 }];
      if (this.metadata) head.push({ type: RecordType.Metadata, parts: [this.metadata], dataBytes: this.metadata.length });
      if (this.lastSnapshot) head.push(snapshotRecord(this.lastSnapshot, 0));
      if (this.lastState) {
        const data = encodeHardState(this.lastState);
        head.push({ type: RecordType.State, parts: [data], dataBytes: data.length });
      }
      let total = 0;
      for (const r of head) total += frameBytes(r.dataBytes);
      const buf = Buffer.allocUnsafe(total);
      off = 0;
      for (const r of head) {
        this.crc = encodeRecord(buf, off, r.type, r.parts, this.crc);
        off += frameBytes(r.dataBytes);
      }
      await writeFully(h, buf, 0);
      await this.sync(h);
    } catch (e) {
      await h.close();
      throw e;
    }
    const seg = { seq: this.segments[this.segments.length - 1].seq + 1, index: this.lastEntryIndex + 1, name: '' };
    seg.name = segmentName(seg.seq, seg.index);
    await fs.promises.rename(tmp, path.join(this.dir, seg.name));
    await fsyncDir(this.dir);
    await this.tail.close();
    this.tail = h;
    this.tailOffset = off;
    this.segments.push(seg);
    this.opts.log?.info({ path: path.join(this.dir, seg.name) }, 'created a new WAL segment');
  }
}

function snapshotRecord(s: WalSnapshotMeta, flags: number): PendingRecord {
  const data = encodeSnapshot(s, flags);
  return { type: RecordType.Snapshot, parts: [data], dataBytes: data.length, snapshot: s };
}

async function writeFully(h: fs.promises.FileHandle, buf: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const { bytesWritten } = await h.write(buf, done, buf.length - done, position + done);
    done += bytesWritten;
  }
}

/**
 * etcd's ZeroToEnd after ReadAll: whatever follows the last valid record (a torn write, or records
 * after a zero sector of one) is zeroed and fdatasynced before anything is appended, so a later
 * partial overwrite can never join old bytes into a record that passes its check; a segment
 * shorter than the preallocated size (cut short by hand) is extended back to it with zeros.
 */
async function zeroToEnd(h: fs.promises.FileHandle, from: number, segmentSizeBytes: number): Promise<void> {
  const { size } = await h.stat();
  await h.truncate(from);
  await preallocate(h, from, Math.max(size, segmentSizeBytes));
}
