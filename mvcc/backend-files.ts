/**
 * The backend's LevelDB directory on disk: opening it, and the directories a snapshot install uses
 * beside it (`<path><suffix>`), in the order they exist, as etcd writes the received db to its own
 * file and swaps it in (etcdserver applySnapshot):
 *  1. a fresh LevelDB in `<path>.installing` gets the entries in bounded unsynced batches
 *     (INSTALL_BATCH_BYTES or the batch limit), the last one synced (LevelDB syncs its own tables
 *     and manifest, so everything before it is durable);
 *  2. it is closed and renamed to `<path>.ready`, and the parent directory fsynced: the install is
 *     committed, and Backend.open rolls it forward after a crash from here on;
 *  3. the swap: the live database is closed, renamed to `<path>.old`, `<path>.ready` takes its
 *     name, the directory is fsynced and the new database opened; `<path>.old` is removed.
 * A crash leaves either the old contents (before 2: open removes the staging directory) or the new
 * ones, never a cleared or half-written store whose consistent index would point the WAL replay at
 * entries the log no longer holds.
 */
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import { dirname, join } from 'node:path';
import { Level } from 'level';
import { INSTALL_BATCH_BYTES } from './limits';

/** One operation of a LevelDB write batch, key and value already bytes. */
export type BatchOp = { type: 'put'; key: Buffer; value: Buffer } | { type: 'del'; key: Buffer };

/** classic-level's extra (LevelDB-only) methods, present at runtime but absent from `level`'s types. */
export type LevelDb = Level<Buffer, Buffer> & {
  getSync(key: Buffer): Buffer | undefined;
  approximateSize(start: Buffer, end: Buffer): Promise<number>;
  compactRange(start: Buffer, end: Buffer): Promise<void>;
  getProperty(property: string): string;
  /** abstract-level's private API for implementations: the write itself, with no per-operation work. */
  _batch(operations: readonly BatchOp[], options: { sync?: boolean }): Promise<void>;
};

/**
 * Writes `ops` as one atomic LevelDB batch. abstract-level's public `batch()` clones every
 * operation, validates it, runs key and value through their encodings (identity for Buffers) and
 * checks for sublevels and hooks, then calls the implementation's `_batch`, which classic-level
 * hands to LevelDB's WriteBatch as it is. Our keys and values are always Buffers and we use no
 * sublevels, hooks or write events, so the open database gets `_batch` directly: that per-operation
 * work was ~14 us of main-thread CPU per put at 100 clients (~5%, BENCHMARKS.md). A database that is
 * not open goes through `batch()`, which raises abstract-level's own error.
 */
export function writeLevelBatch(db: LevelDb, ops: readonly BatchOp[], sync: boolean): Promise<void> {
  if (db.status !== 'open' || ops.length === 0) return db.batch(ops as BatchOp[], { sync });
  return db._batch(ops, { sync });
}

const INSTALLING_SUFFIX = '.installing';
const READY_SUFFIX = '.ready';
const OLD_SUFFIX = '.old';

export async function openLevel(path: string, cacheSize: number): Promise<LevelDb> {
  // `level` resolves to classic-level on Node; its typings omit the LevelDB-only methods we use.
  const db = new Level<Buffer, Buffer>(path, { keyEncoding: 'buffer', valueEncoding: 'buffer' }) as LevelDb;
  assert(typeof db.compactRange === 'function' && typeof db.getSync === 'function' && typeof db._batch === 'function', 'level must be classic-level');
  await db.open({ cacheSize } as Parameters<typeof db.open>[0]);
  return db;
}

