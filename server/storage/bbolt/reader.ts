/**
 * Reads any valid bbolt file (etcd's member/snap/db, `etcdctl snapshot save` output with its
 * sha256 trailer cut off, or BboltWriter's output): picks the current meta page as bbolt's
 * db.meta() does and walks buckets depth-first through branch, leaf, overflow and inline pages.
 * Pages are read on demand with positioned reads, so memory stays at one page per tree level.
 * Free pages and the freelist are never needed to read the data and are not interpreted.
 */
import * as fs from 'node:fs';
import {
  BboltFormatError, BRANCH_PAGE_FLAG, BUCKET_HEADER_SIZE, BUCKET_LEAF_FLAG, DEFAULT_PAGE_SIZE, LEAF_PAGE_FLAG,
  type Meta, metaError, PAGE_HEADER_SIZE, readMeta, readPageHeader,
} from './format';

/** A bucket's root: a page id, or the inline page held in its parent's value. */
export interface BucketRef {
  readonly root: bigint;
  readonly inline?: Buffer;
}

/** One entry of a bucket: a key and its value, or a nested bucket. */
export type BboltEntry =
  | { readonly key: Buffer; readonly value: Buffer; readonly bucket?: undefined }
  | { readonly key: Buffer; readonly value?: undefined; readonly bucket: BucketRef };

interface PageSource {
  read(offset: number, length: number): Buffer;
  readonly size: number;
  close(): void;
}

function fileSource(path: string, limit?: number): PageSource {
  const fd = fs.openSync(path, 'r');
  const size = limit ?? fs.fstatSync(fd).size;
  return {
    size,
    read(offset, length) {
      if (offset + length > size) throw new BboltFormatError(`bbolt: page at ${offset} (+${length}) beyond the end of the file (${size} bytes)`);
      const buf = Buffer.allocUnsafe(length);
      let got = 0;
      while (got < length) {
        const n = fs.readSync(fd, buf, got, length - got, offset + got);
        if (n === 0) throw new BboltFormatError('bbolt: short read');
        got += n;
      }
      return buf;
    },
    close: () => fs.closeSync(fd),
  };
}

function bufferSource(data: Buffer): PageSource {
  return {
    size: data.length,
    read(offset, length) {
      if (offset + length > data.length) throw new BboltFormatError(`bbolt: page at ${offset} (+${length}) beyond the end of the file (${data.length} bytes)`);
      return data.subarray(offset, offset + length);
    },
    close: () => undefined,
  };
}

/**
 * Deeper than any real tree (a 4 KiB-page tree of depth 32 holds far more than 2^64 keys): a
 * deeper walk means a branch page points back up the tree, which would otherwise never end.
 */
const MAX_TREE_DEPTH = 32;

export class BboltReader {
  readonly meta: Meta;

  private constructor(private readonly src: PageSource) {
    this.meta = this.currentMeta();
  }

  /** Opens `path`; `length` limits the bytes read (to skip a snapshot's sha256 trailer). */
  static open(path: string, length?: number): BboltReader {
    const src = fileSource(path, length);
    try {
      return new BboltReader(src);
    } catch (e) {
      src.close();
      throw e;
    }
  }

  static fromBuffer(data: Buffer): BboltReader {
    return new BboltReader(bufferSource(data));
  }

  get pageSize(): number {
    return this.meta.pageSize;
  }

  /** What bbolt's tx.Size() reports: the high-water mark in bytes. */
  get size(): number {
    return Number(this.meta.pgid) * this.meta.pageSize;
  }

  /** The root bucket, whose entries are the top-level buckets. */
  get root(): BucketRef {
    return { root: this.meta.root };
  }

  close(): void {
    this.src.close();
  }

