import { crc32c } from '@node-rs/crc32';

/**
 * One WAL record on disk, framed as etcd's encoder frames a walpb.Record (server/storage/wal/
 * encoder.go, decoder.go):
 *
 *   length field (8 bytes, little endian): the record's byte count in the low 56 bits; when the
 *     record is padded, the top byte is 0x80 | padBytes, so the length field itself is always
 *     8-byte aligned and can never be torn (a sector write is atomic, and 8 divides 512);
 *   record: type (1 byte) | 3 zero bytes | crc (uint32 LE) | data;
 *   padding to a multiple of 8 bytes (zeros).
 *
 * The crc is etcd's rolling CRC32C (Castagnoli): each record's crc continues the previous record's,
 * so a record moved, dropped or duplicated breaks the chain, not only a flipped bit. It covers the
 * first 4 bytes (type and the zero bytes) and the data; etcd covers the data only, and relies on
 * protobuf to reject a damaged type. A crc record (the first record of every segment) carries the
 * chain value the previous segment ended with, in its crc field, with no data.
 */

export const enum RecordType {
  /** Member identity (etcd: MetadataType), at the head of every segment once known. */
  Metadata = 1,
  /** One Raft entry (etcd: EntryType). */
  Entry = 2,
  /** A Raft hard state (etcd: StateType). */
  State = 3,
  /** The rolling crc at the start of a segment (etcd: CrcType). */
  Crc = 4,
  /** A snapshot marker: index, term, conf state (etcd: SnapshotType, walpb.Snapshot). */
  Snapshot = 5,
}

const MAX_RECORD_TYPE = RecordType.Snapshot;

/** etcd's frameSizeBytes: the length field. */
export const FRAME_BYTES = 8;
/** type, three zero bytes, crc. */
export const RECORD_HEADER_BYTES = 8;
/** etcd's minSectorSize: writes are atomic per 512-byte sector, which is what tells a torn write apart. */
export const MIN_SECTOR_BYTES = 512;
/**
 * No record is larger (a Raft entry is bounded by --max-request-bytes, 1.5 MiB by default, far
 * below): a length field above it is damage, never a record.
 */
export const MAX_RECORD_BYTES = 1 << 30;

export interface DecodedRecord {
  type: RecordType;
  crc: number;
  data: Buffer;
}

/** etcd's encodeFrameSize: the padding makes every frame a multiple of 8 bytes. */
export function paddingBytes(recordBytes: number): number {
  return (8 - (recordBytes % 8)) % 8;
}

/** The bytes a record whose data is `dataBytes` long takes on disk. */
export function frameBytes(dataBytes: number): number {
  const rec = RECORD_HEADER_BYTES + dataBytes;
  return FRAME_BYTES + rec + paddingBytes(rec);
}

/**
 * Writes the framed record at `off` in `out` (which must hold frameBytes(data bytes) more bytes)
 * and returns the chain crc after it. The data is the concatenation of `parts` (an entry's header
 * and payload, copied once). For a crc record pass the chain value as `prevCrc` and no data: it is
 * stored, not extended.
 */
export function encodeRecord(out: Buffer, off: number, type: RecordType, parts: readonly Uint8Array[], prevCrc: number): number {
  let dataBytes = 0;
  for (const p of parts) dataBytes += p.length;
  const rec = RECORD_HEADER_BYTES + dataBytes;
  const pad = paddingBytes(rec);
  out.writeUInt32LE(rec % 0x1_0000_0000, off);
  out.writeUInt32LE((Math.floor(rec / 0x1_0000_0000) | (pad ? (0x80 | pad) << 24 : 0)) >>> 0, off + 4);
  const body = off + FRAME_BYTES;
  out[body] = type;
  out[body + 1] = 0;
  out[body + 2] = 0;
  out[body + 3] = 0;
  let at = body + RECORD_HEADER_BYTES;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  let crc = prevCrc;
  if (type !== RecordType.Crc) {
    crc = crc32c(out.subarray(body, body + 4), prevCrc);
    if (dataBytes > 0) crc = crc32c(out.subarray(body + RECORD_HEADER_BYTES, body + rec), crc);
  }
  out.writeUInt32LE(crc >>> 0, body + 4);
  out.fill(0, body + rec, body + rec + pad);
  return crc >>> 0;
}

/** The length field split into record bytes and padding (etcd's decodeFrameSize), or undefined if it cannot be one. */
export function decodeLengthField(buf: Buffer, off: number): { recordBytes: number; padBytes: number } | undefined {
  const lo = buf.readUInt32LE(off);
  const hi = buf.readUInt32LE(off + 4);
  const top = hi >>> 24;
  let pad = 0;
  if (top !== 0) {
    // Only 0x80 | pad with pad in 1..7 is ever written; anything else is a damaged length.
    if ((top & 0xf8) !== 0x80 || (top & 0x7) === 0) return undefined;
    pad = top & 0x7;
  }
  const recordBytes = (hi & 0x00ff_ffff) * 0x1_0000_0000 + lo;
  if (recordBytes < RECORD_HEADER_BYTES || recordBytes > MAX_RECORD_BYTES) return undefined;
  if (paddingBytes(recordBytes) !== pad) return undefined;
  return { recordBytes, padBytes: pad };
}

/**
 * Checks the record body (`body`, without length field or padding) against the chain crc so far.
 * Returns the record and the chain crc after it, or undefined on a mismatch.
 */
export function verifyRecord(body: Buffer, prevCrc: number): { record: DecodedRecord; crc: number } | undefined {
  const type = body[0];
  if (type < RecordType.Metadata || type > MAX_RECORD_TYPE || body[1] !== 0 || body[2] !== 0 || body[3] !== 0) return undefined;
  const stored = body.readUInt32LE(4);
  const data = body.subarray(RECORD_HEADER_BYTES);
  if (type === RecordType.Crc) {
    if (data.length !== 0) return undefined;
    return { record: { type, crc: stored, data }, crc: stored };
  }
  let crc = crc32c(body.subarray(0, 4), prevCrc);
  if (data.length > 0) crc = crc32c(data, crc);
  crc >>>= 0;
  if (crc !== stored) return undefined;
  return { record: { type, crc, data }, crc };
}

/**
 * etcd's isTornEntry: a record that fails its check is a torn write (power lost while it was being
 * written) if some 512-byte sector of it, counted from its file offset, is all zeros: the
 * preallocated file is zeros, and a sector is written whole or not at all.
 */
export function isTorn(frame: Buffer, fileOffset: number): boolean {
  let off = 0;
  let fileOff = fileOffset;
  while (off < frame.length) {
    const len = Math.min(MIN_SECTOR_BYTES - (fileOff % MIN_SECTOR_BYTES), frame.length - off);
    let zero = true;
    for (let i = off; i < off + len; i++) {
      if (frame[i] !== 0) {
        zero = false;
        break;
      }
    }
    if (zero) return true;
    off += len;
    fileOff += len;
  }
  return false;
}
