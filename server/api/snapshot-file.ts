import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import type { Entry } from '../../mvcc/backend';

/**
 * cairn's *earlier* snapshot format, kept so backups taken before cairn spoke etcd's stay
 * restorable (`bin/cairn snapshot restore` and `status` detect it by its MAGIC): a consistent copy
 * of every LevelDB backend entry, framed as MAGIC, u64 payload length, then [u32 key length][key]
 * [u32 value length][value]..., zero padding to a 512-byte multiple, then the sha256 of everything
 * before it as the last 32 bytes.
 *
 * Maintenance.Snapshot no longer writes it: it streams a bbolt database in etcd's backend layout
 * (server/storage/schema/etcd-snapshot.ts, server/storage/bbolt/), which etcdctl and etcd read.
 */
export const SNAPSHOT_MAGIC = Buffer.from('CAIRNSNAP1\n');
export const SHA256_BYTES = 32;
/** etcdctl checks the data length is a whole number of 512-byte pages (bbolt), so we pad to it. */
export const SNAPSHOT_PAGE_BYTES = 512;

/** MAGIC, the payload length, the payload, zero padding to a page multiple: the hashed part. */
export function frameSnapshot(payload: Buffer): Buffer {
  const head = Buffer.alloc(SNAPSHOT_MAGIC.length + 8);
  SNAPSHOT_MAGIC.copy(head);
  head.writeBigUInt64BE(BigInt(payload.length), SNAPSHOT_MAGIC.length);
  const used = head.length + payload.length;
  const padding = (SNAPSHOT_PAGE_BYTES - (used % SNAPSHOT_PAGE_BYTES)) % SNAPSHOT_PAGE_BYTES;
  return Buffer.concat([head, payload, Buffer.alloc(padding)]);
}

export function encodeEntries(entries: readonly Entry[]): Buffer {
  let size = 0;
  for (const [k, v] of entries) size += 8 + k.length + v.length;
  const out = Buffer.allocUnsafe(size);
  let o = 0;
  for (const [k, v] of entries) {
    out.writeUInt32BE(k.length, o);
    k.copy(out, o + 4);
    o += 4 + k.length;
    out.writeUInt32BE(v.length, o);
    v.copy(out, o + 4);
    o += 4 + v.length;
  }
  return out;
}

export class SnapshotFileError extends Error {}

/** Reads and verifies a snapshot file; returns its entries. */
export function readSnapshotFile(path: string): Entry[] {
  const buf = fs.readFileSync(path);
  if (buf.length < SNAPSHOT_MAGIC.length + SHA256_BYTES || !buf.subarray(0, SNAPSHOT_MAGIC.length).equals(SNAPSHOT_MAGIC)) {
    throw new SnapshotFileError(`${path} is not a cairn snapshot`);
  }
  const body = buf.subarray(0, buf.length - SHA256_BYTES);
  const sum = buf.subarray(buf.length - SHA256_BYTES);
  if (!createHash('sha256').update(body).digest().equals(sum)) throw new SnapshotFileError(`${path}: snapshot file integrity check failed (sha256 mismatch)`);
  const entries: Entry[] = [];
  let o = SNAPSHOT_MAGIC.length + 8;
  const end = o + Number(body.readBigUInt64BE(SNAPSHOT_MAGIC.length));
  if (end > body.length) throw new SnapshotFileError(`${path}: truncated snapshot`);
  while (o < end) {
    const kl = body.readUInt32BE(o);
    const k = body.subarray(o + 4, o + 4 + kl);
    o += 4 + kl;
    const vl = body.readUInt32BE(o);
    const v = body.subarray(o + 4, o + 4 + vl);
    o += 4 + vl;
    entries.push([Buffer.from(k), Buffer.from(v)]);
  }
  if (o !== end) throw new SnapshotFileError(`${path}: corrupt snapshot framing`);
  return entries;
}
