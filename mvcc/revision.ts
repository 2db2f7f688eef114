/**
 * Revisions and their backend key encoding (etcd mvcc/revision.go).
 *
 * A revision is `{ main, sub }`: `main` is the store revision of a write txn, `sub` the position of
 * the change inside it. In the backend a revision is 8-byte big-endian main, `_`, 8-byte big-endian
 * sub, plus a trailing `t` for tombstones, so LevelDB iterates the key bucket in revision order.
 */
import assert from 'node:assert/strict';

export interface Revision {
  readonly main: number;
  readonly sub: number;
}

/** Bytes of an encoded revision without the tombstone mark. */
export const REVISION_BYTES = 17;
/** The byte appended to a tombstone's revision key (etcd `markTombstone`). */
export const TOMBSTONE_MARK = 0x74; // 't'
const SEPARATOR = 0x5f; // '_'
const TWO_POW_32 = 0x1_0000_0000;

function writeUint64BE(buf: Buffer, offset: number, n: number): void {
  buf.writeUInt32BE(Math.floor(n / TWO_POW_32), offset);
  buf.writeUInt32BE(n >>> 0, offset + 4);
}

function readUint64BE(buf: Buffer, offset: number): number {
  return buf.readUInt32BE(offset) * TWO_POW_32 + buf.readUInt32BE(offset + 4);
}

/** Writes the 17-byte revision (and the tombstone mark when asked) at `offset`. */
export function writeRevision(buf: Buffer, offset: number, main: number, sub: number, tombstone: boolean): void {
  assert(Number.isSafeInteger(main) && main >= 0 && Number.isSafeInteger(sub) && sub >= 0, 'revision out of range');
  writeUint64BE(buf, offset, main);
  buf[offset + 8] = SEPARATOR;
  writeUint64BE(buf, offset + 9, sub);
  if (tombstone) buf[offset + REVISION_BYTES] = TOMBSTONE_MARK;
}

/** A standalone encoded revision (no bucket prefix). */
export function encodeRevision(main: number, sub: number, tombstone = false): Buffer {
  const buf = Buffer.allocUnsafe(REVISION_BYTES + (tombstone ? 1 : 0));
  writeRevision(buf, 0, main, sub, tombstone);
  return buf;
}

export interface DecodedRevision extends Revision {
  readonly tombstone: boolean;
}

/** Decodes the revision starting at `offset`; the encoding must end the buffer. */
export function decodeRevision(buf: Buffer, offset = 0): DecodedRevision {
  const len = buf.length - offset;
  assert(len === REVISION_BYTES || (len === REVISION_BYTES + 1 && buf[offset + REVISION_BYTES] === TOMBSTONE_MARK),
    'malformed revision key');
  assert(buf[offset + 8] === SEPARATOR, 'malformed revision key');
  return {
    main: readUint64BE(buf, offset),
    sub: readUint64BE(buf, offset + 9),
    tombstone: len === REVISION_BYTES + 1,
  };
}

/** Reads only the main revision of an encoded revision at `offset`. */
export function readMainRevision(buf: Buffer, offset = 0): number {
  return readUint64BE(buf, offset);
}

export function compareRevisions(a: Revision, b: Revision): number {
  return a.main !== b.main ? a.main - b.main : a.sub - b.sub;
}