/** A live table in LevelDB's `leveldb.sstables` property (Version::DebugString): ` <number>:<bytes>[<smallest> .. <largest>]`. */
const SSTABLE_LINE = /^ (\d+):(\d+)\[/gm;
/** A table file's name (TableFileName: `<number>.ldb`; `.sst` from LevelDB before 1.14). */
const TABLE_FILE = /^0*(\d+)\.(?:ldb|sst)$/;

/** The live tables of LevelDB's current version: table number (decimal, no zeros in front) to bytes. */
export function liveTableBytes(db: LevelDb): Map<string, number> {
  const live = new Map<string, number>();
  for (const m of db.getProperty('leveldb.sstables').matchAll(SSTABLE_LINE)) live.set(m[1], Number(m[2]));
  return live;
}

/**
 * Bytes of every file in the LevelDB directory at `path` (the quota's and the db-size metrics'
 * figure, etcd's backend Size). The live tables' sizes come from LevelDB's current version (the
 * `leveldb.sstables` property: finished tables, which LevelDB never rewrites), so only the files
 * outside it (the log, the manifest, a table still being written, an obsolete one not yet deleted)
 * are stat'ed: at 300k keys of 1 KiB, about 5 stats per refresh instead of about 200.
 */
export async function levelDirBytes(db: LevelDb | null, path: string): Promise<number> {
  const names = await fs.readdir(path);
  // Read after the listing: a table finished since is in it with its final size, one deleted since
  // is in neither (and its stat below fails). A closed database (null) has no version: stat all.
  const live = db === null ? new Map<string, number>() : liveTableBytes(db);
  let total = 0;
  const stats: Array<Promise<void>> = [];
  for (const name of names) {
    const table = TABLE_FILE.exec(name);
    const known = table === null ? undefined : live.get(table[1]);
    if (known !== undefined) {
      total += known;
      continue;
    }
    stats.push(
      fs.stat(join(path, name)).then(
        (st) => {
          if (st.isFile()) total += st.size;
        },
        // LevelDB deletes obsolete files concurrently; a vanished file has no size.
        () => undefined,
      ),
    );
  }
  await Promise.all(stats);
  return total;
}

/**
 * Steps 1 and 2: writes `chunks` to a new database beside `path` and returns its ready directory.
 * `lastKey` (the backend's sync marker) is put in the last batch, which is then never empty (LevelDB
 * skips an empty batch, and its sync with it). `checkOpen` throws if the backend closed meanwhile.
 */
export async function writeInstallDir(path: string, cacheSize: number, batchLimit: number, chunks: AsyncIterable<[Buffer, Buffer][]> | Iterable<[Buffer, Buffer][]>, lastKey: Buffer, checkOpen: () => void): Promise<string> {
  const staging = path + INSTALLING_SUFFIX;
  const ready = path + READY_SUFFIX;
  try {
    await removeDir(staging);
    await removeDir(ready);
    const next = await openLevel(staging, cacheSize);
    try {
      let ops: BatchOp[] = [];
      let bytes = 0;
      for await (const chunk of chunks) {
        for (const [key, value] of chunk) {
          ops.push({ type: 'put', key, value });
          bytes += key.length + value.length;
          if (ops.length >= batchLimit || bytes >= INSTALL_BATCH_BYTES) {
            await writeLevelBatch(next, ops, false);
            ops = [];
            bytes = 0;
          }
        }
      }
      ops.push({ type: 'put', key: lastKey, value: Buffer.alloc(0) });
      await writeLevelBatch(next, ops, true);
    } finally {
      await next.close();
    }
    checkOpen();
    await fs.rename(staging, ready);
    await fsyncDir(dirname(path));
    return ready;
  } catch (e) {
    await removeDir(staging).catch(() => undefined);
    throw e;
  }
}

/** Step 3, with the live database at `path` closed: `ready` takes its place. */
export async function swapInstallDir(path: string, ready: string): Promise<void> {
  const old = path + OLD_SUFFIX;
  await removeDir(old);
  await fs.rename(path, old);
  await fs.rename(ready, path);
  await fsyncDir(dirname(path));
}

/** The end of step 3: the old database, no longer needed. */
export function removeOldDir(path: string): Promise<void> {
  return removeDir(path + OLD_SUFFIX);
}

/**
 * What a crash during an install left beside the backend at `path`, before it is opened: an
 * incomplete staging directory is discarded (the old contents stand), a complete one (`.ready`) is
 * swapped in (the install had committed), and a leftover `.old` directory is removed.
 */
export async function finishInterruptedInstall(path: string): Promise<void> {
  await removeDir(path + INSTALLING_SUFFIX);
  const ready = path + READY_SUFFIX;
  if (await exists(ready)) {
    const old = path + OLD_SUFFIX;
    if (await exists(path)) {
      await removeDir(old);
      await fs.rename(path, old);
    }
    await fs.rename(ready, path);
    await fsyncDir(dirname(path));
  }
  await removeOldDir(path);
}

function removeDir(path: string): Promise<void> {
  return fs.rm(path, { recursive: true, force: true });
}

async function exists(path: string): Promise<boolean> {
  return fs.stat(path).then(
    () => true,
    () => false,
  );
}

/**
 * What identifies a closed LevelDB directory's contents: CURRENT names the manifest, and LevelDB
 * writes a new manifest on every open and appends to it on every flush and compaction, so any
 * session that wrote to the database leaves a different name or size. Undefined when there is no
 * database there. Read only while the database is closed.
 */
export async function levelFingerprint(path: string): Promise<string | undefined> {
  try {
    const manifest = (await fs.readFile(`${path}/CURRENT`, 'latin1')).trim();
    if (!/^MANIFEST-\d+$/.test(manifest)) return undefined;
    const { size } = await fs.stat(`${path}/${manifest}`);
    return `${manifest}:${size}`;
  } catch {
    return undefined;
  }
}

/** A rename or removal in `dir` survives power loss only once the directory itself is fsynced (mvcc/ cannot import server/storage). */
export async function fsyncDir(dir: string): Promise<void> {
  const h = await fs.open(dir, 'r');
  try {
    await h.sync();
  } finally {
    await h.close();
  }
}
