import * as fs from 'node:fs';
import * as path from 'node:path';

/**
 * WAL segment files: names, listing, preallocation and directory fsync (etcd's wal/util.go,
 * file_pipeline.go and pkg/fileutil).
 */

/**
 * etcd's SegmentSizeBytes: each segment is preallocated to this size, and a new one is cut once a
 * write has reached it (a segment may end a little larger: a batch is never split).
 */
export const SEGMENT_SIZE_BYTES = 64 * 1000 * 1000;

/** Zeros written per call while preallocating. */
const ZERO_CHUNK_BYTES = 1 << 20;
const ZEROS = Buffer.alloc(ZERO_CHUNK_BYTES);

export interface SegmentName {
  seq: number;
  /** The index of the first entry the segment was cut for (the last entry written before + 1). */
  index: number;
  name: string;
}

/** etcd's walName: `%016x-%016x.wal`. */
export function segmentName(seq: number, index: number): string {
  return `${seq.toString(16).padStart(16, '0')}-${index.toString(16).padStart(16, '0')}.wal`;
}

const NAME_RE = /^([0-9a-f]{16})-([0-9a-f]{16})\.wal$/;

export function parseSegmentName(name: string): SegmentName | undefined {
  const m = NAME_RE.exec(name);
  if (!m) return undefined;
  return { seq: parseInt(m[1], 16), index: parseInt(m[2], 16), name };
}

/** The directory's segments in sequence order; stray `.tmp` files of an interrupted preallocation are removed. */
export function listSegments(dir: string): SegmentName[] {
  const out: SegmentName[] = [];
  for (const name of fs.readdirSync(dir)) {
    const s = parseSegmentName(name);
    if (s) out.push(s);
    else if (name.endsWith('.tmp')) fs.rmSync(path.join(dir, name), { force: true });
  }
  return out.sort((a, b) => a.seq - b.seq);
}

/** fsync a directory, so a file created, renamed or removed in it survives a power cut (etcd's fileutil.Fsync on the dir). */
export async function fsyncDir(dir: string): Promise<void> {
  const h = await fs.promises.open(dir, 'r');
  try {
    await h.sync();
  } finally {
    await h.close();
  }
}

/**
 * Preallocates `file` to `sizeBytes` by writing zeros, then fdatasyncs it. Node has no fallocate;
 * zeros written once make later writes pure data writes, so an fdatasync after them commits no
 * block allocation or file size: measured here 0.15 ms p50 against 0.25 ms for a file extended with
 * ftruncate (holes, allocated on first write) and 0.32 ms for an appended file. The zeros are also
 * what tells a torn write apart (record.ts isTorn).
 */
export async function preallocate(h: fs.promises.FileHandle, fromBytes: number, sizeBytes: number): Promise<void> {
  for (let off = fromBytes; off < sizeBytes; off += ZERO_CHUNK_BYTES) {
    const n = Math.min(ZERO_CHUNK_BYTES, sizeBytes - off);
    await h.write(ZEROS, 0, n, off);
  }
  await h.datasync();
}

/**
 * etcd's filePipeline: the next segment is created and preallocated in the background, so a cut
 * costs a rename, not 64 MB of writes. Unlike etcd, the allocation starts only once the current
 * segment is half full (`prepare()`), so an idle member holds one segment, not two.
 */
export class FilePipeline {
  private next: Promise<string> | undefined;
  private count = 0;

  constructor(
    private readonly dir: string,
    private readonly sizeBytes: number,
  ) {}

  /** Starts preallocating the next segment if none is ready or under way. */
  prepare(): void {
    if (this.next) return;
    const file = path.join(this.dir, `${this.count++ % 2}.tmp`);
    const p = allocate(file, this.sizeBytes);
    // A failure surfaces at open(); until then it must not be an unhandled rejection.
    p.catch(() => undefined);
    this.next = p;
  }

  /** A preallocated, fdatasynced file (a `.tmp` name: the caller renames it). */
  async open(): Promise<string> {
    this.prepare();
    const p = this.next as Promise<string>;
    this.next = undefined;
    return p;
  }

  /** Waits for an allocation under way and removes its file. */
  async close(): Promise<void> {
    const p = this.next;
    this.next = undefined;
    if (!p) return;
    const file = await p.catch(() => undefined);
    if (file) await fs.promises.rm(file, { force: true });
  }
}

async function allocate(file: string, sizeBytes: number): Promise<string> {
  const h = await fs.promises.open(file, 'w', 0o600);
  try {
    await preallocate(h, 0, sizeBytes);
  } catch (e) {
    // A full disk: give back what the partial file took (the cut reports the error).
    await h.close();
    await fs.promises.rm(file, { force: true });
    throw e;
  }
  await h.close();
  return file;
}
