/**
 * Writes a compact bbolt file bottom-up from sorted key/value lists, as bbolt itself would lay
 * them out after a compaction (bbolt's compact.go / `bbolt compact`): no free pages, leaf pages
 * filled as bbolt's node.split fills them (DEFAULT_FILL_PERCENT), branch levels above them, small
 * buckets inlined into their parent as bbolt's bucket.inlineable() decides, large values on
 * overflow pages. Pages go to the sink as soon as they are full, so memory holds one page of
 * pending elements per open bucket plus one branch entry per written page; the file is never
 * assembled in memory.
 *
 * Layout: pages 0 and 1 are meta pages (written last, as tx.WriteTo writes them: meta 0 with the
 * txid, meta 1 with txid - 1), page 2 an empty freelist, then the buckets' pages in the order they
 * were finished, the root bucket's last.
 */
import * as fs from 'node:fs';
import {
  BRANCH_ELEMENT_SIZE, BRANCH_PAGE_FLAG, BUCKET_HEADER_SIZE, BUCKET_LEAF_FLAG, DEFAULT_FILL_PERCENT, DEFAULT_PAGE_SIZE,
  encodeMetaPage, FREELIST_PAGE_FLAG, LEAF_ELEMENT_SIZE, LEAF_PAGE_FLAG, MIN_KEYS_PER_PAGE, PAGE_HEADER_SIZE, writePageHeader,
} from './format';

/** Where pages go: `pgid * pageSize` is the byte offset of `data`. */
export interface PageSink {
  write(pgid: number, data: Buffer): void;
  /**
   * A zeroed buffer of `bytes` for the page(s) at `pgid`, which the sink writes out later: the
   * caller fills it before its next call to the sink (so pages are encoded in place, not copied).
   */
  page(pgid: number, bytes: number): Buffer;
}

/** Collects the file in memory (tests, small files). */
export class MemorySink implements PageSink {
  private readonly parts: Array<{ pgid: number; data: Buffer }> = [];
  constructor(private readonly pageSize = DEFAULT_PAGE_SIZE) {}
  write(pgid: number, data: Buffer): void {
    this.parts.push({ pgid, data: Buffer.from(data) });
  }
  page(pgid: number, bytes: number): Buffer {
    const data = Buffer.alloc(bytes);
    this.parts.push({ pgid, data });
    return data;
  }
  contents(): Buffer {
    const end = Math.max(0, ...this.parts.map((p) => p.pgid * this.pageSize + p.data.length));
    const out = Buffer.alloc(end);
    for (const p of this.parts) p.data.copy(out, p.pgid * this.pageSize);
    return out;
  }
}

/** Bytes a FileSink buffers before it writes them (consecutive pages join one write). */
const FILE_SINK_BUFFER_BYTES = 1 << 20;

/**
 * Writes pages to an open file descriptor. Consecutive pages are encoded straight into one staging
 * buffer and written with one write(2) when it is full; a page larger than the buffer gets its own.
 */
export class FileSink implements PageSink {
  private readonly staging = Buffer.alloc(FILE_SINK_BUFFER_BYTES);
  private used = 0;
  /** File offset of staging[0], or -1 while nothing is staged. */
  private stagingStart = -1;
  /** A page too large for the staging buffer, written at the next call. */
  private large: { at: number; buf: Buffer } | null = null;

  constructor(private readonly fd: number, private readonly pageSize = DEFAULT_PAGE_SIZE) {}

  write(pgid: number, data: Buffer): void {
    data.copy(this.page(pgid, data.length));
  }

  page(pgid: number, bytes: number): Buffer {
    this.writeLarge();
    const at = pgid * this.pageSize;
    if (bytes > this.staging.length) {
      this.flush();
      this.large = { at, buf: Buffer.alloc(bytes) };
      return this.large.buf;
    }
    if (this.stagingStart < 0 || at !== this.stagingStart + this.used || this.used + bytes > this.staging.length) {
      this.flush();
      this.stagingStart = at;
    }
    const buf = this.staging.subarray(this.used, this.used + bytes);
    this.used += bytes;
    return buf;
  }

  flush(): void {
    this.writeLarge();
    if (this.used > 0) {
      writeAll(this.fd, this.staging.subarray(0, this.used), this.stagingStart);
      this.staging.fill(0, 0, this.used);
    }
    this.used = 0;
    this.stagingStart = -1;
  }

  private writeLarge(): void {
    if (this.large === null) return;
    writeAll(this.fd, this.large.buf, this.large.at);
    this.large = null;
  }
}

function writeAll(fd: number, buf: Buffer, position: number): void {
  for (let o = 0; o < buf.length; ) o += fs.writeSync(fd, buf, o, buf.length - o, position + o);
}

