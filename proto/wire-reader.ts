/**
 * Protocol-buffer wire reading for the decoders written by hand (server/etcdserver/raft-request-decoder.ts,
 * server/rafthttp/raft-codec.ts): varints read as two 32-bit halves (as protobufjs's LongBits, with
 * no BigInt unless the value needs more than 53 bits), length-delimited fields as views into the
 * input (protobufjs's Buffer reader returns views too), and skipping of fields a decoder leaves
 * alone. A truncated or malformed input throws WireFormatError, as protobufjs throws on it.
 */

import { WIRE_BYTES, WIRE_VARINT } from './wire-writer';

const WIRE_FIXED64 = 1;
const WIRE_FIXED32 = 5;

/** The input is not a valid protobuf encoding (protobufjs: "index out of range", "invalid wire type"). */
export class WireFormatError extends Error {
  constructor(message: string) {
    super(`protobuf wire format: ${message}`);
    this.name = 'WireFormatError';
  }
}

/** Above this a uint64's high half makes the value exceed Number.MAX_SAFE_INTEGER. */
const SAFE_HIGH_HALF = 0x1f_ffff;
const TWO_32 = 0x1_0000_0000;

export class WireReader {
  pos: number;

  constructor(
    readonly buf: Buffer,
    start = 0,
    readonly end = buf.length,
  ) {
    this.pos = start;
  }

  get done(): boolean {
    return this.pos >= this.end;
  }

  private byte(): number {
    if (this.pos >= this.end) throw new WireFormatError(`index out of range: ${this.pos} + 1 > ${this.end}`);
    return this.buf[this.pos++];
  }

  /** A varint of at most 32 bits (tags, lengths, enums, bools); higher bits are an error. */
  uint32(): number {
    let v = 0;
    for (let shift = 0; shift < 35; shift += 7) {
      const b = this.byte();
      v += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) {
        if (v >= TWO_32) throw new WireFormatError('varint does not fit 32 bits');
        return v;
      }
    }
    throw new WireFormatError('varint does not fit 32 bits');
  }

  /** A uint64 varint: a number when it is at most 2^53 - 1, else a bigint. */
  uint64(): number | bigint {
    let lo = 0;
    let hi = 0;
    let i = 0;
    for (; i < 4; i++) {
      const b = this.byte();
      lo = (lo | ((b & 0x7f) << (i * 7))) >>> 0;
      if (b < 0x80) return lo;
    }
    // Fifth byte: 4 bits of the low half, 3 of the high.
    let b = this.byte();
    lo = (lo | ((b & 0x0f) << 28)) >>> 0;
    hi = (b & 0x7f) >> 4;
    if (b >= 0x80) {
      for (i = 0; i < 5; i++) {
        b = this.byte();
        hi = (hi | ((b & 0x7f) << (i * 7 + 3))) >>> 0;
        if (b < 0x80) break;
      }
      if (b >= 0x80) throw new WireFormatError('varint longer than 10 bytes');
    }
    if (hi <= SAFE_HIGH_HALF) return hi * TWO_32 + lo;
    return (BigInt(hi) << 32n) | BigInt(lo);
  }

  /** A uint64 as its decimal string (protobufjs's `longs: String`). */
  uint64String(): string {
    return String(this.uint64());
  }

  /** An int64 as its decimal string: ten-byte two's complement for negative values. */
  int64String(): string {
    const v = this.uint64();
    if (typeof v === 'number') return String(v);
    return BigInt.asIntN(64, v).toString();
  }

  bool(): boolean {
    return this.uint64() !== 0;
  }

  /** The length-delimited field's bounds [start, end), after its length. */
  delimited(): { start: number; end: number } {
    const len = this.uint32();
    const start = this.pos;
    if (start + len > this.end) throw new WireFormatError(`index out of range: ${start} + ${len} > ${this.end}`);
    this.pos = start + len;
    return { start, end: start + len };
  }

  /** A bytes field as a view into the input. */
  bytes(): Buffer {
    const { start, end } = this.delimited();
    return this.buf.subarray(start, end);
  }

  string(): string {
    const { start, end } = this.delimited();
    return this.buf.toString('utf8', start, end);
  }

  /** Skips one field's value of wire type `wire`. */
  skip(wire: number): void {
    switch (wire) {
      case WIRE_VARINT:
        this.uint64();
        return;
      case WIRE_FIXED64:
        this.advance(8);
        return;
      case WIRE_BYTES:
        this.delimited();
        return;
      case WIRE_FIXED32:
        this.advance(4);
        return;
      default:
        throw new WireFormatError(`invalid wire type ${wire} at offset ${this.pos}`);
    }
  }

  private advance(n: number): void {
    if (this.pos + n > this.end) throw new WireFormatError(`index out of range: ${this.pos} + ${n} > ${this.end}`);
    this.pos += n;
  }
}
