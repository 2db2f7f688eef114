/**
 * The key index written to a file at a clean close and read back at the next open, so a restart
 * does not scan the whole key bucket (every value) to rebuild it. etcd 3.4 always rebuilds its
 * treeIndex from bbolt on start (mvcc/kvstore.go restore); cairn does the same after a crash, and
 * reads this file after a clean stop.
 *
 * It is only ever used for the exact backend state it describes:
 *  - it is written after the backend's last flush and close, fsynced and renamed into place;
 *  - it is removed (and the removal fsynced) by the next open before the store can change, so a
 *    crash later leaves no checkpoint behind, and the open after it scans;
 *  - its stamp must match the backend as opened: the LevelDB directory's fingerprint (a new manifest
 *    on every open, so any session that opened it since differs), the consistent index, the
 *    compaction marks and the newest stored revision; the whole file is covered by a CRC-32.
 * Anything else (no file, a damaged or foreign one, a mismatch) means a full scan, never an error:
 * the scan is always correct, the file only saves time.
 *
 * Layout: MAGIC, u32 format version, the stamp, the key count, then per key in key order: the key
 * (varint length + bytes), create_revision, version, a lease flag (+ int64 lease), the revision
 * count and the revisions (main as a delta from the previous one, then sub * 2 + tombstone), all
 * numbers LEB128 varints; last the CRC-32 (IEEE) of everything before it, u32 big-endian.
 */
import * as fs from 'node:fs';
import { dirname } from 'node:path';
import { crc32 } from 'node:zlib';
import { fsyncDir } from './backend-files';
import { type IndexedRevision, KeyIndex, NO_LEASE } from './key-index';
import type { TreeIndex } from './tree-index';

const MAGIC = Buffer.from('cairnidx', 'latin1');
const FORMAT_VERSION = 1;
const FILE_SUFFIX = '.index';
const TEMP_SUFFIX = '.tmp';
/** Bytes buffered before each write(2) while a checkpoint is written. */
const WRITE_BUFFER_BYTES = 1 << 20;
const CRC_BYTES = 4;
const ALL_KEYS = { low: '', high: '\u0100' } as const;

/** What the checkpoint was taken of; compared with the backend on open. */
export interface CheckpointStamp {
  /** levelFingerprint() of the backend directory after the close that wrote the checkpoint. */
  readonly fingerprint: string;
  readonly consistentIndex: number;
  readonly scheduledCompact: number | undefined;
  readonly finishedCompact: number | undefined;
  /** Main revision of the newest entry in the key bucket (0 when it is empty). */
  readonly newestStoredRevision: number;
}

export interface IndexCheckpoint {
  readonly stamp: CheckpointStamp;
  /** Ascending (checked). */
  readonly keys: string[];
  readonly indexes: KeyIndex[];
  /** The keys whose newest revision is a put, ascending. */
  readonly liveKeys: string[];
}

/** What open found: a decoded checkpoint, one it could not use and why, or none. */
export type TakenCheckpoint = { readonly checkpoint: IndexCheckpoint } | { readonly unusable: string } | undefined;

class CheckpointFormatError extends Error {}

export function checkpointPath(backendPath: string): string {
  return backendPath + FILE_SUFFIX;
}

/**
 * Reads and removes the checkpoint beside the backend at `backendPath` (before the backend is
 * opened for writing). The removal is durable before this returns.
 */
