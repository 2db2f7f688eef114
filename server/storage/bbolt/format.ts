/**
 * bbolt's on-disk format (go.etcd.io/bbolt page.go, db.go, bucket.go, freelist.go), as far as a
 * reader and a writer of whole files need it. All integers are little-endian: bbolt writes its
 * structs in native byte order and every platform etcd ships on is little-endian.
 *
 * A file is a sequence of pages of `pageSize` bytes, numbered from 0 (pgid). Every page starts
 * with a 16-byte header:
 *
 *   id u64 | flags u16 | count u16 | overflow u32
 *
 * `overflow` is the number of extra pages the page spills into (a page of n bytes occupies
 * ceil(n / pageSize) consecutive pages). Pages 0 and 1 are meta pages; the one with the higher
 * txid whose checksum verifies is current. Its `root` names the root bucket, whose leaf entries
 * are the top-level buckets; `freelist` names the freelist page (or pgidNoFreelist when the
 * freelist is not synced, etcd's default on Linux) and `pgid` is the high-water mark: pages below
 * it are in use or free, `pgid * pageSize` is what `tx.Size()` reports.
 *
 * Leaf page:   header, `count` leaf elements (flags u32 | pos u32 | ksize u32 | vsize u32), data.
 * Branch page: header, `count` branch elements (pos u32 | ksize u32 | pgid u64), data.
 * `pos` is the offset of the element's key from the element itself; a leaf's value follows its key.
 * A leaf element with the bucket flag is a nested bucket: its value is a bucket header (root pgid
 * u64 | sequence u64); root 0 means an inline bucket whose leaf page follows the header in the value.
 */

export const MAGIC = 0xed0cdaed;
export const VERSION = 2;
export const DEFAULT_PAGE_SIZE = 4096;
/** bbolt's DefaultFillPercent: a split leaves pages about half full. */
export const DEFAULT_FILL_PERCENT = 0.5;
export const MIN_KEYS_PER_PAGE = 2;

export const PAGE_HEADER_SIZE = 16;
export const LEAF_ELEMENT_SIZE = 16;
export const BRANCH_ELEMENT_SIZE = 16;
export const BUCKET_HEADER_SIZE = 16;
/** Bytes of the meta struct hashed into its checksum (everything before the checksum field). */
export const META_CHECKSUM_OFFSET = 56;
export const META_SIZE = 64;

export const BRANCH_PAGE_FLAG = 0x01;
export const LEAF_PAGE_FLAG = 0x02;
export const META_PAGE_FLAG = 0x04;
export const FREELIST_PAGE_FLAG = 0x10;
export const BUCKET_LEAF_FLAG = 0x01;

/** meta.freelist when the freelist is not persisted (bbolt's NoFreelistSync). */
export const PGID_NO_FREELIST = 0xffff_ffff_ffff_ffffn;

export interface PageHeader {
  readonly id: bigint;
  readonly flags: number;
  readonly count: number;
  readonly overflow: number;
}

export function readPageHeader(buf: Buffer, offset = 0): PageHeader {
  return {
    id: buf.readBigUInt64LE(offset),
    flags: buf.readUInt16LE(offset + 8),
    count: buf.readUInt16LE(offset + 10),
    overflow: buf.readUInt32LE(offset + 12),
  };
}

export function writePageHeader(buf: Buffer, offset: number, h: PageHeader): void {
  buf.writeBigUInt64LE(h.id, offset);
  buf.writeUInt16LE(h.flags, offset + 8);
  buf.writeUInt16LE(h.count, offset + 10);
  buf.writeUInt32LE(h.overflow, offset + 12);
}

export interface Meta {
  readonly magic: number;
  readonly version: number;
  readonly pageSize: number;
  readonly flags: number;
  /** The root bucket's root page and sequence. */
  readonly root: bigint;
  readonly sequence: bigint;
  readonly freelist: bigint;
  /** High-water mark: the number of pages the file uses. */
  readonly pgid: bigint;
  readonly txid: bigint;
  readonly checksum: bigint;
}

const FNV64_OFFSET = 0xcbf29ce484222325n;
const FNV64_PRIME = 0x100000001b3n;
const U64 = 0xffff_ffff_ffff_ffffn;

/** FNV-1a 64 (Go's hash/fnv New64a), the meta page checksum. */
export function fnv1a64(data: Buffer): bigint {
  let h = FNV64_OFFSET;
  for (const b of data) h = ((h ^ BigInt(b)) * FNV64_PRIME) & U64;
  return h;
}

/** Decodes the meta struct at `offset` (the byte after a meta page's header). */
export function readMeta(buf: Buffer, offset: number): Meta {
  return {
    magic: buf.readUInt32LE(offset),
    version: buf.readUInt32LE(offset + 4),
    pageSize: buf.readUInt32LE(offset + 8),
    flags: buf.readUInt32LE(offset + 12),
    root: buf.readBigUInt64LE(offset + 16),
    sequence: buf.readBigUInt64LE(offset + 24),
    freelist: buf.readBigUInt64LE(offset + 32),
    pgid: buf.readBigUInt64LE(offset + 40),
    txid: buf.readBigUInt64LE(offset + 48),
    checksum: buf.readBigUInt64LE(offset + 56),
  };
}

/** meta.validate(): the error bbolt reports for a bad meta page, or undefined when it is valid. */
export function metaError(buf: Buffer, offset: number): string | undefined {
  const m = readMeta(buf, offset);
  if (m.magic !== MAGIC) return 'invalid database';
  if (m.version !== VERSION) return 'version mismatch';
  if (m.checksum !== 0n && m.checksum !== fnv1a64(buf.subarray(offset, offset + META_CHECKSUM_OFFSET))) return 'checksum error';
  return undefined;
}

/** A whole meta page (header and meta, checksum computed), `pageSize` bytes. */
export function encodeMetaPage(pageId: bigint, m: Omit<Meta, 'magic' | 'version' | 'checksum' | 'flags'>): Buffer {
  const page = Buffer.alloc(m.pageSize);
  writePageHeader(page, 0, { id: pageId, flags: META_PAGE_FLAG, count: 0, overflow: 0 });
  const o = PAGE_HEADER_SIZE;
  page.writeUInt32LE(MAGIC, o);
  page.writeUInt32LE(VERSION, o + 4);
  page.writeUInt32LE(m.pageSize, o + 8);
  page.writeUInt32LE(0, o + 12);
  page.writeBigUInt64LE(m.root, o + 16);
  page.writeBigUInt64LE(m.sequence, o + 24);
  page.writeBigUInt64LE(m.freelist, o + 32);
  page.writeBigUInt64LE(m.pgid, o + 40);
  page.writeBigUInt64LE(m.txid, o + 48);
  page.writeBigUInt64LE(fnv1a64(page.subarray(o, o + META_CHECKSUM_OFFSET)), o + 56);
  return page;
}

export class BboltFormatError extends Error {}
