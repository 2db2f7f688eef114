import * as fs from 'node:fs';
import * as path from 'node:path';
import { Level } from 'level';
import type { Logger } from 'pino';
import type { WalEntry, WalHardState, WalSnapshotMeta } from './payload';
import type { WalContents } from './replay';
import { fsyncDir } from './segment-files';

/**
 * Upgrade from the WAL cairn kept before its own (a LevelDB under member/wal: entries keyed by
 * index, hard state, snapshot marker and metadata under fixed keys). A data dir holding one is
 * migrated once at start, crash-safe by ordering:
 *   1. the new WAL is written, fsynced, under `wal.migrating` (a stale one is discarded);
 *   2. the LevelDB is renamed to `wal.leveldb`, then `wal.migrating` to `wal`, and the member
 *      directory fsynced;
 *   3. `wal.leveldb` is removed.
 * A crash before 2 redoes the migration from the untouched LevelDB; a crash inside 2 is finished by
 * the next start (step 2's second rename), and one after it only leaves step 3 to do.
 */

const ENTRY_PREFIX = 0x65; // 'e' + 8-byte big-endian index
const HARD_STATE_KEY = Buffer.from('h');
const SNAPSHOT_KEY = Buffer.from('s');
const METADATA_KEY = Buffer.from('m');

/** LevelDB's CURRENT file names its manifest: present in every LevelDB directory, never in a segment directory. */
export function isLegacyWal(dir: string): boolean {
  return fs.existsSync(path.join(dir, 'CURRENT'));
}

function entryKey(index: number): Buffer {
  const key = Buffer.allocUnsafe(9);
  key[0] = ENTRY_PREFIX;
  key.writeBigUInt64BE(BigInt(index), 1);
  return key;
}

/** The old WAL's readAll: the snapshot, hard state, metadata and the contiguous entries after the snapshot. */
export async function readLegacyWal(dir: string): Promise<WalContents> {
  const db = new Level<Buffer, Buffer>(dir, { keyEncoding: 'buffer', valueEncoding: 'buffer' });
  await db.open();
  try {
    const [hs, snap, meta] = await db.getMany([HARD_STATE_KEY, SNAPSHOT_KEY, METADATA_KEY]);
    const snapshot: WalSnapshotMeta | undefined = snap
      ? { index: Number(snap.readBigUInt64BE(0)), term: Number(snap.readBigUInt64BE(8)), data: Buffer.from(snap.subarray(16)) }
      : undefined;
    const hardState: WalHardState | undefined = hs
      ? { term: Number(hs.readBigUInt64BE(0)), vote: hs.readBigUInt64BE(8), commit: Number(hs.readBigUInt64BE(16)) }
      : undefined;
    const entries: WalEntry[] = [];
    for await (const [key, value] of db.iterator({ gte: entryKey(snapshot ? snapshot.index + 1 : 0), lt: Buffer.from([ENTRY_PREFIX + 1]) })) {
      const index = Number(key.readBigUInt64BE(1));
      if (entries.length > 0 && index !== entries[entries.length - 1].index + 1) break;
      entries.push({ index, term: Number(value.readBigUInt64BE(0)), type: value[8], data: Buffer.from(value.subarray(9)) });
    }
    return { hardState, snapshot, entries, metadata: meta ? Buffer.from(meta) : undefined };
  } finally {
    await db.close();
  }
}

/** Writes `contents` as a new WAL in `dir` (an empty directory) and fsyncs it. */
export type WriteNewWal = (dir: string, contents: WalContents) => Promise<void>;

export async function migrateLegacyWal(dir: string, writeNew: WriteNewWal, log?: Logger): Promise<void> {
  const parked = `${dir}.leveldb`;
  const staging = `${dir}.migrating`;
  const parent = path.dirname(dir);
  if (!fs.existsSync(dir) && fs.existsSync(parked) && fs.existsSync(staging)) {
    await fs.promises.rename(staging, dir);
    await fsyncDir(parent);
  }
  if (fs.existsSync(dir) && !isLegacyWal(dir)) {
    if (fs.existsSync(parked)) await fs.promises.rm(parked, { recursive: true, force: true });
    return;
  }
  if (!fs.existsSync(dir)) return;
  const contents = await readLegacyWal(dir);
  await fs.promises.rm(staging, { recursive: true, force: true });
  await writeNew(staging, contents);
  await fs.promises.rename(dir, parked);
  await fs.promises.rename(staging, dir);
  await fsyncDir(parent);
  await fs.promises.rm(parked, { recursive: true, force: true });
  log?.info({ dir, entries: contents.entries.length, 'snapshot-index': contents.snapshot?.index ?? 0 }, 'wal: migrated the LevelDB WAL to segment files');
}