export async function takeIndexCheckpoint(backendPath: string): Promise<TakenCheckpoint> {
  const file = checkpointPath(backendPath);
  await fs.promises.rm(file + TEMP_SUFFIX, { force: true });
  let raw: Buffer;
  try {
    raw = await fs.promises.readFile(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  await fs.promises.unlink(file);
  await fsyncDir(dirname(file));
  try {
    return { checkpoint: decodeCheckpoint(raw) };
  } catch (e) {
    if (e instanceof CheckpointFormatError) return { unusable: e.message };
    throw e;
  }
}

/** Why `stamp` does not describe the backend as found on open (`actual`), or undefined if it does. */
export function stampMismatch(stamp: CheckpointStamp, actual: Omit<CheckpointStamp, 'fingerprint'> & { fingerprint: string | undefined }): string | undefined {
  for (const field of ['fingerprint', 'consistentIndex', 'scheduledCompact', 'finishedCompact', 'newestStoredRevision'] as const) {
    if (stamp[field] !== actual[field]) return `${field} is ${String(actual[field])}, the checkpoint has ${String(stamp[field])}`;
  }
  return undefined;
}

/** Writes `index` as the checkpoint of the (closed) backend at `backendPath`, durably. */
export function writeIndexCheckpoint(backendPath: string, stamp: CheckpointStamp, index: TreeIndex): void {
  const file = checkpointPath(backendPath);
  const temp = file + TEMP_SUFFIX;
  const fd = fs.openSync(temp, 'w', 0o600);
  try {
    const w = new CheckpointWriter(fd);
    w.bytes(MAGIC);
    w.varint(FORMAT_VERSION);
    w.latin1(stamp.fingerprint);
    w.varint(stamp.consistentIndex);
    w.varint(optional(stamp.scheduledCompact));
    w.varint(optional(stamp.finishedCompact));
    w.varint(stamp.newestStoredRevision);
    w.varint(index.size);
    index.forRange(ALL_KEYS, (key, ki) => {
      w.latin1(key);
      w.varint(ki.createRevision);
      w.varint(ki.version);
      if (ki.lease === NO_LEASE) {
        w.varint(0);
      } else {
        w.varint(1);
        w.int64(ki.lease);
      }
      const revs = ki.revisions();
      w.varint(revs.length);
      let prevMain = 0;
      for (const r of revs) {
        w.varint(r.main - prevMain);
        w.varint(r.sub * 2 + (r.tombstone ? 1 : 0));
        prevMain = r.main;
      }
    });
    w.finish();
    fs.fsyncSync(fd);
  } catch (e) {
    fs.closeSync(fd);
    fs.rmSync(temp, { force: true });
    throw e;
  }
  fs.closeSync(fd);
  fs.renameSync(temp, file);
  const dir = fs.openSync(dirname(file), 'r');
  try {
    fs.fsyncSync(dir);
  } finally {
    fs.closeSync(dir);
  }
}

/** undefined as 0, n as n + 1. */
function optional(n: number | undefined): number {
  return n === undefined ? 0 : n + 1;
}

function decodeCheckpoint(raw: Buffer): IndexCheckpoint {
  if (raw.length < MAGIC.length + CRC_BYTES || !raw.subarray(0, MAGIC.length).equals(MAGIC)) {
    throw new CheckpointFormatError('not an index checkpoint');
  }
  const bodyEnd = raw.length - CRC_BYTES;
  if (crc32(raw.subarray(0, bodyEnd)) !== raw.readUInt32BE(bodyEnd)) throw new CheckpointFormatError('crc mismatch');
  const r = new CheckpointReader(raw, MAGIC.length, bodyEnd);
  const version = r.varint();
  if (version !== FORMAT_VERSION) throw new CheckpointFormatError(`format version ${version}, expected ${FORMAT_VERSION}`);
  const fingerprint = r.latin1();
  const consistentIndex = r.varint();
  const scheduled = r.varint();
  const finished = r.varint();
  const stamp: CheckpointStamp = {
    fingerprint, consistentIndex,
    scheduledCompact: scheduled === 0 ? undefined : scheduled - 1,
    finishedCompact: finished === 0 ? undefined : finished - 1,
    newestStoredRevision: r.varint(),
  };
  const count = r.varint();
  const keys: string[] = new Array(count);
  const indexes: KeyIndex[] = new Array(count);
  const liveKeys: string[] = [];
  let prevKey: string | undefined;
  for (let i = 0; i < count; i++) {
    const key = r.latin1();
    if (prevKey !== undefined && !(prevKey < key)) throw new CheckpointFormatError('keys out of order');
    prevKey = key;
    const createRevision = r.varint();
    const version = r.varint();
    const lease = r.varint() === 0 ? NO_LEASE : r.int64();
    const n = r.varint();
    if (n === 0) throw new CheckpointFormatError('a key without revisions');
    const revs: IndexedRevision[] = new Array(n);
    let main = 0;
    let prevSub = -1;
    for (let j = 0; j < n; j++) {
      const delta = r.varint();
      const subAndMark = r.varint();
      const sub = Math.floor(subAndMark / 2);
      if (j > 0 && delta === 0 && sub <= prevSub) throw new CheckpointFormatError('revisions out of order');
      main += delta;
      prevSub = sub;
      revs[j] = { main, sub, tombstone: subAndMark % 2 === 1 };
    }
    keys[i] = key;
    indexes[i] = KeyIndex.restored(revs, createRevision, version, lease);
    if (!revs[n - 1].tombstone) liveKeys.push(key);
  }
  if (r.remaining !== 0) throw new CheckpointFormatError('trailing bytes');
  return { stamp, keys, indexes, liveKeys };
}

/** Buffered writes to `fd` with a running CRC-32 of everything written. */
class CheckpointWriter {
  private readonly buf = Buffer.allocUnsafe(WRITE_BUFFER_BYTES);
  private pos = 0;
  private crc = 0;

  constructor(private readonly fd: number) {}

  varint(n: number): void {
    if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`index checkpoint: ${n} is not a non-negative integer`);
    this.reserve(8);
    while (n >= 0x80) {
      this.buf[this.pos++] = (n % 0x80) | 0x80;
      n = Math.floor(n / 0x80);
    }
    this.buf[this.pos++] = n;
  }

  int64(n: bigint): void {
    this.reserve(8);
    this.buf.writeBigInt64BE(n, this.pos);
    this.pos += 8;
  }

  latin1(s: string): void {
    this.varint(s.length);
    if (s.length > this.buf.length) {
      this.bytes(Buffer.from(s, 'latin1'));
      return;
    }
    this.reserve(s.length);
    this.pos += this.buf.write(s, this.pos, s.length, 'latin1');
  }

  bytes(b: Buffer): void {
    if (b.length > this.buf.length) {
      this.flush();
      this.write(b);
      return;
    }
    this.reserve(b.length);
    this.pos += b.copy(this.buf, this.pos);
  }

  /** Flushes and appends the CRC of everything written. */
  finish(): void {
    this.flush();
    const trailer = Buffer.allocUnsafe(CRC_BYTES);
    trailer.writeUInt32BE(this.crc, 0);
    this.writeAll(trailer);
  }

  private reserve(n: number): void {
    if (this.pos + n > this.buf.length) this.flush();
  }

  private flush(): void {
    if (this.pos === 0) return;
    this.write(this.buf.subarray(0, this.pos));
    this.pos = 0;
  }

  private write(b: Buffer): void {
    this.crc = crc32(b, this.crc);
    this.writeAll(b);
  }

  private writeAll(b: Buffer): void {
    for (let off = 0; off < b.length; ) off += fs.writeSync(this.fd, b, off, b.length - off);
  }
}

class CheckpointReader {
  constructor(private readonly buf: Buffer, private pos: number, private readonly end: number) {}

  get remaining(): number {
    return this.end - this.pos;
  }

  varint(): number {
    let n = 0;
    let scale = 1;
    for (;;) {
      if (this.pos >= this.end) throw new CheckpointFormatError('truncated');
      const b = this.buf[this.pos++];
      n += (b & 0x7f) * scale;
      if (b < 0x80) break;
      scale *= 0x80;
      if (scale > Number.MAX_SAFE_INTEGER) throw new CheckpointFormatError('varint too long');
    }
    if (!Number.isSafeInteger(n)) throw new CheckpointFormatError('varint out of range');
    return n;
  }

  int64(): bigint {
    if (this.pos + 8 > this.end) throw new CheckpointFormatError('truncated');
    const n = this.buf.readBigInt64BE(this.pos);
    this.pos += 8;
    return n;
  }

  latin1(): string {
    const n = this.varint();
    if (this.pos + n > this.end) throw new CheckpointFormatError('truncated');
    const s = this.buf.toString('latin1', this.pos, this.pos + n);
    this.pos += n;
    return s;
  }
}