interface Element {
  readonly flags: number;
  readonly key: Buffer;
  /** Leaf: the value. Branch: unused (empty). */
  readonly value: Buffer;
  /** Branch: the child page. */
  readonly pgid: number;
}

export interface WriterOptions {
  readonly pageSize?: number;
  /** bbolt's Bucket.FillPercent (clamped to [0.1, 1] as bbolt does). */
  readonly fillPercent?: number;
}

const FIRST_DATA_PAGE = 3;

/** bbolt clamps Bucket.FillPercent to [minFillPercent, maxFillPercent]. */
function splitThreshold(pageSize: number, fillPercent: number): number {
  return Math.floor(pageSize * Math.min(1, Math.max(0.1, fillPercent)));
}

export class BboltWriter {
  readonly pageSize: number;
  private readonly fillPercent: number;
  private nextPgid = FIRST_DATA_PAGE;

  constructor(private readonly sink: PageSink, opts: WriterOptions = {}) {
    this.pageSize = opts.pageSize ?? DEFAULT_PAGE_SIZE;
    this.fillPercent = opts.fillPercent ?? DEFAULT_FILL_PERCENT;
  }

  /**
   * A new bucket; its value goes into its parent through `parent.putBucket(name, child)`.
   * `fillPercent` overrides the writer's for this bucket, as bbolt's Bucket.FillPercent does.
   */
  bucket(opts: { fillPercent?: number } = {}): BucketBuilder {
    return new BucketBuilder(this, splitThreshold(this.pageSize, opts.fillPercent ?? this.fillPercent));
  }

  /**
   * Writes the root bucket (whose entries are the top-level buckets), the empty freelist and both
   * meta pages. Returns the file size (the high-water mark times the page size).
   */
  finish(root: BucketBuilder, txid = 2n): number {
    const rootPgid = root.endRoot();
    const pgid = BigInt(this.nextPgid);
    const free = Buffer.alloc(this.pageSize);
    writePageHeader(free, 0, { id: 2n, flags: FREELIST_PAGE_FLAG, count: 0, overflow: 0 });
    this.sink.write(2, free);
    const meta = { pageSize: this.pageSize, root: BigInt(rootPgid), sequence: 0n, freelist: 2n, pgid };
    this.sink.write(0, encodeMetaPage(0n, { ...meta, txid }));
    this.sink.write(1, encodeMetaPage(1n, { ...meta, txid: txid - 1n }));
    return this.nextPgid * this.pageSize;
  }

  /** Encodes `els` as one page (with overflow pages if needed), writes it, returns its pgid. */
  writePage(flags: number, els: readonly Element[]): number {
    const elSize = flags === BRANCH_PAGE_FLAG ? BRANCH_ELEMENT_SIZE : LEAF_ELEMENT_SIZE;
    const size = pageBytes(els, elSize);
    const pages = Math.max(1, Math.ceil(size / this.pageSize));
    const id = this.nextPgid;
    this.nextPgid += pages;
    const buf = this.sink.page(id, pages * this.pageSize);
    writePageHeader(buf, 0, { id: BigInt(id), flags, count: els.length, overflow: pages - 1 });
    encodeElements(buf, flags, els);
    return id;
  }
}

function elementBytes(el: Element, elSize: number): number {
  return elSize + el.key.length + el.value.length;
}

function pageBytes(els: readonly Element[], elSize: number): number {
  let size = PAGE_HEADER_SIZE;
  for (const el of els) size += elementBytes(el, elSize);
  return size;
}

/** node.write: the element array after the header, then each key (and value) in order. */
function encodeElements(buf: Buffer, flags: number, els: readonly Element[]): void {
  let data = PAGE_HEADER_SIZE + els.length * (flags === BRANCH_PAGE_FLAG ? BRANCH_ELEMENT_SIZE : LEAF_ELEMENT_SIZE);
  els.forEach((el, i) => {
    const at = PAGE_HEADER_SIZE + i * 16;
    if (flags === BRANCH_PAGE_FLAG) {
      buf.writeUInt32LE(data - at, at);
      buf.writeUInt32LE(el.key.length, at + 4);
      buf.writeBigUInt64LE(BigInt(el.pgid), at + 8);
    } else {
      buf.writeUInt32LE(el.flags, at);
      buf.writeUInt32LE(data - at, at + 4);
      buf.writeUInt32LE(el.key.length, at + 8);
      buf.writeUInt32LE(el.value.length, at + 12);
    }
    el.key.copy(buf, data);
    data += el.key.length;
    el.value.copy(buf, data);
    data += el.value.length;
  });
}

/**
 * Packs a sorted run of elements into pages as bbolt's node.split does: a node is split while it
 * is at least a page and holds more than 2 * minKeysPerPage elements, the first part ending where
 * it would pass the fill threshold (node.splitIndex). Returns (first key, pgid) per page written.
 */
