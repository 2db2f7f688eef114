import { describe, expect, it } from 'vitest';
import * as crypto from 'node:crypto';
import { messageCodec } from '../../proto';
import type { InternalRaftRequest } from '../../proto/etcd-types';
import { putRequest, randomPutRaftRequest } from '../support/raft-requests';
import { encodePutRaftRequest } from '../../server/etcdserver/raft-request-encoder';

/**
 * A Put's log entry encoded by hand must decode, on any member, to exactly what protobufjs's
 * encoding of the same request decodes to (the apply chain of a follower sees only the bytes), over
 * edge values and random ones; any other request is left to protobufjs.
 */
const codec = messageCodec<InternalRaftRequest>('cairnpb.InternalRaftRequest');

const put = putRequest;

function same(req: InternalRaftRequest): void {
  const hand = encodePutRaftRequest(req);
  expect(hand).toBeInstanceOf(Buffer);
  expect(codec.decode(hand as Buffer)).toEqual(codec.decode(codec.encode(req)));
}

describe('InternalRaftRequest Put encoder', () => {
  const cases: [string, InternalRaftRequest][] = [
    ['a plain put', { header: { ID: '12345678901234567890' }, put: put() }],
    ['every flag, a lease, a user and an auth revision', { header: { ID: '1', username: 'root', auth_revision: '42' }, put: put({ lease: '7587862079254431234', prev_kv: true, ignore_value: true, ignore_lease: true }) }],
    ['empty value, a non-ASCII user name', { header: { ID: '18446744073709551615', username: 'Zoë-用户', auth_revision: 2 ** 53 - 1 }, put: put({ value: Buffer.alloc(0) }) }],
    ['a negative lease (int64 two\'s complement)', { header: { ID: '9' }, put: put({ lease: -1 }) }],
    ['a numeric lease and ID at 2^32', { header: { ID: 2 ** 32 }, put: put({ lease: 2 ** 32 }) }],
    ['no header', { put: put() }],
    ['a value needing a two-byte length', { header: { ID: '5' }, put: put({ value: Buffer.alloc(200, 7) }) }],
    ['a value needing a three-byte length', { header: { ID: '6' }, put: put({ value: crypto.randomBytes(1 << 16) }) }],
  ];
  for (const [name, req] of cases) it(name, () => same(req));

  it('random puts', () => {
    for (let i = 0; i < 300; i++) same(randomPutRaftRequest(i, 1));
  });

  it('leaves every other request to protobufjs', () => {
    expect(encodePutRaftRequest({ header: { ID: '1' }, delete_range: { key: Buffer.from('k'), range_end: Buffer.alloc(0), prev_kv: false } })).toBeUndefined();
    expect(encodePutRaftRequest({ header: { ID: '1' }, put: put(), lease_revoke: { ID: '5' } })).toBeUndefined();
    // What grpc-js's decoding leaves: every other field present as null.
    const decoded = codec.decode(codec.encode({ header: { ID: '3' }, put: put() }));
    expect(encodePutRaftRequest(decoded)).toBeInstanceOf(Buffer);
  });
});
