import { describe, expect, it } from 'vitest';
import * as crypto from 'node:crypto';
import { serviceDefinition } from '../../proto';
import type { DeleteRangeResponse, KeyValueMsg, PutResponse, RangeResponse } from '../../proto/etcd-types';
import { encodeDeleteRangeResponse, encodePutResponse, encodeRangeResponse } from '../../server/v3rpc/kv-response-encoder';

/**
 * The hand encoder must produce bytes every client decodes exactly as it decodes protobufjs's:
 * decoded with the KV service's own deserializer (protobufjs, proto names, defaults filled in),
 * both encodings give the same message, over edge values (zero, 2^32, 2^53, int64 max, a negative
 * lease, empty key and value) and random ones.
 */
const def = serviceDefinition('etcdserverpb', 'KV').Range;
const viaProtobufjs = (r: RangeResponse): unknown => def.responseDeserialize(def.responseSerialize(r));
const viaHand = (r: RangeResponse): unknown => def.responseDeserialize(encodeRangeResponse(r));

function kv(over: Partial<KeyValueMsg> = {}): KeyValueMsg {
  return { key: Buffer.from('k'), create_revision: 2, mod_revision: 3, version: 1, value: Buffer.from('v'), lease: 0, ...over };
}

const header = { cluster_id: '14841639068965178418', member_id: '10276657743932975437', revision: 7, raft_term: 2 };

describe('RangeResponse encoder', () => {
  const cases: [string, RangeResponse][] = [
    ['no keys, zero count', { header: { cluster_id: 0, member_id: 0, revision: 0, raft_term: 0 }, kvs: [], more: false, count: 0 }],
    ['one key', { header, kvs: [kv()], more: false, count: 1 }],
    ['more and a count beyond the page', { header, kvs: [kv(), kv({ key: Buffer.from('l') })], more: true, count: '100000' }],
    ['keys only (empty values) and an empty key', { header, kvs: [kv({ value: Buffer.alloc(0) }), kv({ key: Buffer.alloc(0) })], more: false, count: 2 }],
    [
      'edge integers',
      {
        header: { cluster_id: '18446744073709551615', member_id: 1, revision: 2 ** 32, raft_term: 2 ** 53 - 1 },
        kvs: [
          kv({ create_revision: 2 ** 32, mod_revision: '9223372036854775807', version: 127, lease: '7587862079254431234' }),
          kv({ create_revision: 128, mod_revision: 2 ** 53 - 1, version: 16384, lease: -1 }),
        ],
        more: false,
        count: '9223372036854775807',
      },
    ],
    ['a large value', { header, kvs: [kv({ value: crypto.randomBytes(300_000) })], more: false, count: 1 }],
  ];
  for (const [name, r] of cases) {
    it(`decodes as protobufjs's encoding does: ${name}`, () => {
      expect(viaHand(r)).toEqual(viaProtobufjs(r));
    });
  }

  it('decodes as protobufjs does over 200 random responses', () => {
    const rand = (n: number): number => crypto.randomInt(n);
    const int = (): number | string => (rand(4) === 0 ? String(BigInt(rand(2 ** 31)) * BigInt(rand(2 ** 31)) + 1n) : rand(4) === 0 ? 0 : rand(2 ** 40));
    for (let i = 0; i < 200; i++) {
      const kvs = Array.from({ length: rand(20) }, () =>
        kv({ key: crypto.randomBytes(rand(40)), value: crypto.randomBytes(rand(2000)), create_revision: int(), mod_revision: int(), version: int(), lease: int() }),
      );
      const r: RangeResponse = { header: { cluster_id: int(), member_id: int(), revision: int(), raft_term: int() }, kvs, more: rand(2) === 0, count: int() };
      expect(viaHand(r)).toEqual(viaProtobufjs(r));
    }
  });
});

describe('PutResponse and DeleteRangeResponse encoders', () => {
  const putDef = serviceDefinition('etcdserverpb', 'KV').Put;
  const delDef = serviceDefinition('etcdserverpb', 'KV').DeleteRange;
  const put = (r: PutResponse): [unknown, unknown] => [putDef.responseDeserialize(encodePutResponse(r)), putDef.responseDeserialize(putDef.responseSerialize(r))];
  const del = (r: DeleteRangeResponse): [unknown, unknown] => [delDef.responseDeserialize(encodeDeleteRangeResponse(r)), delDef.responseDeserialize(delDef.responseSerialize(r))];
  const edgeHeader = { cluster_id: '18446744073709551615', member_id: 1, revision: '9223372036854775807', raft_term: 2 ** 53 - 1 };

  it('a Put without and with prev_kv, zero and edge headers', () => {
    for (const r of [
      { header },
      { header: { cluster_id: 0, member_id: 0, revision: 0, raft_term: 0 } },
      { header: edgeHeader, prev_kv: kv({ lease: -1, version: '9223372036854775807' }) },
      { header, prev_kv: kv({ key: Buffer.alloc(0), value: Buffer.alloc(0) }) },
    ] as PutResponse[]) {
      const [hand, pb] = put(r);
      expect(hand).toEqual(pb);
    }
  });

  it('a DeleteRange with nothing deleted, a count, and prev_kvs', () => {
    for (const r of [
      { header, deleted: 0, prev_kvs: [] },
      { header: edgeHeader, deleted: '9223372036854775807', prev_kvs: [] },
      { header, deleted: 3, prev_kvs: [kv(), kv({ key: Buffer.from('l'), value: crypto.randomBytes(5000) }), kv({ lease: 2 ** 40 })] },
    ] as DeleteRangeResponse[]) {
      const [hand, pb] = del(r);
      expect(hand).toEqual(pb);
    }
  });

  it('decodes as protobufjs does over 200 random Put and DeleteRange responses', () => {
    const rand = (n: number): number => crypto.randomInt(n);
    const int = (): number | string => (rand(4) === 0 ? String(BigInt(rand(2 ** 31)) * BigInt(rand(2 ** 31)) + 1n) : rand(4) === 0 ? 0 : rand(2 ** 40));
    const rkv = (): KeyValueMsg => kv({ key: crypto.randomBytes(rand(40)), value: crypto.randomBytes(rand(2000)), create_revision: int(), mod_revision: int(), version: int(), lease: int() });
    for (let i = 0; i < 200; i++) {
      const h = { cluster_id: int(), member_id: int(), revision: int(), raft_term: int() };
      const [hp, pp] = put({ header: h, ...(rand(2) === 0 ? { prev_kv: rkv() } : {}) });
      expect(hp).toEqual(pp);
      const [hd, pd] = del({ header: h, deleted: int(), prev_kvs: Array.from({ length: rand(5) }, rkv) });
      expect(hd).toEqual(pd);
    }
  });
});
