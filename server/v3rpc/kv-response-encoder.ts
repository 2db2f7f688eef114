/**
 * etcdserverpb.RangeResponse, PutResponse and DeleteRangeResponse encoded by hand into one buffer
 * of their exact size, instead of through protobufjs (`fromObject`, which parses the header's
 * uint64 strings with Long.fromString on every response, then a writer that allocates per field).
 * A Range of 100k keys of 1 KiB spent ~0.7 s in protobufjs alone; here it is one size pass and one
 * copy of the keys and values; a Put's response was ~2 % of a put's main-thread time. The bytes
 * follow proto3's rules as gogoproto's Marshal writes them (fields in number order, zero values
 * omitted), so any client decodes them as it decodes etcd's; the equivalence with protobufjs is
 * checked in test/server/kv-response-encoder.test.ts.
 *
 *   RangeResponse       header=1 ResponseHeader, kvs=2 repeated KeyValue, more=3 bool, count=4 int64
 *   PutResponse         header=1 ResponseHeader, prev_kv=2 KeyValue
 *   DeleteRangeResponse header=1 ResponseHeader, deleted=2 int64, prev_kvs=3 repeated KeyValue
 *   ResponseHeader      cluster_id=1 uint64, member_id=2 uint64, revision=3 int64, raft_term=4 uint64
 *   KeyValue            key=1 bytes, create_revision=2, mod_revision=3, version=4 int64, value=5 bytes, lease=6 int64
 */
import type { DeleteRangeResponse, KeyValueMsg, PutResponse, RangeResponse, ResponseHeader } from '../../proto/etcd-types';

type Int64 = number | string | bigint;

const WIRE_VARINT = 0;
const WIRE_BYTES = 2;
const U64_MASK = 0xffff_ffff_ffff_ffffn;

/**
 * The last few decimal strings turned into operands: a header's cluster_id and member_id are the
 * same 20-digit strings in every response of a member, and BigInt() parses them each time.
 */
const parsedStrings = new Map<string, bigint>();
const MAX_PARSED_STRINGS = 16;