class PagePacker {
  private pending: Element[] = [];
  private pendingBytes = PAGE_HEADER_SIZE;
  readonly pages: Element[] = [];
  private readonly elSize: number;

  constructor(private readonly w: BboltWriter, private readonly flags: number, private readonly threshold: number) {
    this.elSize = flags === BRANCH_PAGE_FLAG ? BRANCH_ELEMENT_SIZE : LEAF_ELEMENT_SIZE;
  }

  add(el: Element): void {
    this.pending.push(el);
    this.pendingBytes += elementBytes(el, this.elSize);
    while (this.pending.length > MIN_KEYS_PER_PAGE * 2 && this.pendingBytes >= this.w.pageSize) this.splitOff();
  }

  private splitOff(): void {
    let index = 0;
    let sz = PAGE_HEADER_SIZE;
    for (let i = 0; i < this.pending.length - MIN_KEYS_PER_PAGE; i++) {
      index = i;
      const elsize = elementBytes(this.pending[i], this.elSize);
      if (i >= MIN_KEYS_PER_PAGE && sz + elsize > this.threshold) break;
      sz += elsize;
    }
    this.emit(this.pending.slice(0, index), sz);
    this.pending = this.pending.slice(index);
  }

  private emit(els: Element[], bytes: number): void {
    this.pendingBytes -= bytes - PAGE_HEADER_SIZE;
    const pgid = this.w.writePage(this.flags, els);
    this.pages.push({ flags: 0, key: els.length > 0 ? els[0].key : Buffer.alloc(0), value: Buffer.alloc(0), pgid });
  }

  /** Writes what is left (one page, possibly empty when nothing was written yet). */
  end(): Element[] {
    if (this.pending.length > 0 || this.pages.length === 0) this.emit(this.pending, this.pendingBytes);
    this.pending = [];
    return this.pages;
  }
}

/**
 * One bucket being written, keys in ascending byte order. It stays inline (its elements buffered)
 * while bbolt would inline it: a single leaf of at most pageSize / 4 bytes with no nested buckets.
 */
export class BucketBuilder {
  private inline: Element[] | null = [];
  private inlineBytes = PAGE_HEADER_SIZE;
  private leaves: PagePacker | null = null;
  private lastKey: Buffer | null = null;

  constructor(private readonly w: BboltWriter, private readonly threshold: number) {}

  put(key: Buffer, value: Buffer): void {
    this.add({ flags: 0, key, value, pgid: 0 });
  }

  /** Adds a child bucket under `key`: a builder (finished here) or the value of one finished earlier. */
  putBucket(key: Buffer, child: BucketBuilder | Buffer): void {
    this.add({ flags: BUCKET_LEAF_FLAG, key, value: Buffer.isBuffer(child) ? child : child.end(), pgid: 0 });
  }

  private add(el: Element): void {
    if (el.key.length === 0) throw new RangeError('bbolt: key required');
    if (this.lastKey !== null && Buffer.compare(this.lastKey, el.key) >= 0) throw new RangeError('bbolt writer: keys must be strictly ascending');
    this.lastKey = el.key;
    if (this.inline !== null) {
      this.inline.push(el);
      this.inlineBytes += elementBytes(el, LEAF_ELEMENT_SIZE);
      if (el.flags === BUCKET_LEAF_FLAG || this.inlineBytes > this.w.pageSize / 4) this.toPages();
      return;
    }
    (this.leaves as PagePacker).add(el);
  }

  private toPages(): void {
    const els = this.inline ?? [];
    this.inline = null;
    this.leaves = new PagePacker(this.w, LEAF_PAGE_FLAG, this.threshold);
    for (const el of els) this.leaves.add(el);
  }

  /** The bucket's value in its parent: a bucket header, followed by the page if inline. */
  end(): Buffer {
    if (this.inline !== null) {
      const header = Buffer.alloc(BUCKET_HEADER_SIZE + this.inlineBytes);
      writePageHeader(header, BUCKET_HEADER_SIZE, { id: 0n, flags: LEAF_PAGE_FLAG, count: this.inline.length, overflow: 0 });
      encodeElements(header.subarray(BUCKET_HEADER_SIZE), LEAF_PAGE_FLAG, this.inline);
      return header;
    }
    const header = Buffer.alloc(BUCKET_HEADER_SIZE);
    header.writeBigUInt64LE(BigInt(this.endRoot()), 0);
    return header;
  }

  /** Writes the bucket as pages (never inline) and returns its root pgid. */
  endRoot(): number {
    if (this.inline !== null) this.toPages();
    let level = (this.leaves as PagePacker).end();
    while (level.length > 1) {
      const branch = new PagePacker(this.w, BRANCH_PAGE_FLAG, this.threshold);
      for (const el of level) branch.add(el);
      level = branch.end();
    }
    return level[0].pgid;
  }
}
