/**
 * The storage backend (etcd mvcc/backend): one LevelDB holding logical buckets as key prefixes.
 *
 * Writes go to an in-memory pending batch that reads see immediately (read-your-writes, like
 * bbolt's read buffer in etcd's batchTx). The batch is flushed to LevelDB in one atomic `batch()`
 * every BATCH_INTERVAL_MS, or as soon as it holds BATCH_LIMIT keys, without fsync: durability comes
 * from the server's raft WAL, which is replayed from the store's consistentIndex on restart.
 * `forceCommit({ sync: true })` makes everything written so far durable.
 */
import assert from 'node:assert/strict';
import { ErrBackend, ErrClosed } from './errors';
import { BATCH_INTERVAL_MS, BATCH_LIMIT, DEFAULT_LEVELDB_CACHE_BYTES, ITERATOR_CHUNK_ENTRIES } from './limits';
import { finishInterruptedInstall, levelDirBytes, levelFingerprint, openLevel, removeOldDir, swapInstallDir, writeInstallDir, writeLevelBatch, type BatchOp, type LevelDb } from './backend-files';

export interface BackendOptions {
  readonly batchIntervalMs?: number;
  readonly batchLimit?: number;
  /** LevelDB's block cache in bytes (default DEFAULT_LEVELDB_CACHE_BYTES; cairn's own flag). */
  readonly cacheBytes?: number;
  /**
   * Test-only fault (cluster-tests' power-loss scenario): keep writes that would go to LevelDB
   * without fsync in process memory until the next synced write, so SIGKILL loses them as a power
   * cut loses the page cache. Explicit forceCommit() calls are synced in this mode.
   */
  readonly loseUnsyncedWrites?: boolean;
  /**
   * Called with LevelDB's error when a write to it fails (a background batch, a synced commit, a
   * snapshot's replaceAll, defragment): the member can no longer persist what it applies, so the
   * server stops (etcd's backend panics on a failed bbolt commit: "failed to commit tx"). Most of
   * these writes run on a timer with no caller to reject, so without this the failure would only
   * surface at the next write, as an apply error, or never. Default: the process-wide handler set
   * with setDefaultBackendFatalHandler, else none (the backend then only refuses further writes).
   */
  readonly onFatal?: BackendFatalHandler;
  /** etcd_disk_backend_commit_duration_seconds: each batch written to LevelDB, with its duration. */
  readonly metrics?: { backendCommit?(seconds: number): void };
}

/** Receives the error of a failed LevelDB write; the server's handler does not return. */
export type BackendFatalHandler = (err: unknown) => void;

let defaultFatalHandler: BackendFatalHandler | undefined;

/**
 * The handler for backends opened without `onFatal` (the server's fail-stop, installed by its
 * composition root: mvcc/ must not import server/).
 */
export function setDefaultBackendFatalHandler(handler: BackendFatalHandler | undefined): void {
  defaultFatalHandler = handler;
}

/** One pending write; `value` undefined = delete. */
interface PendingOp {
  readonly key: Buffer;
  readonly value: Buffer | undefined;
}

type Overlay = Map<string, PendingOp>;

export type Entry = [key: Buffer, value: Buffer];

export interface IterateOptions {
  /** false = keys only (entries' values are then undefined for LevelDB entries). */
  readonly values?: boolean;
  /** Entries per LevelDB `nextv()` (default ITERATOR_CHUNK_ENTRIES). */
  readonly chunkSize?: number;
}

const BUCKET_NAME = /^[A-Za-z0-9_.-]+$/;
const BUCKET_SEPARATOR = '/';
/** Written (and fsynced) when a sync commit finds nothing pending; excluded from hash(). */
const SYNC_MARKER_KEY = Buffer.from('meta/backend_sync_marker');