  /**
   * db.meta(): both meta pages are validated and the one with the higher txid wins. The page size
   * is read from page 0 (bbolt reads it from the first meta page it can parse).
   */
  private currentMeta(): Meta {
    if (this.src.size < PAGE_HEADER_SIZE + 64) throw new BboltFormatError('invalid database');
    const first = this.src.read(0, Math.min(this.src.size, DEFAULT_PAGE_SIZE));
    let pageSize = metaError(first, PAGE_HEADER_SIZE) === undefined ? readMeta(first, PAGE_HEADER_SIZE).pageSize : DEFAULT_PAGE_SIZE;
    const metas: Meta[] = [];
    let firstError: string | undefined;
    for (const id of [0, 1]) {
      if ((id + 1) * pageSize > this.src.size) continue;
      const page = this.src.read(id * pageSize, PAGE_HEADER_SIZE + 64);
      const err = metaError(page, PAGE_HEADER_SIZE);
      if (err === undefined) metas.push(readMeta(page, PAGE_HEADER_SIZE));
      else firstError ??= err;
      if (err === undefined && id === 0) pageSize = readMeta(page, PAGE_HEADER_SIZE).pageSize;
    }
    if (metas.length === 0) throw new BboltFormatError(firstError ?? 'invalid database');
    return metas.reduce((a, b) => (b.txid > a.txid ? b : a));
  }

  /** The page `id` with its overflow pages. */
  page(id: bigint): Buffer {
    if (id >= this.meta.pgid) throw new BboltFormatError(`bbolt: page ${id} beyond the high-water mark ${this.meta.pgid}`);
    const at = Number(id) * this.pageSize;
    const head = this.src.read(at, this.pageSize);
    const h = readPageHeader(head);
    if (h.id !== id) throw new BboltFormatError(`bbolt: page ${id} has id ${h.id}`);
    return h.overflow === 0 ? head : this.src.read(at, (h.overflow + 1) * this.pageSize);
  }

  /** The nested bucket `name` in `parent` (default: the root bucket), or undefined. */
  bucket(name: Buffer | string, parent: BucketRef = this.root): BucketRef | undefined {
    const want = typeof name === 'string' ? Buffer.from(name) : name;
    for (const e of this.entries(parent)) {
      const c = Buffer.compare(e.key, want);
      if (c === 0) return e.bucket;
      if (c > 0) return undefined;
    }
    return undefined;
  }

  /** Every entry of a bucket in key order (bbolt's Bucket.ForEach, with nested buckets marked). */
  *entries(ref: BucketRef): Generator<BboltEntry> {
    if (ref.root === 0n) {
      if (ref.inline === undefined) throw new BboltFormatError('bbolt: inline bucket without a page');
      yield* this.walk(ref.inline, 0);
    } else {
      yield* this.walk(this.page(ref.root), 0);
    }
  }

  private *walk(page: Buffer, depth: number): Generator<BboltEntry> {
    const h = readPageHeader(page);
    if (depth > MAX_TREE_DEPTH) throw new BboltFormatError(`bbolt: page ${h.id}: tree deeper than ${MAX_TREE_DEPTH} levels (a cycle)`);
    if (PAGE_HEADER_SIZE + h.count * 16 > page.length) throw new BboltFormatError(`bbolt: page ${h.id}: ${h.count} elements do not fit`);
    if ((h.flags & LEAF_PAGE_FLAG) !== 0) {
      for (let i = 0; i < h.count; i++) {
        const at = PAGE_HEADER_SIZE + i * 16;
        const flags = page.readUInt32LE(at);
        const pos = at + page.readUInt32LE(at + 4);
        const ksize = page.readUInt32LE(at + 8);
        const vsize = page.readUInt32LE(at + 12);
        if (pos + ksize + vsize > page.length) throw new BboltFormatError('bbolt: leaf element beyond its page');
        const key = page.subarray(pos, pos + ksize);
        const value = page.subarray(pos + ksize, pos + ksize + vsize);
        if ((flags & BUCKET_LEAF_FLAG) !== 0) yield { key, bucket: decodeBucketValue(value) };
        else yield { key, value };
      }
    } else if ((h.flags & BRANCH_PAGE_FLAG) !== 0) {
      for (let i = 0; i < h.count; i++) {
        const at = PAGE_HEADER_SIZE + i * 16;
        yield* this.walk(this.page(page.readBigUInt64LE(at + 8)), depth + 1);
      }
    } else {
      throw new BboltFormatError(`bbolt: page ${h.id}: invalid type: flags ${h.flags.toString(16)} in a bucket`);
    }
  }
}

/** A bucket header (root u64, sequence u64), with the inline page following it when root is 0. */
export function decodeBucketValue(value: Buffer): BucketRef {
  if (value.length < BUCKET_HEADER_SIZE) throw new BboltFormatError('bbolt: short bucket header');
  const root = value.readBigUInt64LE(0);
  return root === 0n ? { root, inline: value.subarray(BUCKET_HEADER_SIZE) } : { root };
}
