/**
 * The store's buckets and its own records in "meta" (etcd 3.4 mvcc/kvstore.go keyBucketName,
 * metaBucketName, consistentIndexKeyName, scheduledCompactKeyName, finishedCompactKeyName; etcd 3.5
 * moved them to mvcc/buckets). Each record is a big-endian uint64.
 */
import assert from 'node:assert/strict';
import type { Bucket } from './backend';

export const KEY_BUCKET = 'key';
export const META_BUCKET = 'meta';
export const META_CONSISTENT_INDEX = 'consistent_index';
export const META_SCHEDULED_COMPACT = 'scheduledCompactRev';
export const META_FINISHED_COMPACT = 'finishedCompactRev';

/** What the meta bucket says on open; a record never written is undefined (0 for consistentIndex). */
export interface StoredMeta {
  readonly consistentIndex: number;
  readonly scheduledCompact: number | undefined;
  readonly finishedCompact: number | undefined;
}

export async function readMeta(metaBucket: Bucket): Promise<StoredMeta> {
  return {
    consistentIndex: decodeUint64(await metaBucket.get(META_CONSISTENT_INDEX)) ?? 0,
    scheduledCompact: decodeUint64(await metaBucket.get(META_SCHEDULED_COMPACT)),
    finishedCompact: decodeUint64(await metaBucket.get(META_FINISHED_COMPACT)),
  };
}

export function encodeUint64(n: number): Buffer {
  const buf = Buffer.allocUnsafe(8);
  buf.writeUInt32BE(Math.floor(n / 0x1_0000_0000), 0);
  buf.writeUInt32BE(n >>> 0, 4);
  return buf;
}

function decodeUint64(buf: Buffer | undefined): number | undefined {
  if (buf === undefined) return undefined;
  assert(buf.length === 8, 'malformed meta value');
  return buf.readUInt32BE(0) * 0x1_0000_0000 + buf.readUInt32BE(4);
}