/** A 64-bit field value as a varint operand: a number when it is a safe non-negative integer. */
function operand(v: Int64): number | bigint {
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

function isZero(v: number | bigint): boolean {
  return v === 0 || v === 0n;
}

function varintSize(v: number | bigint): number {
  let n = 1;
  if (typeof v === 'number') {
    while (v >= 0x80) {
      v = Math.floor(v / 0x80);
      n++;
    }
    return n;
  }
  while (v >= 0x80n) {
    v >>= 7n;
    n++;
  }
  return n;
}

/** Writes `v` at `off`; returns the offset after it. */
function writeVarint(buf: Buffer, off: number, v: number | bigint): number {
  if (typeof v === 'number') {
    while (v >= 0x80) {
      buf[off++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    buf[off++] = v;
    return off;
  }
  while (v >= 0x80n) {
    buf[off++] = Number(v & 0x7fn) | 0x80;
    v >>= 7n;
  }
  buf[off++] = Number(v);
  return off;
}

/** Field numbers here are below 16, so every tag is one byte. */
function tag(field: number, wire: number): number {
  return (field << 3) | wire;
}

function varintFieldSize(v: number | bigint): number {
  return isZero(v) ? 0 : 1 + varintSize(v);
}

function bytesFieldSize(length: number): number {
  return length === 0 ? 0 : 1 + varintSize(length) + length;
}

function writeVarintField(buf: Buffer, off: number, field: number, v: number | bigint): number {
  if (isZero(v)) return off;
  buf[off++] = tag(field, WIRE_VARINT);
  return writeVarint(buf, off, v);
}

function writeBytesField(buf: Buffer, off: number, field: number, b: Uint8Array): number {
  if (b.length === 0) return off;
  buf[off++] = tag(field, WIRE_BYTES);
  off = writeVarint(buf, off, b.length);
  buf.set(b, off);
  return off + b.length;
}

/** An embedded message: tag, length, body (present even when its body is empty). */
function messageSize(bodySize: number): number {
  return 1 + varintSize(bodySize) + bodySize;
}

interface HeaderOperands {
  readonly values: readonly (number | bigint)[];
  readonly size: number;
}

function headerOperands(h: ResponseHeader): HeaderOperands {
  const values = [operand(h.cluster_id), operand(h.member_id), operand(h.revision), operand(h.raft_term)];
  return { values, size: values.reduce<number>((n, v) => n + varintFieldSize(v), 0) };
}

interface KvOperands {
  readonly kv: KeyValueMsg;
  readonly create: number | bigint;
  readonly mod: number | bigint;
  readonly version: number | bigint;
  readonly lease: number | bigint;
  readonly size: number;
}

function kvOperands(kv: KeyValueMsg): KvOperands {
  const create = operand(kv.create_revision);
  const mod = operand(kv.mod_revision);
  const version = operand(kv.version);
  const lease = operand(kv.lease);
  const size =
    bytesFieldSize(kv.key.length) +
    varintFieldSize(create) +
    varintFieldSize(mod) +
    varintFieldSize(version) +
    bytesFieldSize(kv.value.length) +
    varintFieldSize(lease);
  return { kv, create, mod, version, lease, size };
}

/** The header as field 1 of a response. */
function writeHeader(buf: Buffer, off: number, header: HeaderOperands): number {
  buf[off++] = tag(1, WIRE_BYTES);
  off = writeVarint(buf, off, header.size);
  for (let i = 0; i < header.values.length; i++) off = writeVarintField(buf, off, i + 1, header.values[i]);
  return off;
}

/** A KeyValue as an embedded message in `field`. */
function writeKv(buf: Buffer, off: number, field: number, o: KvOperands): number {
  buf[off++] = tag(field, WIRE_BYTES);
  off = writeVarint(buf, off, o.size);
  off = writeBytesField(buf, off, 1, o.kv.key);
  off = writeVarintField(buf, off, 2, o.create);
  off = writeVarintField(buf, off, 3, o.mod);
  off = writeVarintField(buf, off, 4, o.version);
  off = writeBytesField(buf, off, 5, o.kv.value);
  return writeVarintField(buf, off, 6, o.lease);
}

export function encodeRangeResponse(r: RangeResponse): Buffer {
  const header = headerOperands(r.header);
  const kvs = r.kvs.map(kvOperands);
  const count = operand(r.count);
  let size = messageSize(header.size);
  for (const kv of kvs) size += messageSize(kv.size);
  if (r.more) size += 2;
  size += varintFieldSize(count);

  const buf = Buffer.allocUnsafe(size);
  let off = writeHeader(buf, 0, header);
  for (const o of kvs) off = writeKv(buf, off, 2, o);
  if (r.more) off = writeVarintField(buf, off, 3, 1);
  off = writeVarintField(buf, off, 4, count);
  if (off !== size) throw new Error(`RangeResponse encoder wrote ${off} bytes of ${size}`);
  return buf;
}

export function encodePutResponse(r: PutResponse): Buffer {
  const header = headerOperands(r.header);
  const prev = r.prev_kv ? kvOperands(r.prev_kv) : undefined;
  const size = messageSize(header.size) + (prev ? messageSize(prev.size) : 0);
  const buf = Buffer.allocUnsafe(size);
  let off = writeHeader(buf, 0, header);
  if (prev) off = writeKv(buf, off, 2, prev);
  if (off !== size) throw new Error(`PutResponse encoder wrote ${off} bytes of ${size}`);
  return buf;
}

export function encodeDeleteRangeResponse(r: DeleteRangeResponse): Buffer {
  const header = headerOperands(r.header);
  const deleted = operand(r.deleted);
  const prevs = (r.prev_kvs ?? []).map(kvOperands);
  let size = messageSize(header.size) + varintFieldSize(deleted);
  for (const p of prevs) size += messageSize(p.size);
  const buf = Buffer.allocUnsafe(size);
  let off = writeHeader(buf, 0, header);
  off = writeVarintField(buf, off, 2, deleted);
  for (const p of prevs) off = writeKv(buf, off, 3, p);
  if (off !== size) throw new Error(`DeleteRangeResponse encoder wrote ${off} bytes of ${size}`);
  return buf;
}
