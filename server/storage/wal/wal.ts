import { Level } from 'level';
import { failStop } from '../../etcdserver/fatal';

/**
 * The write-ahead log: Raft's durable state (entries, hard state, snapshot metadata) in its own
 * LevelDB under <data-dir>/member/wal, apart from the key-value backend (member/snap/db) as etcd
 * keeps them apart. Every save is one atomic LevelDB batch written with sync, so a record is
 * either fully durable or absent after a crash: LevelDB's log checksums drop a torn tail.
 */

export interface WalEntry {
  term: number;
  index: number;
  type: number;
  data: Uint8Array;
}

export interface WalHardState {
  term: number;
  vote: bigint;
  commit: number;
}

export interface WalSnapshotMeta {
  index: number;
  term: number;
  /** Encoded conf state and any snapshot payload; opaque to the WAL. */
  data: Uint8Array;
}

export interface WalContents {
  hardState?: WalHardState;
  snapshot?: WalSnapshotMeta;
  entries: WalEntry[];
  /** Member metadata written once at bootstrap (member ID, cluster ID). */
  metadata?: Uint8Array;
}

const ENTRY_PREFIX = 0x65; // 'e' + 8-byte big-endian index: iteration order is log order
const HARD_STATE_KEY = Buffer.from('h');
const SNAPSHOT_KEY = Buffer.from('s');
const METADATA_KEY = Buffer.from('m');

function entryKey(index: number): Buffer {
  const key = Buffer.allocUnsafe(9);
  key[0] = ENTRY_PREFIX;
  key.writeBigUInt64BE(BigInt(index), 1);
  return key;
}

/** Entry record: term (8 bytes) | type (1 byte) | data. The index lives in the key. */
function encodeEntry(e: WalEntry): Buffer {
  const out = Buffer.allocUnsafe(9 + e.data.length);
  out.writeBigUInt64BE(BigInt(e.term), 0);
  out[8] = e.type;
  out.set(e.data, 9);
  return out;
}

function decodeEntry(index: number, rec: Buffer): WalEntry {
  return { index, term: Number(rec.readBigUInt64BE(0)), type: rec[8], data: rec.subarray(9) };
}

function encodeHardState(hs: WalHardState): Buffer {
  const out = Buffer.allocUnsafe(24);
  out.writeBigUInt64BE(BigInt(hs.term), 0);
  out.writeBigUInt64BE(hs.vote, 8);
  out.writeBigUInt64BE(BigInt(hs.commit), 16);
  return out;
}

function decodeHardState(rec: Buffer): WalHardState {
  return { term: Number(rec.readBigUInt64BE(0)), vote: rec.readBigUInt64BE(8), commit: Number(rec.readBigUInt64BE(16)) };
}

function encodeSnapshot(s: WalSnapshotMeta): Buffer {
  const out = Buffer.allocUnsafe(16 + s.data.length);
  out.writeBigUInt64BE(BigInt(s.index), 0);
  out.writeBigUInt64BE(BigInt(s.term), 8);
  out.set(s.data, 16);
  return out;
}

function decodeSnapshot(rec: Buffer): WalSnapshotMeta {
  return { index: Number(rec.readBigUInt64BE(0)), term: Number(rec.readBigUInt64BE(8)), data: rec.subarray(16) };
}

type BatchOp = { type: 'put'; key: Buffer; value: Buffer } | { type: 'del'; key: Buffer };

/** Test-only faults for cluster-tests (CAIRN_TESTING_* variables); never set in production. */
export interface WalTestingFaults {
  /** Keep unsynced writes in memory until the next synced one: SIGKILL then acts as a power cut. */
  readonly loseUnsyncedWrites?: boolean;
  /** Write every Ready without fsync and still report it durable: the bug the self-test must catch. */
  readonly unsafeNoFsync?: boolean;
}

/**
 * The WAL's metrics hook (etcd_disk_wal_fsync_duration_seconds, etcd_disk_wal_write_bytes_total):
 * called with each synced write's duration and the bytes of every write.
 */
export interface WalSyncObserver {
  (durationSeconds: number | undefined, bytesWritten: number): void;
}

export class Wal {
  /** Lowest entry index that may still be stored (entries below were compacted away). */
  private firstStoredIndex = 1;

  /** Unsynced batches held in memory (loseUnsyncedWrites), written ahead of the next synced one. */
  private held: BatchOp[] = [];

  private closed = false;

  private constructor(
    private readonly db: Level<Buffer, Buffer>,
    private readonly onSync: WalSyncObserver,
    private readonly faults: WalTestingFaults,
  ) {}

  static async open(dir: string, onSync: WalSyncObserver = () => {}, faults: WalTestingFaults = {}): Promise<Wal> {
    const db = new Level<Buffer, Buffer>(dir, { keyEncoding: 'buffer', valueEncoding: 'buffer' });
    await db.open();
    return new Wal(db, onSync, faults);
  }

  /** One LevelDB batch, or (loseUnsyncedWrites, unsynced) held until the next synced write. */
  private async write(ops: BatchOp[], sync: boolean): Promise<void> {
    if (this.faults.loseUnsyncedWrites) {
      if (!sync) {
        this.held.push(...ops);
        return;
      }
      ops = [...this.held, ...ops];
      this.held = [];
    }
    await this.durably(() => this.db.batch(ops, { sync }));
  }

