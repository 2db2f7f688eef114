/**
 * Protocol-buffer wire primitives for the encoders written by hand (server/v3rpc/kv-response-encoder.ts,
 * server/etcdserver/raft-request-encoder.ts): varints, length-delimited fields and embedded
 * messages, written into one buffer sized beforehand, zero values omitted as proto3 (and
 * gogoproto's Marshal) do.
 */

export type Int64 = number | string | bigint;

export const WIRE_VARINT = 0;
export const WIRE_BYTES = 2;
const U64_MASK = 0xffff_ffff_ffff_ffffn;

/**
 * The last few decimal strings turned into operands: a header's cluster_id and member_id are the
 * same 20-digit strings in every response of a member, and BigInt() parses them each time.
 */
const parsedStrings = new Map<string, bigint>();
const MAX_PARSED_STRINGS = 16;

/** A 64-bit field value as a varint operand: a number when it is a safe non-negative integer. */
export function operand(v: Int64): number | bigint {
  if (typeof v === 'number' && v >= 0 && Number.isSafeInteger(v)) return v;
  if (typeof v === 'string') {
    let b = parsedStrings.get(v);
    if (b === undefined) {
      b = BigInt(v) & U64_MASK;
      if (parsedStrings.size >= MAX_PARSED_STRINGS) parsedStrings.clear();
      parsedStrings.set(v, b);
    }
    return b;
  }
  // Negative int64 values are written as 64-bit two's complement (10 bytes), as protobuf does.
  return BigInt(v) & U64_MASK;
}

export function isZero(v: number | bigint): boolean {
  return v === 0 || v === 0n;
}

export function varintSize(v: number | bigint): number {
  let n = 1;
  if (typeof v === 'number') {
    while (v >= 0x80) {
      v = Math.floor(v / 0x80);
      n++;
    }
    return n;
  }
  // A uint64 operand as two 32-bit halves: two BigInt operations instead of one per 7 bits.
  const hi = Number(v >> 32n);
  if (hi === 0) return varintSize(Number(v));
  return Math.ceil((64 - Math.clz32(hi)) / 7);
}

/** Writes `v` at `off`; returns the offset after it. */
export function writeVarint(buf: Buffer, off: number, v: number | bigint): number {
  if (typeof v === 'number') {
    while (v >= 0x80) {
      buf[off++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    buf[off++] = v;
    return off;
  }
  // As protobufjs's LongBits: 7 bits at a time across the halves, with 32-bit number operations.
  let lo = Number(v & 0xffff_ffffn);
  let hi = Number(v >> 32n);
  while (hi !== 0) {
    buf[off++] = (lo & 0x7f) | 0x80;
    lo = ((lo >>> 7) | (hi << 25)) >>> 0;
    hi >>>= 7;
  }
  while (lo > 0x7f) {
    buf[off++] = (lo & 0x7f) | 0x80;
    lo >>>= 7;
  }
  buf[off++] = lo;
  return off;
}

/** Field numbers here are below 16, so every tag is one byte. */
export function tag(field: number, wire: number): number {
  return (field << 3) | wire;
}

export function varintFieldSize(v: number | bigint): number {
  return isZero(v) ? 0 : 1 + varintSize(v);
}

export function bytesFieldSize(length: number): number {
  return length === 0 ? 0 : 1 + varintSize(length) + length;
}

export function writeVarintField(buf: Buffer, off: number, field: number, v: number | bigint): number {
  if (isZero(v)) return off;
  buf[off++] = tag(field, WIRE_VARINT);
  return writeVarint(buf, off, v);
}

export function writeBytesField(buf: Buffer, off: number, field: number, b: Uint8Array): number {
  if (b.length === 0) return off;
  buf[off++] = tag(field, WIRE_BYTES);
  off = writeVarint(buf, off, b.length);
  buf.set(b, off);
  return off + b.length;
}

/** An embedded message: tag, length, body (present even when its body is empty). */
export function messageSize(bodySize: number): number {
  return 1 + varintSize(bodySize) + bodySize;
}

