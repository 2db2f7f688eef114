/**
 * The data of each WAL record type (etcd stores raftpb.Entry, raftpb.HardState and walpb.Snapshot
 * protobufs; cairn uses fixed little-endian layouts, which cost no allocation beyond the record).
 * Indexes and terms are JavaScript numbers (exact below 2^53, as raft/ keeps them).
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
  /** Encoded conf state (conf-state-record.ts); opaque to the WAL. */
  data: Uint8Array;
}

/** A snapshot record's flag: the snapshot came from the leader and replaces this member's whole log. */
export const SNAPSHOT_REPLACES_LOG = 1;

const TWO_32 = 0x1_0000_0000;

function writeU64(buf: Buffer, off: number, n: number): void {
  buf.writeUInt32LE(n % TWO_32, off);
  buf.writeUInt32LE(Math.floor(n / TWO_32), off + 4);
}

function readU64(buf: Buffer, off: number): number {
  return buf.readUInt32LE(off + 4) * TWO_32 + buf.readUInt32LE(off);
}

/** index (8) | term (8) | type (1) | data. */
export const ENTRY_HEADER_BYTES = 17;

export function encodeEntryHeader(e: WalEntry, out: Buffer, off: number): void {
  writeU64(out, off, e.index);
  writeU64(out, off + 8, e.term);
  out[off + 16] = e.type;
}

/** Copies the data out (with `copy`, by default a fresh Buffer): the read buffer it came from is reused. */
export function decodeEntry(data: Buffer, copy: (payload: Buffer, index: number) => Uint8Array = (b) => Buffer.from(b)): WalEntry {
  if (data.length < ENTRY_HEADER_BYTES) throw new Error(`entry record of ${data.length} bytes`);
  const index = readU64(data, 0);
  return { index, term: readU64(data, 8), type: data[16], data: copy(data.subarray(ENTRY_HEADER_BYTES), index) };
}

/** term (8) | vote (8) | commit (8). */
export function encodeHardState(hs: WalHardState): Buffer {
  const out = Buffer.allocUnsafe(24);
  writeU64(out, 0, hs.term);
  out.writeBigUInt64LE(hs.vote, 8);
  writeU64(out, 16, hs.commit);
  return out;
}

export function decodeHardState(data: Buffer): WalHardState {
  if (data.length !== 24) throw new Error(`hard state record of ${data.length} bytes`);
  return { term: readU64(data, 0), vote: data.readBigUInt64LE(8), commit: readU64(data, 16) };
}

/** index (8) | term (8) | flags (1) | conf state. */
export function encodeSnapshot(s: WalSnapshotMeta, flags: number): Buffer {
  const out = Buffer.allocUnsafe(17 + s.data.length);
  writeU64(out, 0, s.index);
  writeU64(out, 8, s.term);
  out[16] = flags;
  out.set(s.data, 17);
  return out;
}

/** The index in a snapshot record's first bytes (at least 8), as decodeSnapshot reads it. */
export function snapshotRecordIndex(head: Buffer): number {
  return readU64(head, 0);
}

export function decodeSnapshot(data: Buffer): { snapshot: WalSnapshotMeta; flags: number } {
  if (data.length < 17) throw new Error(`snapshot record of ${data.length} bytes`);
  return { snapshot: { index: readU64(data, 0), term: readU64(data, 8), data: Buffer.from(data.subarray(17)) }, flags: data[16] };
}