  /**
   * Runs a write to the log; if it fails the member stops. A WAL write or fsync that failed leaves
   * unknown what reached the disk (after a failed fsync the kernel may have dropped the dirty pages,
   * so retrying can report success for data that is gone), and Raft already counts on the record:
   * etcd's raftNode does `lg.Fatal("failed to save Raft hard state and entries")` on a failed Save
   * and `lg.Fatal("failed to save Raft snapshot")` on a failed SaveSnap. This covers every write,
   * including the snapshot and compaction ones whose callers run in the background
   * (etcdserver/snapshot.ts). A write racing close() only rejects: nothing is lost
   * that a clean stop promised to keep.
   */
  private async durably(write: () => Promise<void>): Promise<void> {
    try {
      await write();
    } catch (e) {
      if (this.closed) throw e;
      failStop('wal write failed', e);
    }
  }

  /** Everything needed to rebuild Raft's in-memory storage after a restart or crash. */
  async readAll(): Promise<WalContents> {
    const [hs, snap, meta] = await this.db.getMany([HARD_STATE_KEY, SNAPSHOT_KEY, METADATA_KEY]);
    const entries: WalEntry[] = [];
    const snapshot = snap ? decodeSnapshot(snap) : undefined;
    const from = entryKey(snapshot ? snapshot.index + 1 : 0);
    const to = Buffer.from([ENTRY_PREFIX + 1]);
    for await (const [key, value] of this.db.iterator({ gte: from, lt: to })) {
      const index = Number(key.readBigUInt64BE(1));
      // A gap means the log was truncated by a conflicting append that replaced a suffix;
      // entries are contiguous by construction, so stop at the first hole defensively.
      if (entries.length > 0 && index !== entries[entries.length - 1].index + 1) break;
      entries.push(decodeEntry(index, value));
    }
    this.firstStoredIndex = snapshot ? snapshot.index + 1 : entries[0]?.index ?? 1;
    return { hardState: hs ? decodeHardState(hs) : undefined, snapshot, entries, metadata: meta ?? undefined };
  }

  /**
   * Persist one Ready: entries (replacing any conflicting suffix from `entries[0].index` up to
   * `previousLastIndex`), the hard state and a snapshot, in one synced batch.
   */
  async save(opts: {
    entries: readonly WalEntry[];
    hardState?: WalHardState;
    snapshot?: WalSnapshotMeta;
    previousLastIndex: number;
    sync: boolean;
  }): Promise<void> {
    const ops: BatchOp[] = [];
    if (opts.snapshot) {
      // A snapshot from the leader replaces this member's whole log: drop every stored entry in the
      // same atomic batch, so no stale suffix can follow the snapshot after a crash.
      for (let i = this.firstStoredIndex; i <= opts.previousLastIndex; i++) ops.push({ type: 'del', key: entryKey(i) });
      ops.push({ type: 'put', key: SNAPSHOT_KEY, value: encodeSnapshot(opts.snapshot) });
      this.firstStoredIndex = opts.snapshot.index + 1;
    }
    for (const e of opts.entries) ops.push({ type: 'put', key: entryKey(e.index), value: encodeEntry(e) });
    if (opts.entries.length > 0) {
      // Raft overwrote a suffix: drop stale entries beyond the new last index.
      const newLast = opts.entries[opts.entries.length - 1].index;
      for (let i = newLast + 1; i <= opts.previousLastIndex; i++) ops.push({ type: 'del', key: entryKey(i) });
    }
    if (opts.hardState) ops.push({ type: 'put', key: HARD_STATE_KEY, value: encodeHardState(opts.hardState) });
    if (ops.length === 0) return;
    // Test-only bug (cluster-tests' self-test must catch it): Raft is told the Ready is durable
    // although nothing was fsynced.
    const sync = opts.sync && !this.faults.unsafeNoFsync;
    const started = process.hrtime.bigint();
    await this.write(ops, sync);
    let bytes = 0;
    for (const op of ops) bytes += op.key.length + (op.type === 'put' ? op.value.length : 0);
    this.onSync(sync ? Number(process.hrtime.bigint() - started) / 1e9 : undefined, bytes);
  }

  async saveMetadata(metadata: Uint8Array): Promise<void> {
    await this.write([{ type: 'put', key: METADATA_KEY, value: Buffer.from(metadata) }], true);
  }

  /** Drop entries at or below `index` (they are covered by a snapshot and a synced backend). */
  async compact(index: number): Promise<void> {
    await this.durably(() => this.db.clear({ gte: entryKey(0), lte: entryKey(index) }));
    this.firstStoredIndex = Math.max(this.firstStoredIndex, index + 1);
  }

  /** Records a snapshot the member took of its own state (log compaction), durably. */
  async saveSnapshot(snapshot: WalSnapshotMeta): Promise<void> {
    await this.write([{ type: 'put', key: SNAPSHOT_KEY, value: encodeSnapshot(snapshot) }], true);
  }

  async close(): Promise<void> {
    // A clean stop keeps what it wrote, even with loseUnsyncedWrites (only a kill loses it).
    if (this.held.length > 0) await this.write([], true);
    this.closed = true;
    await this.db.close();
  }
}