/** Bytes above any key we store (bucket names are ASCII), the upper bound for whole-db ranges. */
const KEYSPACE_END = Buffer.alloc(16, 0xff);
const KEYSPACE_START = Buffer.alloc(1, 0);
/** Every bucket key starts with a bucket-name byte (see BUCKET_NAME): '-' (0x2d) to 'z' (0x7a). */
const BUCKET_SPACE_START = Buffer.from('-');
const BUCKET_SPACE_END = Buffer.from('{');
/** Written briefly by defragment() outside every bucket, at both ends of the keyspace. */
const DEFRAG_SENTINEL_LOW = Buffer.from([0x01]);
const DEFRAG_SENTINEL_HIGH = Buffer.alloc(15, 0xff);

export class Backend {
  private pending: Overlay = new Map();
  /** While replaceAll swaps the LevelDB directory: reads and writes wait for the new database. */
  private swapping: Promise<void> | null = null;
  /** The batch being written by LevelDB right now; still part of the read overlay. */
  private flushing: Overlay | null = null;
  private timer: NodeJS.Timeout | null = null;
  /** A flush that is queued but not started; later flush requests join it. */
  private queuedFlush: Promise<void> | null = null;
  private queuedFlushSync = false;
  private flushTail: Promise<void> = Promise.resolve();
  /** True when LevelDB holds writes that were not fsynced. */
  private unsynced = false;
  private failure: ErrBackend | null = null;
  private closed = false;
  private readonly buckets = new Map<string, Bucket>();
  private readonly batchIntervalMs: number;
  private readonly batchLimit: number;
  private readonly loseUnsyncedWrites: boolean;
  private readonly onFatal: BackendFatalHandler | undefined;
  private readonly onCommit: ((seconds: number) => void) | undefined;

  /**
   * @param fingerprintAtOpen the LevelDB directory's fingerprint (levelFingerprint) just before
   * this open, when it held a database: what an index checkpoint written at the last close names.
   */
  private constructor(private db: LevelDb, readonly path: string, private readonly cacheSize: number, opts: BackendOptions, readonly fingerprintAtOpen: string | undefined) {
    this.batchIntervalMs = opts.batchIntervalMs ?? BATCH_INTERVAL_MS;
    this.batchLimit = opts.batchLimit ?? BATCH_LIMIT;
    this.loseUnsyncedWrites = opts.loseUnsyncedWrites === true;
    this.onFatal = opts.onFatal;
    this.onCommit = opts.metrics?.backendCommit?.bind(opts.metrics);
    assert(this.batchIntervalMs > 0 && this.batchLimit > 0);
  }

  static async open(path: string, opts: BackendOptions = {}): Promise<Backend> {
    const cacheSize = opts.cacheBytes ?? DEFAULT_LEVELDB_CACHE_BYTES;
    assert(Number.isSafeInteger(cacheSize) && cacheSize >= 0, 'LevelDB cache size must be a non-negative integer');
    await finishInterruptedInstall(path);
    const fingerprint = await levelFingerprint(path);
    return new Backend(await openLevel(path, cacheSize), path, cacheSize, opts, fingerprint);
  }

  /** The bucket named `name` ("key", "meta", "lease", "members", …); created on first use. */
  bucket(name: string): Bucket {
    let b = this.buckets.get(name);
    if (b === undefined) {
      assert(BUCKET_NAME.test(name), `invalid bucket name ${JSON.stringify(name)}`);
      b = new Bucket(this, name);
      this.buckets.set(name, b);
    }
    return b;
  }

  /** Distinct keys waiting in the pending batch. */
  get pendingCount(): number {
    return this.pending.size;
  }

  // ---- writes (full backend keys, i.e. including the bucket prefix) ----

  putKey(key: Buffer, value: Buffer): void {
    this.stage(key, value);
  }

  delKey(key: Buffer): void {
    this.stage(key, undefined);
  }

  /** Starts a flush now if the pending batch reached BATCH_LIMIT. Call between txns. */
  commitIfFull(): void {
    if (this.pending.size >= this.batchLimit) this.flush(false).catch(noop);
  }

