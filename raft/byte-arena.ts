/**
 * Compact storage for the payloads of log entries that MemoryStorage keeps (issue 12, "memory
 * bounded by the index"). MemoryStorage holds every entry since the last snapshot, up to
 * --snapshot-count (etcd 3.4: 100000) of them, as etcd's MemoryStorage does; etcd holds each
 * payload as its own []byte. Node's small Buffers (Buffer.allocUnsafe, which protobufjs and the
 * decoders use) are slices of shared 8 KiB pool slabs, and one long-lived slice keeps its whole
 * slab alive: a leader's entries, interleaved in the pool with each request's short-lived buffers,
 * pinned ~275 MB of slabs for ~110 MB of payload at 100k puts of 1 KiB.
 *
 * Entries are appended in index order and compacted in index order, so copying their payloads
 * into large chunks, one after another, frees each chunk whole once the log is compacted past its
 * last entry: the memory held is the payload plus at most about one chunk.
 */

/**
 * Size of one chunk: 32 MiB, so that glibc's malloc always maps a chunk with its own mmap and
 * unmaps it when freed. glibc maps requests at or above a threshold that starts at 128 KiB and,
 * each time a mapped block is freed, rises to that block's size, up to 32 MiB
 * (DEFAULT_MMAP_THRESHOLD_MAX on 64-bit): with 1 MiB chunks, every chunk after the first free came
 * from the heap, and a heap keeps freed memory, so the member's RSS stayed at the log's peak after
 * compaction (100k puts of 1 KiB, 20 s idle after loading: 464 MB with 1 MiB chunks, 380 MB with
 * 32 MiB). Only written pages are resident, so a young chunk costs what it holds; the price is that
 * the compacted log's tail (etcd keeps 5000 entries for slow followers) can pin up to two chunks.
 */
export const ARENA_CHUNK_BYTES = 32 * 1024 * 1024;
/** Payloads above this get a buffer of their own, so a chunk is never mostly one payload's leftover. */
export const ARENA_MAX_COPY_BYTES = 1024 * 1024;

const EMPTY = Buffer.alloc(0);

export class ByteArena {
  private chunk: Buffer = EMPTY;
  private used = 0;

  constructor(private readonly chunkBytes: number = ARENA_CHUNK_BYTES) {}

  /** A copy of `src` that shares no memory with anything but other arena copies. */
  copy(src: Uint8Array): Buffer {
    const n = src.byteLength;
    if (n === 0) return EMPTY;
    if (n > ARENA_MAX_COPY_BYTES || n > this.chunkBytes) {
      const own = Buffer.allocUnsafeSlow(n);
      own.set(src);
      return own;
    }
    if (this.used + n > this.chunk.length) {
      // Not zero-filled: every byte handed out is written just below.
      this.chunk = Buffer.allocUnsafeSlow(this.chunkBytes);
      this.used = 0;
    }
    const out = this.chunk.subarray(this.used, this.used + n);
    out.set(src);
    this.used += n;
    return out;
  }
}
