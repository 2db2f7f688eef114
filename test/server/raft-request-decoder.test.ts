import { describe, expect, it } from 'vitest';
import * as crypto from 'node:crypto';
import { messageCodec } from '../../proto';
import type { InternalRaftRequest } from '../../proto/etcd-types';
import { putRequest, randomPutRaftRequest } from '../support/raft-requests';
import { WireFormatError } from '../../proto/wire-reader';
import { decodePutRaftRequest } from '../../server/etcdserver/raft-request-decoder';
import { encodePutRaftRequest } from '../../server/etcdserver/raft-request-encoder';

/**
 * A follower applies the Put entries other members proposed from their bytes alone: the hand
 * decoder must give what protobufjs's decoding gives (less the null fields of the other request
 * kinds, which the proposer's own objects do not have either), and leave anything else to it.
 */
const codec = messageCodec<InternalRaftRequest>('cairnpb.InternalRaftRequest');

function withoutNulls(o: InternalRaftRequest): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== null));
}

const put = putRequest;

/** Both encodings of `req` (protobufjs's and the hand encoder's) decode as protobufjs decodes them. */
function same(req: InternalRaftRequest): void {
  for (const bytes of [codec.encode(req), encodePutRaftRequest(req) as Buffer]) {
    const hand = decodePutRaftRequest(bytes);
    expect(hand).toBeDefined();
    expect(hand).toStrictEqual(withoutNulls(codec.decode(bytes)));
  }
}

describe('InternalRaftRequest Put decoder', () => {
  const cases: [string, InternalRaftRequest][] = [
    ['a plain put', { header: { ID: '12345678901234567890' }, put: put() }],
    ['every flag, a lease, a user and an auth revision', { header: { ID: '1', username: 'root', auth_revision: '42' }, put: put({ lease: '7587862079254431234', prev_kv: true, ignore_value: true, ignore_lease: true }) }],
    ['empty key and value, a non-ASCII user name', { header: { ID: '18446744073709551615', username: 'Zoë-用户', auth_revision: 2 ** 53 - 1 }, put: put({ key: Buffer.alloc(0), value: Buffer.alloc(0) }) }],
    ["a negative lease (int64 two's complement)", { header: { ID: '9' }, put: put({ lease: -1 }) }],
    ['the most negative lease', { header: { ID: '9' }, put: put({ lease: '-9223372036854775808' }) }],
    ['IDs at 2^53 and 2^63', { header: { ID: String(2 ** 53), auth_revision: '9223372036854775808' }, put: put({ lease: String(2 ** 53 + 2) }) }],
    ['a numeric lease and ID at 2^32', { header: { ID: 2 ** 32 }, put: put({ lease: 2 ** 32 }) }],
    ['no header', { put: put() }],
    ['a value needing a three-byte length', { header: { ID: '6' }, put: put({ value: crypto.randomBytes(1 << 16) }) }],
  ];
  for (const [name, req] of cases) it(name, () => same(req));

  it('random puts', () => {
    for (let i = 0; i < 300; i++) same(randomPutRaftRequest(i, 0));
  });

  it('gives the key and value as views into the entry, not copies', () => {
    const bytes = encodePutRaftRequest({ header: { ID: '1' }, put: put({ value: Buffer.from('value') }) }) as Buffer;
    const req = decodePutRaftRequest(bytes);
    expect(req?.put?.value.buffer).toBe(bytes.buffer);
  });

  it('leaves every other request to protobufjs', () => {
    const others: InternalRaftRequest[] = [
      {},
      { header: { ID: '1' } },
      { header: { ID: '1' }, delete_range: { key: Buffer.from('k'), range_end: Buffer.alloc(0), prev_kv: false } },
      { header: { ID: '1' }, put: put(), lease_revoke: { ID: '5' } },
      { header: { ID: '1' }, compaction: { revision: '3', physical: false } },
    ];
    for (const req of others) expect(decodePutRaftRequest(codec.encode(req))).toBeUndefined();
    const plain = codec.encode({ header: { ID: '1' }, put: put() });
    // The same field twice (protobuf merges them), and a field PutRequest does not have.
    expect(decodePutRaftRequest(Buffer.concat([plain, plain]))).toBeUndefined();
    const unknownPutField = Buffer.from([0x22, 0x02, 0x38, 0x01]); // put { 7: 1 }
    expect(decodePutRaftRequest(unknownPutField)).toBeUndefined();
    const wrongWire = Buffer.from([0x22, 0x02, 0x18, 0x01, 0x22]).subarray(0, 4); // put { lease: 1 }, fine
    expect(decodePutRaftRequest(wrongWire)?.put?.lease).toBe('1');
    expect(decodePutRaftRequest(Buffer.from([0x22, 0x02, 0x1a, 0x00]))).toBeUndefined(); // lease as bytes
  });

  it('throws on a truncated entry, as protobufjs does', () => {
    const bytes = encodePutRaftRequest({ header: { ID: '12345678901234567890' }, put: put() }) as Buffer;
    for (const cut of [1, 5, bytes.length - 1]) {
      expect(() => codec.decode(bytes.subarray(0, cut))).toThrow();
      expect(() => decodePutRaftRequest(bytes.subarray(0, cut))).toThrow(WireFormatError);
    }
  });
});