  /** Flushes everything written so far to LevelDB; with sync, also fsyncs it. */
  forceCommit(opts: { sync?: boolean } = {}): Promise<void> {
    if (this.closed) return Promise.reject(new ErrClosed());
    // Callers of forceCommit() then read LevelDB without the overlay (compaction's scan).
    return this.flush(opts.sync === true || this.loseUnsyncedWrites);
  }

  // ---- reads (see pending writes) ----

  async getKey(key: Buffer): Promise<Buffer | undefined> {
    this.assertOpen();
    const op = this.overlayGet(key);
    if (op !== undefined) return op.value;
    if (this.swapping !== null) await this.swapping;
    return (await this.db.get(key)) ?? undefined;
  }

  /** Synchronous point read (LevelDB getSync); only for rare reads on the apply path. */
  getKeySync(key: Buffer): Buffer | undefined {
    this.assertOpen();
    const op = this.overlayGet(key);
    if (op !== undefined) return op.value;
    // Only the apply path reads synchronously, and it never runs during a snapshot install.
    assert(this.swapping === null, 'synchronous read while a snapshot install swaps the backend');
    return this.db.getSync(key) ?? undefined;
  }

  async getManyKeys(keys: Buffer[]): Promise<Array<Buffer | undefined>> {
    this.assertOpen();
    const out: Array<Buffer | undefined> = new Array(keys.length);
    const missIdx: number[] = [];
    const missKeys: Buffer[] = [];
    for (let i = 0; i < keys.length; i++) {
      const op = this.overlayGet(keys[i]);
      if (op !== undefined) {
        out[i] = op.value;
      } else {
        missIdx.push(i);
        missKeys.push(keys[i]);
      }
    }
    if (missKeys.length > 0) {
      if (this.swapping !== null) await this.swapping;
      const got = await this.db.getMany(missKeys);
      for (let j = 0; j < missIdx.length; j++) out[missIdx[j]] = got[j] ?? undefined;
    }
    return out;
  }

  /**
   * Entries with gte <= key < lt in key order, in chunks, as of the moment iteration starts (the
   * first `next()`): LevelDB's implicit iterator snapshot merged with a copy of the pending
   * overlay taken at the same instant. Later writes are not seen.
   */
  async *iterateChunks(gte: Buffer, lt: Buffer, opts: IterateOptions = {}): AsyncGenerator<Entry[]> {
    this.assertOpen();
    const chunkSize = opts.chunkSize ?? ITERATOR_CHUNK_ENTRIES;
    assert(chunkSize > 0);
    if (this.swapping !== null) await this.swapping;
    const overlay = this.overlayBetween(gte, lt);
    const it = this.db.iterator({ gte, lt, values: opts.values !== false });
    let oi = 0;
    // One nextv ahead: LevelDB reads the next chunk on libuv's thread pool while the caller works
    // through this one (a full scan is otherwise half waiting: restore, snapshot, hash).
    let ahead: Promise<Array<[Buffer, Buffer]>> | null = it.nextv(chunkSize) as Promise<Array<[Buffer, Buffer]>>;
    try {
      for (;;) {
        const chunk = await ahead;
        ahead = null;
        if (chunk.length === 0) break;
        ahead = it.nextv(chunkSize) as Promise<Array<[Buffer, Buffer]>>;
        // Settled below or by close(); a failure surfaces on the next await.
        ahead.catch(() => undefined);
        if (oi >= overlay.length) {
          yield chunk as Entry[];
          continue;
        }
        const out: Entry[] = [];
        for (const [k, v] of chunk) {
          while (oi < overlay.length && Buffer.compare(overlay[oi].key, k) < 0) pushOp(out, overlay[oi++]);
          if (oi < overlay.length && overlay[oi].key.equals(k)) {
            pushOp(out, overlay[oi++]);
          } else {
            out.push([k, v]);
          }
        }
        if (out.length > 0) yield out;
      }
      const rest: Entry[] = [];
      while (oi < overlay.length) pushOp(rest, overlay[oi++]);
      if (rest.length > 0) yield rest;
    } finally {
      await it.close();
    }
  }

