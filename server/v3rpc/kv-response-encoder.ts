/**
 * etcdserverpb.RangeResponse, PutResponse and DeleteRangeResponse encoded by hand into one buffer
 * of their exact size, instead of through protobufjs (`fromObject`, which parses the header's
 * uint64 strings with Long.fromString on every response, then a writer that allocates per field).
 * A Range of 100k keys of 1 KiB spent ~0.7 s in protobufjs alone; here it is one size pass and one
 * copy of the keys and values; a Put's response was ~2 % of a put's main-thread time. The bytes
 * follow proto3's rules as gogoproto's Marshal writes them (fields in number order, zero values
 * omitted), so any client decodes them as it decodes etcd's; the equivalence with protobufjs is
 * checked in test/server/kv-response-encoder.test.ts. The wire primitives are proto/wire-writer.ts.
 *
 *   RangeResponse       header=1 ResponseHeader, kvs=2 repeated KeyValue, more=3 bool, count=4 int64
 *   PutResponse         header=1 ResponseHeader, prev_kv=2 KeyValue
 *   DeleteRangeResponse header=1 ResponseHeader, deleted=2 int64, prev_kvs=3 repeated KeyValue
 *   ResponseHeader      cluster_id=1 uint64, member_id=2 uint64, revision=3 int64, raft_term=4 uint64
 *   KeyValue            key=1 bytes, create_revision=2, mod_revision=3, version=4 int64, value=5 bytes, lease=6 int64
 */
import type { DeleteRangeResponse, KeyValueMsg, PutResponse, RangeResponse, ResponseHeader } from '../../proto/etcd-types';
import { WIRE_BYTES, bytesFieldSize, messageSize, operand, tag, varintFieldSize, writeBytesField, writeVarint, writeVarintField } from '../../proto/wire-writer';

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
