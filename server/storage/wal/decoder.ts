import * as fs from 'node:fs';
import { FRAME_BYTES, RECORD_HEADER_BYTES, RecordType, decodeLengthField, isTorn, verifyRecord, type DecodedRecord } from './record';

/**
 * Reads the records of one segment file in order, streaming (a window of READ_CHUNK_BYTES, grown
 * only for a record larger than it), as etcd's decoder does. What ends the segment decides what
 * replay does: the end of data (the zeros of the preallocated space, or the file's end), a torn
 * write (only repairable in the last segment), or damage (never repaired).
 */

const READ_CHUNK_BYTES = 1 << 20;

/** A WAL that cannot be replayed as written: the member refuses to start (etcd's ErrCRCMismatch and kin). */
export class WalCorruptionError extends Error {
  constructor(
    readonly reason: string,
    readonly file: string,
    readonly offset: number,
  ) {
    // etcd's decoder: "%w: in file '%s' at position: %d".
    super(`${reason}: in file '${file}' at position: ${offset}`);
    this.name = 'WalCorruptionError';
  }
}

/** etcd's ErrCRCMismatch wording. */
export const ERR_CRC_MISMATCH = 'wal: crc mismatch';

export type SegmentEnd =
  /** The zeros of preallocated space or the end of the file: every record before `offset` is valid. */
  | { kind: 'end'; offset: number }
  /** A partial record at `offset` (a frame cut short by the file's end, or a zero sector in it). */
  | { kind: 'torn'; offset: number };

export class SegmentDecoder {
  private buf = Buffer.allocUnsafe(READ_CHUNK_BYTES);
  private winStart = 0;
  private winLen = 0;
  /** Offset just after the last valid record. */
  offset = 0;

  private constructor(
    private readonly h: fs.promises.FileHandle,
    readonly file: string,
    readonly sizeBytes: number,
    /** The chain crc so far (continued across segments by the crc record). */
    public crc: number,
  ) {}

  static async open(file: string, prevCrc: number): Promise<SegmentDecoder> {
    const h = await fs.promises.open(file, 'r');
    const st = await h.stat();
    return new SegmentDecoder(h, file, st.size, prevCrc);
  }

  async close(): Promise<void> {
    await this.h.close();
  }

  /** `len` bytes at `off` (fewer at the end of the file), valid until the next call. */
  private async bytes(off: number, len: number): Promise<Buffer> {
    if (off < this.winStart || off + len > this.winStart + this.winLen) {
      if (len > this.buf.length) this.buf = Buffer.allocUnsafe(len);
      const want = Math.min(this.buf.length, this.sizeBytes - off);
      let got = 0;
      while (got < want) {
        const { bytesRead } = await this.h.read(this.buf, got, want - got, off + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      this.winStart = off;
      this.winLen = got;
    }
    const start = off - this.winStart;
    return this.buf.subarray(start, Math.min(start + len, this.winLen));
  }

  /**
   * The next record, or how the segment ends. `last` says whether this is the last segment: only
   * there may a write be torn (etcd's isTornEntry looks at the last file only). Throws
   * WalCorruptionError on damage.
   */
  async next(last: boolean): Promise<DecodedRecord | SegmentEnd> {
    const off = this.offset;
    if (off + FRAME_BYTES > this.sizeBytes) {
      if (off === this.sizeBytes) return { kind: 'end', offset: off };
      return this.short(last, off);
    }
    const lenBuf = await this.bytes(off, FRAME_BYTES);
    if (lenBuf.readUInt32LE(0) === 0 && lenBuf.readUInt32LE(4) === 0) return { kind: 'end', offset: off };
    const frame = decodeLengthField(lenBuf, 0);
    if (!frame) throw new WalCorruptionError('wal: invalid record length', this.file, off);
    const bodyBytes = frame.recordBytes + frame.padBytes;
    if (off + FRAME_BYTES + bodyBytes > this.sizeBytes) return this.short(last, off);
    const body = await this.bytes(off + FRAME_BYTES, bodyBytes);
    const ok = verifyRecord(body.subarray(0, frame.recordBytes), this.crc);
    if (!ok) {
      if (last && isTorn(body, off + FRAME_BYTES)) return { kind: 'torn', offset: off };
      throw new WalCorruptionError(ERR_CRC_MISMATCH, this.file, off);
    }
    if (ok.record.type === RecordType.Crc) {
      // etcd ReadAll: the crc record must carry the chain value so far (0 when reading starts here).
      if (this.crc !== 0 && ok.record.crc !== this.crc) throw new WalCorruptionError(ERR_CRC_MISMATCH, this.file, off);
    } else if (off === 0) {
      throw new WalCorruptionError('wal: segment does not start with a crc record', this.file, off);
    }
    this.crc = ok.crc;
    this.offset = off + FRAME_BYTES + bodyBytes;
    return ok.record;
  }

  /**
   * Walks the frames from the start without checking crcs, handing each record's type and the
   * first `headBytes` of its data (fewer if it is shorter) to `visit`. Stops at the end of data or
   * at the first frame that cannot be one. What it yields is unverified: only for hints.
   */
  async skim(headBytes: number, visit: (type: number, head: Buffer) => void): Promise<void> {
    for (let off = 0; off + FRAME_BYTES <= this.sizeBytes; ) {
      const lenBuf = await this.bytes(off, FRAME_BYTES);
      if (lenBuf.length < FRAME_BYTES || (lenBuf.readUInt32LE(0) === 0 && lenBuf.readUInt32LE(4) === 0)) return;
      const frame = decodeLengthField(lenBuf, 0);
      if (!frame) return;
      const next = off + FRAME_BYTES + frame.recordBytes + frame.padBytes;
      if (next > this.sizeBytes) return;
      const head = await this.bytes(off + FRAME_BYTES, Math.min(frame.recordBytes, RECORD_HEADER_BYTES + headBytes));
      visit(head[0], head.subarray(RECORD_HEADER_BYTES));
      off = next;
    }
  }

  /** A frame cut short by the end of the file: a torn write in the last segment, damage elsewhere. */
  private short(last: boolean, off: number): SegmentEnd {
    if (last) return { kind: 'torn', offset: off };
    throw new WalCorruptionError('wal: unexpected end of segment', this.file, off);
  }
}

export function isSegmentEnd(r: DecodedRecord | SegmentEnd): r is SegmentEnd {
  return 'kind' in r;
}