  /**
   * The greatest key with gte <= key < lt in LevelDB, or undefined; only while no write to the
   * range is pending (after a forceCommit, with the range's writer stopped).
   */
  async lastKeyIn(gte: Buffer, lt: Buffer): Promise<Buffer | undefined> {
    this.assertOpen();
    assert(this.overlayBetween(gte, lt).length === 0, 'lastKeyIn with writes to the range pending');
    const keys = await this.db.keys({ gte, lt, reverse: true, limit: 1 }).all();
    return keys[0];
  }

  // ---- maintenance ----

  /** Approximate size of the database on disk (all files in the LevelDB directory). */
  async sizeBytes(): Promise<number> {
    if (this.swapping !== null) await this.swapping;
    // After close the size is still readable (a /metrics scrape racing shutdown), by stat alone.
    return levelDirBytes(this.closed ? null : this.db, this.path);
  }

  /** LevelDB's own estimate of the bytes used by live data (Status.dbSizeInUse). */
  async sizeInUseBytes(): Promise<number> {
    this.assertOpen();
    if (this.swapping !== null) await this.swapping;
    return this.db.approximateSize(KEYSPACE_START, KEYSPACE_END);
  }

  /**
   * Compacts the whole LevelDB keyspace (etcd's defragment reclaims free pages; here LevelDB
   * rewrites its SSTables without deleted and overwritten entries). Runs on LevelDB's background
   * thread; reads and writes proceed meanwhile.
   */
  async defragment(): Promise<void> {
    this.assertOpen();
    await this.forceCommit();
    if (this.swapping !== null) await this.swapping;
    try {
      await this.compactWholeKeyspace();
    } catch (e) {
      // A failed compaction (ENOSPC while rewriting tables) is a failed write: LevelDB refuses every
      // later write with the same background error, and the sentinel keys may be left behind.
      throw this.failed(e);
    }
  }

  private async compactWholeKeyspace(): Promise<void> {
    // The first pass flushes LevelDB's memtable. When nothing else overlaps it, LevelDB places that
    // table at level 2 as it is, overwritten and deleted entries included, and a manual compaction
    // of the levels above never rewrites it (a database whose data all sat in the memtable kept its
    // full size). Two sentinel keys spanning the keyspace make the next table overlap every level,
    // so the second pass rewrites all of them and drops what compaction deleted.
    await this.db.compactRange(KEYSPACE_START, KEYSPACE_END);
    await this.db.batch([
      { type: 'put', key: DEFRAG_SENTINEL_LOW, value: Buffer.alloc(0) },
      { type: 'put', key: DEFRAG_SENTINEL_HIGH, value: Buffer.alloc(0) },
    ]);
    await this.db.compactRange(KEYSPACE_START, KEYSPACE_END);
    await this.db.batch([
      { type: 'del', key: DEFRAG_SENTINEL_LOW },
      { type: 'del', key: DEFRAG_SENTINEL_HIGH },
    ]);
  }

  /** Every stored entry of every bucket (full keys), in key order, as iterateChunks does. */
  async *allEntries(): AsyncGenerator<Entry[]> {
    yield* this.iterateChunks(BUCKET_SPACE_START, BUCKET_SPACE_END);
  }

  /**
   * Replaces everything with `chunks` (a snapshot from the leader, read from its spooled file) with
   * memory bounded by one install batch, crash-safely: the entries go to a new LevelDB beside this
   * one, which is then swapped in (backend-files.ts has the steps and what a crash leaves). Reads
   * see the old contents until the swap and wait during it (a few milliseconds); iterators still
   * open on the old database fail when it closes (a Maintenance.Snapshot or hash in flight on this
   * member; watch catch-up retries). The caller must not write meanwhile.
   */
  async replaceAll(chunks: AsyncIterable<Entry[]> | Iterable<Entry[]>): Promise<void> {
    this.assertOpen();
    if (this.failure !== null) throw this.failure;
    await this.flush(false);
    let ready: string;
    try {
      ready = await writeInstallDir(this.path, this.cacheSize, this.batchLimit, chunks, SYNC_MARKER_KEY, () => this.assertOpen());
    } catch (e) {
      if (e instanceof ErrClosed) throw e;
      throw this.failed(e);
    }
    await this.swapIn(ready);
  }

