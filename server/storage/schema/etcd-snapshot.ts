/**
 * Snapshot files in etcd's format: a bbolt database in etcd's backend layout (etcd-buckets.ts),
 * followed by the sha256 of the database, as `etcdctl snapshot save` stores what
 * Maintenance.Snapshot streams (etcd's v3rpc/maintenance.go appends the digest; snapshot.Save
 * checks the size is a multiple of 512 plus 32, and restore compares the digest before it opens
 * the db).
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import type { Entry } from '../../../mvcc/backend';
import { BboltReader, BboltWriter, type BucketBuilder, FileSink } from '../bbolt';
import { BboltFormatError } from '../bbolt/format';
import { etcdDefaultBuckets, fromEtcd, keysReencoded, toEtcd } from './etcd-buckets';

export const SHA256_BYTES = 32;
/** etcd's snapshot.hasChecksum: (size % 512) == sha256.Size. */
export function hasChecksum(size: number): boolean {
  return size % 512 === SHA256_BYTES;
}

/** cairn's backend keys are `<bucket>/<key>` (mvcc/backend.ts Bucket). */
const BUCKET_SEPARATOR = 0x2f;
/**
 * Page fill of every bucket: etcd's defrag (backend.defragdb) and its sequential key-bucket writes
 * (batchTx.UnsafeSeqPut) use 0.9, so cairn's snapshot is laid out as a freshly defragmented etcd db.
 */
const ETCD_FILL_PERCENT = 0.9;
/** Entries per chunk handed to the backend on restore. */
const RESTORE_CHUNK_ENTRIES = 4096;

interface Open {
  readonly name: string;
  readonly builder: BucketBuilder;
  /** Entries whose keys were re-encoded (and so must be sorted again) before they go in. */
  readonly resort: Array<readonly [Buffer, Buffer]> | null;
}

/**
 * Writes cairn's backend entries (`<bucket>/<key>` in key order, as Backend.allEntries yields
 * them) to `fd` as etcd's bbolt database, bucket by bucket as they stream past: the large buckets
 * (key, lease) go to disk page by page, only the small ones whose keys etcd encodes differently
 * are sorted in memory. Returns the database's size in bytes.
 */
export async function writeEtcdDb(chunks: AsyncIterable<Entry[]>, fd: number, clusterVersion: string): Promise<number> {
  const sink = new FileSink(fd);
  const w = new BboltWriter(sink, { fillPercent: ETCD_FILL_PERCENT });
  const done = new Map<string, Buffer>();
  let cur: Open | null = null;
  const close = (): void => {
    if (cur === null) return;
    if (cur.resort !== null) {
      cur.resort.sort((a, b) => Buffer.compare(a[0], b[0]));
      for (const [k, v] of cur.resort) cur.builder.put(k, v);
    }
    done.set(cur.name, cur.builder.end());
    cur = null;
  };
  for await (const chunk of chunks) {
    for (const [full, value] of chunk) {
      const slash = full.indexOf(BUCKET_SEPARATOR);
      if (slash <= 0) continue;
      const name = full.toString('latin1', 0, slash);
      if (cur === null || (cur as Open).name !== name) {
        close();
        if (done.has(name)) throw new Error(`snapshot: bucket ${name} is not contiguous in the backend`);
        cur = { name, builder: w.bucket(), resort: keysReencoded(name) ? [] : null };
      }
      const pair = toEtcd(name, full.subarray(slash + 1), value);
      if (pair === undefined) continue;
      const open: Open = cur;
      if (open.resort !== null) open.resort.push(pair);
      else open.builder.put(pair[0], pair[1]);
    }
  }
  close();
  for (const [name, pairs] of etcdDefaultBuckets(clusterVersion)) {
    if (done.has(name)) continue;
    const b = w.bucket();
    for (const [k, v] of pairs) b.put(k, v);
    done.set(name, b.end());
  }
  const root = w.bucket();
  for (const name of [...done.keys()].sort((a, b) => Buffer.compare(Buffer.from(a, 'latin1'), Buffer.from(b, 'latin1')))) {
    root.putBucket(Buffer.from(name, 'latin1'), done.get(name) as Buffer);
  }
  const size = w.finish(root);
  sink.flush();
  return size;
}

/** sha256 of the first `length` bytes of `path`. */
export function sha256File(path: string, length: number): Buffer {
  const h = createHash('sha256');
  const fd = fs.openSync(path, 'r');
  try {
    const buf = Buffer.allocUnsafe(1 << 20);
    for (let o = 0; o < length; ) {
      const n = fs.readSync(fd, buf, 0, Math.min(buf.length, length - o), o);
      if (n === 0) throw new BboltFormatError(`${path}: short read`);
      h.update(buf.subarray(0, n));
      o += n;
    }
  } finally {
    fs.closeSync(fd);
  }
  return h.digest();
}

export class SnapshotIntegrityError extends Error {}

/**
 * The database part of a snapshot file, verified as etcd's restore verifies it: with a sha256
 * trailer the digest must match (etcd: "expected sha256 ..., got ..."); without one (a db copied
 * from a data dir) only with skipHashCheck (etcd: "snapshot missing hash but --skip-hash-check=false").
 */
export function verifiedDbLength(path: string, opts: { skipHashCheck?: boolean } = {}): number {
  const size = fs.statSync(path).size;
  if (!hasChecksum(size)) {
    if (opts.skipHashCheck === true) return size;
    throw new SnapshotIntegrityError('snapshot missing hash but --skip-hash-check=false');
  }
  const dbLength = size - SHA256_BYTES;
  if (opts.skipHashCheck === true) return dbLength;
  const want = Buffer.alloc(SHA256_BYTES);
  const fd = fs.openSync(path, 'r');
  try {
    fs.readSync(fd, want, 0, SHA256_BYTES, dbLength);
  } finally {
    fs.closeSync(fd);
  }
  const got = sha256File(path, dbLength);
  if (!got.equals(want)) {
    throw new SnapshotIntegrityError(`snapshot file integrity check failed: expected sha256 ${want.toString('hex')}, got ${got.toString('hex')}`);
  }
  return dbLength;
}

/**
 * An etcd snapshot's buckets as cairn backend entries (`<bucket>/<key>`, cairn's encodings), in
 * chunks, read from the bbolt file page by page.
 */
export function* readEtcdDb(r: BboltReader): Generator<Entry[]> {
  let chunk: Entry[] = [];
  for (const top of r.entries(r.root)) {
    if (top.bucket === undefined) continue; // bbolt allows no plain keys at the top level
    const name = top.key.toString('latin1');
    const prefix = Buffer.from(`${name}/`, 'latin1');
    for (const e of r.entries(top.bucket)) {
      if (e.bucket !== undefined) throw new BboltFormatError(`snapshot: unexpected nested bucket in ${name}`);
      const pair = fromEtcd(name, e.key, e.value);
      if (pair === undefined) continue;
      chunk.push([Buffer.concat([prefix, pair[0]]), Buffer.from(pair[1])]);
      if (chunk.length >= RESTORE_CHUNK_ENTRIES) {
        yield chunk;
        chunk = [];
      }
    }
  }
  if (chunk.length > 0) yield chunk;
}
