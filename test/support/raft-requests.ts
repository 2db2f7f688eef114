import * as crypto from 'node:crypto';
import type { InternalRaftRequest, PutRequest } from '../../proto/etcd-types';

/** A Put as grpc-js decodes one, with `over` replacing fields. */
export function putRequest(over: Partial<PutRequest> = {}): PutRequest {
  return { key: Buffer.from('/registry/pods/default/p'), value: Buffer.from('v'), lease: '0', prev_kv: false, ignore_value: false, ignore_lease: false, ...over };
}

/** The i-th random Put log entry: random IDs, lease (negative ones too), flags, key and value sizes. */
export function randomPutRaftRequest(i: number, minKeyBytes = 0): InternalRaftRequest {
  const r = crypto.randomBytes(16);
  return {
    header: { ID: r.readBigUInt64BE(0).toString(), username: i % 3 === 0 ? `user${i}` : '', auth_revision: String(r.readUInt32BE(8) * (i % 2)) },
    put: putRequest({ key: crypto.randomBytes(minKeyBytes + (r[12] % 40)), value: crypto.randomBytes(r[13] * (i % 5)), lease: (r.readBigInt64BE(0) >> BigInt(r[14] % 64)).toString(), prev_kv: (r[15] & 1) === 1, ignore_value: (r[15] & 2) === 2, ignore_lease: (r[15] & 4) === 4 }),
  };
}