  /** The complete, durable `ready` directory becomes the live database. */
  private async swapIn(ready: string): Promise<void> {
    // Nothing should have been written since replaceAll began (the caller's contract); whatever was
    // goes to the old database first, so no flush is left writing to it when it closes. The gate
    // is set in the same turn the flush resolves, before any timer can start another.
    await this.flush(false);
    let swapped!: () => void;
    this.swapping = new Promise((resolve) => (swapped = resolve));
    try {
      this.pending = new Map();
      await this.db.close();
      await swapInstallDir(this.path, ready);
      this.db = await openLevel(this.path, this.cacheSize);
      this.unsynced = false;
    } catch (e) {
      throw this.failed(e);
    } finally {
      this.swapping = null;
      swapped();
    }
    await removeOldDir(this.path).catch(noop);
  }

  isSyncMarker(fullKey: Buffer): boolean {
    return fullKey.equals(SYNC_MARKER_KEY);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    if (this.swapping !== null) await this.swapping;
    try {
      await this.flush(true);
    } finally {
      this.closed = true;
      if (this.timer !== null) clearTimeout(this.timer);
      this.timer = null;
      await this.db.close();
    }
  }

  // ---- internals ----

  private assertOpen(): void {
    if (this.closed) throw new ErrClosed();
  }

  private stage(key: Buffer, value: Buffer | undefined): void {
    this.assertOpen();
    if (this.failure !== null) throw this.failure;
    this.pending.set(key.toString('latin1'), { key, value });
    if (this.timer === null) {
      this.timer = setTimeout(() => {
        this.timer = null;
        // No caller waits on a background commit: a failure reaches the fatal handler in
        // writeBatch, and with no handler it poisons the backend (the next write throws it).
        this.flush(false).catch(noop);
      }, this.batchIntervalMs);
    }
  }

  private overlayGet(key: Buffer): PendingOp | undefined {
    if (this.pending.size === 0 && this.flushing === null) return undefined;
    const k = key.toString('latin1');
    return this.pending.get(k) ?? this.flushing?.get(k);
  }

