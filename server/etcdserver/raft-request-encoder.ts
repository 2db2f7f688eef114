/**
 * The log entry of a Put (the commonest proposal) encoded by hand into one buffer of its exact size,
 * instead of through protobufjs, whose `fromObject` parses the header's ID and the lease from their
 * decimal strings with Long.fromString and whose writer allocates per field: together ~3% of the
 * main thread at 100 clients putting (BENCHMARKS.md). Any other request goes through protobufjs
 * (proposals.ts). Zero values are omitted, as proto3 and gogoproto's Marshal do, so a member
 * decoding the entry with protobufjs gets the same object; test/server/raft-request-encoder.test.ts
 * checks that against protobufjs's own encoding.
 *
 *   cairnpb.InternalRaftRequest  put=4 etcdserverpb.PutRequest, header=100 cairnpb.RequestHeader
 *   etcdserverpb.PutRequest      key=1 bytes, value=2 bytes, lease=3 int64, prev_kv=4 bool,
 *                                ignore_value=5 bool, ignore_lease=6 bool
 *   cairnpb.RequestHeader        ID=1 uint64, username=2 string, auth_revision=3 uint64
 */
import type { InternalRaftRequest, PutRequest } from '../../proto/etcd-types';
import { WIRE_BYTES, bytesFieldSize, messageSize, operand, tag, varintFieldSize, varintSize, writeBytesField, writeVarint, writeVarintField, type Int64 } from '../../proto/wire-writer';

const PUT_FIELD = 4;
const HEADER_FIELD = 100;
const HEADER_TAG = (HEADER_FIELD << 3) | WIRE_BYTES;

/** A 64-bit value that differs per request (an ID): parsed each time, not through operand's small cache. */
function uncached(v: Int64 | undefined): number | bigint {
  if (v === undefined) return 0;
  return operand(typeof v === 'string' ? BigInt(v) : v);
}

function boolFieldSize(b: boolean): number {
  return b ? 2 : 0;
}

/** The entry's bytes when `req` is a Put with its header and nothing else; otherwise undefined. */
export function encodePutRaftRequest(req: InternalRaftRequest): Buffer | undefined {
  const put = req.put;
  if (!put) return undefined;
  for (const k in req) {
    if (k !== 'put' && k !== 'header' && (req as Record<string, unknown>)[k] != null) return undefined;
  }
  const h = req.header;
  const id = uncached(h?.ID);
  const username = h?.username ?? '';
  const usernameBytes = username.length === 0 ? 0 : Buffer.byteLength(username, 'utf8');
  const authRevision = uncached(h?.auth_revision);
  const lease = uncached(put.lease);

  const putSize = putBodySize(put, lease);
  const headerSize = varintFieldSize(id) + bytesFieldSize(usernameBytes) + varintFieldSize(authRevision);
  const size = messageSize(putSize) + (h ? varintSize(HEADER_TAG) + varintSize(headerSize) + headerSize : 0);

  const buf = Buffer.allocUnsafe(size);
  buf[0] = tag(PUT_FIELD, WIRE_BYTES);
  let off = writeVarint(buf, 1, putSize);
  off = writeBytesField(buf, off, 1, put.key);
  off = writeBytesField(buf, off, 2, put.value);
  off = writeVarintField(buf, off, 3, lease);
  off = writeBoolField(buf, off, 4, put.prev_kv);
  off = writeBoolField(buf, off, 5, put.ignore_value);
  off = writeBoolField(buf, off, 6, put.ignore_lease);
  if (h) {
    off = writeVarint(buf, off, HEADER_TAG);
    off = writeVarint(buf, off, headerSize);
    off = writeVarintField(buf, off, 1, id);
    if (usernameBytes > 0) {
      buf[off++] = tag(2, WIRE_BYTES);
      off = writeVarint(buf, off, usernameBytes);
      off += buf.write(username, off, 'utf8');
    }
    off = writeVarintField(buf, off, 3, authRevision);
  }
  if (off !== size) throw new Error(`InternalRaftRequest encoder wrote ${off} bytes of ${size}`);
  return buf;
}

function putBodySize(put: PutRequest, lease: number | bigint): number {
  return (
    bytesFieldSize(put.key.length) +
    bytesFieldSize(put.value.length) +
    varintFieldSize(lease) +
    boolFieldSize(put.prev_kv) +
    boolFieldSize(put.ignore_value) +
    boolFieldSize(put.ignore_lease)
  );
}

function writeBoolField(buf: Buffer, off: number, field: number, b: boolean): number {
  return b ? writeVarintField(buf, off, field, 1) : off;
}
