/**
 * The log entry of a Put decoded by hand, the counterpart of raft-request-encoder.ts: every member
 * that did not propose an entry decodes it to apply it, and protobufjs's decode + toObject (with
 * defaults, every other request field filled in as null, the IDs through Long) was ~4% of a
 * follower's main thread at 100 clients putting on 3 members (BENCHMARKS.md). An entry holding
 * anything but a Put and its header (another request, a field twice, a field this decoder does not
 * know) is left to protobufjs (proposals.ts), so the hand path never has to be complete.
 *
 * The result has the shape the proposer's own requests have ({ header, put }, no null siblings),
 * with protobufjs's values: uint64 and int64 as decimal strings, bytes as views into the entry,
 * absent scalars as their zero values. test/server/raft-request-decoder.test.ts checks it against
 * protobufjs over edge and random puts.
 */
import type { InternalRaftRequest, PutRequest, RequestHeader } from '../../proto/etcd-types';
import { WireReader } from '../../proto/wire-reader';
import { WIRE_BYTES, WIRE_VARINT } from '../../proto/wire-writer';

const PUT_FIELD = 4;
const HEADER_FIELD = 100;
const EMPTY = Buffer.alloc(0);

/** The request in `data` when it is a Put with at most a header besides; otherwise undefined. */
export function decodePutRaftRequest(data: Uint8Array): InternalRaftRequest | undefined {
  const buf = Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const r = new WireReader(buf);
  let put: PutRequest | null | undefined;
  let header: RequestHeader | null | undefined;
  while (!r.done) {
    const t = r.uint32();
    const field = t >>> 3;
    if ((t & 7) !== WIRE_BYTES) return undefined;
    const { start, end } = r.delimited();
    if (field === PUT_FIELD && put === undefined) put = decodePut(new WireReader(buf, start, end));
    else if (field === HEADER_FIELD && header === undefined) header = decodeHeader(new WireReader(buf, start, end));
    else return undefined;
    if (put === null || header === null) return undefined;
  }
  if (put === undefined) return undefined;
  return header === undefined ? { put } : { header, put };
}

/** etcdserverpb.PutRequest: key=1 bytes, value=2 bytes, lease=3 int64, prev_kv=4, ignore_value=5, ignore_lease=6 bool. */
function decodePut(r: WireReader): PutRequest | null {
  let key: Buffer = EMPTY;
  let value: Buffer = EMPTY;
  let lease = '0';
  let prevKv = false;
  let ignoreValue = false;
  let ignoreLease = false;
  let seen = 0;
  while (!r.done) {
    const t = r.uint32();
    const field = t >>> 3;
    const bit = 1 << field;
    if (field < 1 || field > 6 || seen & bit) return null;
    seen |= bit;
    const wire = t & 7;
    if (wire !== (field <= 2 ? WIRE_BYTES : WIRE_VARINT)) return null;
    switch (field) {
      case 1:
        key = r.bytes();
        break;
      case 2:
        value = r.bytes();
        break;
      case 3:
        lease = r.int64String();
        break;
      case 4:
        prevKv = r.bool();
        break;
      case 5:
        ignoreValue = r.bool();
        break;
      default:
        ignoreLease = r.bool();
    }
  }
  return { key, value, lease, prev_kv: prevKv, ignore_value: ignoreValue, ignore_lease: ignoreLease };
}

/** cairnpb.RequestHeader: ID=1 uint64, username=2 string, auth_revision=3 uint64. */
function decodeHeader(r: WireReader): RequestHeader | null {
  let id = '0';
  let username = '';
  let authRevision = '0';
  let seen = 0;
  while (!r.done) {
    const t = r.uint32();
    const field = t >>> 3;
    const bit = 1 << field;
    if (field < 1 || field > 3 || seen & bit) return null;
    seen |= bit;
    if ((t & 7) !== (field === 2 ? WIRE_BYTES : WIRE_VARINT)) return null;
    if (field === 1) id = r.uint64String();
    else if (field === 2) username = r.string();
    else authRevision = r.uint64String();
  }
  return { ID: id, username, auth_revision: authRevision };
}
