import * as fs from 'node:fs';
import * as path from 'node:path';
import { messageCodec } from '../../proto';
import { SegmentDecoder, isSegmentEnd } from '../storage/wal/decoder';
import { RecordType, encodeRecord, frameBytes } from '../storage/wal/record';
import { fsyncDir } from '../storage/wal/segment-files';

/**
 * A leader's snapshot as this member received it, spooled to `member/snap/<index>.snap.db` (etcd's
 * snap/db.go SaveDBFrom, which writes the received bbolt file there before it replaces the
 * backend). Written to a `.tmp` name, fsynced, renamed and the directory fsynced; installed from
 * the file in chunks, so neither receiving nor installing holds the snapshot in memory.
 *
 * Framing: the WAL's records (storage/wal/record.ts, one segment's worth: length field, type, rolling
 * CRC32C, padding), so the file is read back with the WAL's streaming, strictly checked decoder. The
 * first record is a crc record (0); then one Entry-type record per chunk as it arrived, whose data
 * is a cairnpb.SnapshotChunk with only `keys` and `values` set (backend entries, in key order).
 * Any damage or a short file fails the install: the file was complete and fsynced before Raft saw
 * the message, so it can only be damaged by the disk.
 */

export const SNAP_DB_SUFFIX = '.snap.db';
const TMP_SUFFIX = '.tmp';

type Entries = [Buffer, Buffer][];
const chunkCodec = messageCodec<{ keys: Buffer[]; values: Buffer[] }>('cairnpb.SnapshotChunk');

/** etcd's `%016x.snap.db`. */
export function snapDbPath(dir: string, index: number): string {
  return path.join(dir, `${index.toString(16).padStart(16, '0')}${SNAP_DB_SUFFIX}`);
}

let tmpSeq = 0;

/**
 * Writes `chunks` to the snapshot file for `index` in `dir`, awaiting each write before reading the
 * next chunk (the source is paused meanwhile). Returns the file, its size and how long the fsync took.
 */
export async function saveDbFrom(dir: string, index: number, chunks: AsyncIterable<Entries>): Promise<{ file: string; bytes: number; fsyncSeconds: number }> {
  const file = snapDbPath(dir, index);
  // Unique: the same snapshot can arrive twice at once (a leader retrying); the last rename wins.
  const tmp = `${file}.${process.pid}-${++tmpSeq}${TMP_SUFFIX}`;
  const h = await fs.promises.open(tmp, 'wx', 0o600);
  let bytes = 0;
  let fsyncSeconds = 0;
  try {
    const append = async (type: RecordType, data: Uint8Array | undefined, prevCrc: number): Promise<number> => {
      const buf = Buffer.allocUnsafe(frameBytes(data?.length ?? 0));
      const crc = encodeRecord(buf, 0, type, data ? [data] : [], prevCrc);
      await h.write(buf, 0, buf.length, bytes);
      bytes += buf.length;
      return crc;
    };
    let crc = await append(RecordType.Crc, undefined, 0);
    for await (const chunk of chunks) {
      if (chunk.length === 0) continue;
      crc = await append(RecordType.Entry, chunkCodec.encode({ keys: chunk.map((e) => e[0]), values: chunk.map((e) => e[1]) }), crc);
    }
    const started = performance.now();
    await h.sync();
    fsyncSeconds = (performance.now() - started) / 1000;
  } catch (e) {
    await h.close().catch(() => undefined);
    await fs.promises.rm(tmp, { force: true });
    throw e;
  }
  await h.close();
  await fs.promises.rename(tmp, file);
  await fsyncDir(dir);
  return { file, bytes, fsyncSeconds };
}

/** The entries of a snapshot file, one chunk per record, read through a bounded window. */
export async function* readDb(file: string): AsyncGenerator<Entries> {
  const dec = await SegmentDecoder.open(file, 0);
  try {
    for (;;) {
      // Not the last segment of a WAL: a short or torn record is damage, never a tail to cut.
      const r = await dec.next(false);
      if (isSegmentEnd(r)) return;
      if (r.type === RecordType.Crc) continue;
      if (r.type !== RecordType.Entry) throw new Error(`snapshot file ${file}: unexpected record type ${r.type}`);
      // A copy: the record is a view of the decoder's window, which the next read overwrites, and
      // the decoded keys and values are views of what they are decoded from.
      const c = chunkCodec.decode(Buffer.from(r.data));
      if (c.keys.length !== c.values.length) throw new Error(`snapshot file ${file}: chunk with unpaired keys and values`);
      yield c.keys.map((k, i): [Buffer, Buffer] => [k, c.values[i]]);
    }
  } finally {
    await dec.close();
  }
}

/** Snapshot files (and unfinished `.tmp` ones) a previous run left in `dir`; removed at start. */
export function removeSnapDbFiles(dir: string): string[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  const removed = names.filter((n) => n.endsWith(SNAP_DB_SUFFIX) || (n.includes(SNAP_DB_SUFFIX) && n.endsWith(TMP_SUFFIX)));
  for (const n of removed) fs.rmSync(path.join(dir, n), { force: true });
  return removed;
}