  /** Pending ops (newest wins) with gte <= key < lt, sorted by key. */
  private overlayBetween(gte: Buffer, lt: Buffer): PendingOp[] {
    if (this.pending.size === 0 && this.flushing === null) return [];
    const lo = gte.toString('latin1');
    const hi = lt.toString('latin1');
    const merged = new Map<string, PendingOp>();
    for (const layer of [this.flushing, this.pending]) {
      if (layer === null) continue;
      for (const [k, op] of layer) if (k >= lo && k < hi) merged.set(k, op);
    }
    const keys = [...merged.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    return keys.map((k) => merged.get(k) as PendingOp);
  }

  /** Flushes are serialised; a request made while one is queued joins it. */
  private flush(sync: boolean): Promise<void> {
    if (this.queuedFlush !== null) {
      if (sync) this.queuedFlushSync = true;
      return this.queuedFlush;
    }
    this.queuedFlushSync = sync;
    const p = this.flushTail.then(() => {
      this.queuedFlush = null;
      return this.writeBatch(this.queuedFlushSync);
    });
    this.queuedFlush = p;
    this.flushTail = p.catch(noop);
    return p;
  }

  private async writeBatch(sync: boolean): Promise<void> {
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    if (this.failure !== null) throw this.failure;
    if (this.closed) return;
    if (this.swapping !== null) await this.swapping;
    // Held in the overlay (which reads see) until a synced write; see BackendOptions.
    if (!sync && this.loseUnsyncedWrites) return;
    const batch = this.pending;
    if (batch.size === 0) {
      if (!sync || !this.unsynced) return;
      batch.set(SYNC_MARKER_KEY.toString('latin1'), { key: SYNC_MARKER_KEY, value: Buffer.alloc(0) });
    }
    this.pending = new Map();
    this.flushing = batch;
    const ops: BatchOp[] = [];
    for (const op of batch.values()) {
      ops.push(op.value === undefined ? { type: 'del', key: op.key } : { type: 'put', key: op.key, value: op.value });
    }
    try {
      const started = performance.now();
      await writeLevelBatch(this.db, ops, sync);
      this.onCommit?.((performance.now() - started) / 1000);
      this.unsynced = !sync;
    } catch (e) {
      throw this.failed(e);
    } finally {
      this.flushing = null;
    }
  }

  /**
   * A LevelDB write failed: refuse every later write (the store can no longer be trusted to hold
   * what was applied) and tell the fatal handler, which stops the server before any caller sees
   * the rejection. Returns the error for callers to throw when no handler stops the process.
   */
  private failed(cause: unknown): ErrBackend {
    this.failure ??= new ErrBackend(cause);
    // After close() a write can only fail because the database is gone (a shutdown race), which
    // says nothing about the disk.
    if (!this.closed) (this.onFatal ?? defaultFatalHandler)?.(cause);
    return this.failure;
  }
}

function pushOp(out: Entry[], op: PendingOp): void {
  if (op.value !== undefined) out.push([op.key, op.value]);
}

function noop(): void {}

/**
 * A logical bucket: keys are stored as `<name>/<key>`. Writes are staged in the backend's pending
 * batch and visible to reads at once; `iterate` yields keys without the prefix.
 */
export class Bucket {
  readonly prefix: Buffer;
  /** First key after every key of this bucket ('/' + 1 = '0'). */
  private readonly upper: Buffer;

  constructor(private readonly backend: Backend, readonly name: string) {
    this.prefix = Buffer.from(name + BUCKET_SEPARATOR, 'latin1');
    this.upper = Buffer.from(name + '0', 'latin1');
  }

  /** The full backend key of `key` in this bucket. */
  fullKey(key: Buffer | string): Buffer {
    const k = typeof key === 'string' ? Buffer.from(key) : key;
    const out = Buffer.allocUnsafe(this.prefix.length + k.length);
    this.prefix.copy(out, 0);
    k.copy(out, this.prefix.length);
    return out;
  }

  get(key: Buffer | string): Promise<Buffer | undefined> {
    return this.backend.getKey(this.fullKey(key));
  }

  put(key: Buffer | string, value: Buffer): void {
    this.backend.putKey(this.fullKey(key), value);
  }

  del(key: Buffer | string): void {
    this.backend.delKey(this.fullKey(key));
  }

  /** The bucket's greatest key, prefix stripped (Backend.lastKeyIn: no write to the bucket pending). */
  async lastKey(): Promise<Buffer | undefined> {
    const key = await this.backend.lastKeyIn(this.prefix, this.upper);
    return key?.subarray(this.prefix.length);
  }

  /** Entries with gte <= key < lt (defaults: the whole bucket) in key order, prefix stripped. */
  async *iterate(opts: { gte?: Buffer; lt?: Buffer } = {}): AsyncGenerator<Entry> {
    for await (const chunk of this.iterateChunks(opts)) yield* chunk;
  }

  /** As `iterate`, in chunks of up to ITERATOR_CHUNK_ENTRIES (cheaper for large scans). */
  async *iterateChunks(opts: { gte?: Buffer; lt?: Buffer } & IterateOptions = {}): AsyncGenerator<Entry[]> {
    const gte = opts.gte !== undefined ? this.fullKey(opts.gte) : this.prefix;
    const lt = opts.lt !== undefined ? this.fullKey(opts.lt) : this.upper;
    const n = this.prefix.length;
    for await (const chunk of this.backend.iterateChunks(gte, lt, opts)) {
      for (const entry of chunk) entry[0] = entry[0].subarray(n);
      yield chunk;
    }
  }
}
