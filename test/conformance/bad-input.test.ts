import type * as grpc from '@grpc/grpc-js';
import { describe } from 'vitest';
import { loadEtcdServices } from '../../proto';
import { b, defineScenarios, expectError, expectOk, op, put, rangePrefix, useTargets, type Ctx, type Scenario, type Step, type StepResult } from './runner';
import { expect } from 'vitest';

/**
 * Bad input: every rejection is compared as { gRPC code, exact message }, and after each group
 * the server must still be up with the earlier writes intact.
 *
 * Errors produced by the gRPC library itself rather than by etcd (message larger than the
 * receive limit, unparsable protobuf, unknown method) are compared on the gRPC code only,
 * because grpc-go and grpc-js word them differently; clients only act on the code for these.
 * Those steps say `compare: 'code'`. Observed (etcd 3.4.23 / grpc-go vs cairn / grpc-js 1.14):
 *  - too large (8 ResourceExhausted): "grpc: received message larger than max (2200008 vs. 2097152)"
 *    vs "Received message larger than max (2200008 vs 2097152)";
 *  - malformed protobuf (13 Internal): "grpc: error unmarshalling request: proto: integer overflow"
 *    (or "...: unexpected EOF") vs "Error deserializing request";
 *  - unknown method (12 Unimplemented): "unknown method RangeStream for service etcdserverpb.KV"
 *    vs "The server does not implement the method /etcdserverpb.KV/RangeStream".
 */

const K = (s: string) => (c: Ctx) => c.k(s);
const INVALID_ARGUMENT = 3;
const OUT_OF_RANGE = 11;
const RESOURCE_EXHAUSTED = 8;
const EMPTY_KEY = 'etcdserver: key is not provided';

const MAX_REQUEST_BYTES = 1572864; // etcd default --max-request-bytes
const GRPC_RECV_LIMIT = MAX_REQUEST_BYTES + 512 * 1024;

/** The "server still up, earlier writes intact" check, run after each group of bad requests. */
const intact = (label = 'still up, earlier writes intact'): Step => ({
  ...rangePrefix({}, label),
  expect: (r: StepResult, c: Ctx) => {
    expectOk(r);
    const keys = (r.ok.kvs as { key: string; value: string }[]).map((kv) => `${kv.key.slice(c.prefix.length)}=${kv.value}`);
    expect(keys).toContain('keep1=v1');
    expect(keys).toContain('keep2=v2');
  },
});

const setup: Step[] = [put(K('keep1'), 'v1'), put(K('keep2'), 'v2')];

function encode(method: 'Put' | 'Range' | 'Txn', msg: object): Buffer {
  const kv = (loadEtcdServices().etcdserverpb as grpc.GrpcObject).KV as grpc.ServiceClientConstructor;
  return kv.service[method].requestSerialize(msg);
}

const scenarios: Scenario[] = [
  {
    name: 'bad-empty-key',
    steps: [
      ...setup,
      { label: 'Range empty key', rpc: 'Range', req: { key: b('') }, expect: expectError(INVALID_ARGUMENT, EMPTY_KEY) },
      { label: 'Range empty key with range_end', rpc: 'Range', req: { key: b(''), range_end: b('\0') }, expect: expectError(INVALID_ARGUMENT, EMPTY_KEY) },
      { label: 'Put empty key', rpc: 'Put', req: { key: b(''), value: b('x') }, expect: expectError(INVALID_ARGUMENT, EMPTY_KEY) },
      { label: 'DeleteRange empty key', rpc: 'DeleteRange', req: { key: b('') }, expect: expectError(INVALID_ARGUMENT, EMPTY_KEY) },
      { label: 'DeleteRange empty key with range_end \\0', rpc: 'DeleteRange', req: { key: b(''), range_end: b('\0') }, expect: expectError(INVALID_ARGUMENT, EMPTY_KEY) },
      { label: 'Txn compare with empty key', rpc: 'Txn', req: { compare: [{ target: 0, result: 0, key: b(''), version: 0 }] }, expect: expectError(INVALID_ARGUMENT, EMPTY_KEY) },
      { label: 'Txn put with empty key', rpc: 'Txn', req: (c) => ({ success: [op.put({ key: c.k('ok'), value: b('1') }), op.put({ key: b(''), value: b('x') })] }) },
      { label: 'Txn range with empty key', rpc: 'Txn', req: { success: [op.range({ key: b('') })] } },
      { label: 'Txn delete with empty key', rpc: 'Txn', req: { failure: [op.del({ key: b('') })] } },
      { label: 'nested Txn with empty compare key', rpc: 'Txn', req: { success: [op.txn({ compare: [{ target: 0, result: 0, key: b('') }] })] } },
      { label: 'Put with empty request', rpc: 'Put', req: {} },
      intact(),
    ],
  },
  {
    name: 'bad-put-flags',
    steps: [
      ...setup,
      { label: 'ignore_value with a value', rpc: 'Put', req: (c) => ({ key: c.k('keep1'), value: b('x'), ignore_value: true }), expect: expectError(INVALID_ARGUMENT, 'etcdserver: value is provided') },
      { label: 'ignore_lease with a lease', rpc: 'Put', req: (c) => ({ key: c.k('keep1'), value: b('x'), lease: 1234, ignore_lease: true }), expect: expectError(INVALID_ARGUMENT, 'etcdserver: lease is provided') },
      { label: 'both errors at once', rpc: 'Put', req: (c) => ({ key: c.k('keep1'), value: b('x'), ignore_value: true, lease: 1234, ignore_lease: true }) },
      { label: 'empty key and ignore_value with value', rpc: 'Put', req: { key: b(''), value: b('x'), ignore_value: true } },
      { label: 'ignore_value with a value inside a txn', rpc: 'Txn', req: (c) => ({ success: [op.put({ key: c.k('keep1'), value: b('x'), ignore_value: true })] }) },
      { label: 'ignore_lease with a lease inside a txn', rpc: 'Txn', req: (c) => ({ success: [op.put({ key: c.k('keep1'), lease: 1234, ignore_lease: true })] }) },
      { label: 'ignore_lease with a value on a missing key', rpc: 'Put', req: (c) => ({ key: c.k('missing'), value: b('x'), ignore_lease: true }), expect: expectError(INVALID_ARGUMENT, 'etcdserver: key not found') },
      intact(),
    ],
  },
  {
    name: 'bad-txn',
    steps: [
      ...setup,
      { label: '200 ops', rpc: 'Txn', req: (c) => ({ success: Array.from({ length: 200 }, (_, i) => op.put({ key: c.k(`x${i}`), value: b('1') })) }), expect: expectError(INVALID_ARGUMENT, 'etcdserver: too many operations in txn request') },
      { label: 'duplicate key', rpc: 'Txn', req: (c) => ({ success: [op.put({ key: c.k('keep1'), value: b('1') }), op.put({ key: c.k('keep1'), value: b('2') })] }), expect: expectError(INVALID_ARGUMENT, 'etcdserver: duplicate key given in txn request') },
      { label: 'too many ops and a duplicate key', rpc: 'Txn', req: (c) => ({ success: Array.from({ length: 129 }, () => op.put({ key: c.k('keep1'), value: b('1') })) }) },
      { label: 'empty key and a duplicate key', rpc: 'Txn', req: (c) => ({ success: [op.put({ key: b(''), value: b('1') }), op.put({ key: c.k('d'), value: b('1') }), op.put({ key: c.k('d'), value: b('2') })] }) },
      { label: 'empty RequestOp and a duplicate key', rpc: 'Txn', req: (c) => ({ success: [op.put({ key: c.k('d'), value: b('1') }), op.put({ key: c.k('d'), value: b('2') }), {}] }) },
      intact(),
    ],
  },
  {
    name: 'bad-revisions',
    steps: [
      ...setup, // B+1, B+2
      put(K('keep1'), 'v1'), // B+3
      { label: 'Range future revision', rpc: 'Range', req: (c) => ({ key: c.k('keep1'), revision: c.rev(4) }), expect: expectError(OUT_OF_RANGE, 'etcdserver: mvcc: required revision is a future revision') },
      { label: 'Range far-future revision', rpc: 'Range', req: (c) => ({ key: c.k('keep1'), revision: '9223372036854775807' }) },
      { label: 'compact to B+2', rpc: 'Compact', req: (c) => ({ revision: c.rev(2) }), expect: expectOk },
      { label: 'Range compacted revision', rpc: 'Range', req: (c) => ({ key: c.k('keep1'), revision: c.rev(1) }), expect: expectError(OUT_OF_RANGE, 'etcdserver: mvcc: required revision has been compacted') },
      { label: 'Range revision 1 (compacted)', rpc: 'Range', req: (c) => ({ key: c.k('keep1'), revision: 1 }) },
      { label: 'Compact future revision', rpc: 'Compact', req: (c) => ({ revision: c.rev(10) }) },
      { label: 'Compact compacted revision', rpc: 'Compact', req: (c) => ({ revision: c.rev(1) }) },
      { label: 'Compact negative revision', rpc: 'Compact', req: { revision: -5 } },
      intact(),
    ],
  },
  {
    name: 'bad-request-size',
    steps: [
      ...setup,
      put(K('big-ok'), 'x'.repeat(1024 * 1024), {}, '1 MiB put is fine'),
      { label: '~1.6 MiB put: request is too large', rpc: 'Put', req: (c) => ({ key: c.k('big'), value: Buffer.alloc(Math.round(1.6 * 1024 * 1024), 'x') }), expect: expectError(INVALID_ARGUMENT, 'etcdserver: request is too large') },
      { label: '~1.6 MiB txn: request is too large', rpc: 'Txn', req: (c) => ({ success: [op.put({ key: c.k('big'), value: Buffer.alloc(Math.round(1.6 * 1024 * 1024), 'x') })] }), expect: expectError(INVALID_ARGUMENT, 'etcdserver: request is too large') },
      {
        label: 'put above the gRPC receive limit (max-request-bytes + 512 KiB): ResourceExhausted (code only)',
        rpc: 'Put',
        req: (c) => ({ key: c.k('huge'), value: Buffer.alloc(GRPC_RECV_LIMIT + 1024, 'x') }),
        compare: 'code',
        expect: expectError(RESOURCE_EXHAUSTED),
      },
      {
        label: 'range with a huge key above the gRPC limit (code only)',
        rpc: 'Range',
        req: { key: Buffer.alloc(GRPC_RECV_LIMIT + 1024, 'k') },
        compare: 'code',
        expect: expectError(RESOURCE_EXHAUSTED),
      },
      { label: 'the 1 MiB value reads back', custom: async (c) => {
        const r = await c.target.client.range({ key: c.k('big-ok') });
        return r.err ? { error: r.err } : { count: r.ok.count, size: r.ok.kvs[0]?.value.length };
      } },
      intact(),
    ],
  },
  {
    name: 'bad-malformed-protobuf',
    steps: [
      ...setup,
      { label: 'garbage bytes to KV/Put (code only)', raw: '/etcdserverpb.KV/Put', bytes: Buffer.from('ffffffffffffffffffff', 'hex'), compare: 'code', expect: (r) => expect(r.error).toBeDefined() },
      { label: 'truncated length-delimited field to KV/Put (code only)', raw: '/etcdserverpb.KV/Put', bytes: Buffer.from('0a1061', 'hex'), compare: 'code', expect: (r) => expect(r.error).toBeDefined() },
      { label: 'wire type 7 to KV/Put (code only)', raw: '/etcdserverpb.KV/Put', bytes: Buffer.from('0f01', 'hex'), compare: 'code', expect: (r) => expect(r.error).toBeDefined() },
      { label: 'garbage bytes to KV/Range (code only)', raw: '/etcdserverpb.KV/Range', bytes: Buffer.from('0a05ff', 'hex'), compare: 'code', expect: (r) => expect(r.error).toBeDefined() },
      { label: 'garbage bytes to KV/Txn (code only)', raw: '/etcdserverpb.KV/Txn', bytes: Buffer.from('12ffffffff0f', 'hex'), compare: 'code', expect: (r) => expect(r.error).toBeDefined() },
      intact('still up after garbage'),
      { label: 'empty bytes to KV/Put = empty PutRequest', raw: '/etcdserverpb.KV/Put', bytes: Buffer.alloc(0) },
      {
        label: 'valid PutRequest with an unknown field 99 is accepted (response bytes not compared)',
        custom: async (c) => {
          const req = Buffer.concat([encode('Put', { key: c.k('unknown-field'), value: b('u') }), Buffer.from([0x98, 0x06, 0x01])]);
          const r = await c.target.client.raw('/etcdserverpb.KV/Put', req);
          return r.err ? { error: { code: r.err.code, message: r.err.details } } : { ok: true };
        },
      },
      { label: 'the key written with an unknown field', rpc: 'Range', req: (c) => ({ key: c.k('unknown-field') }) },
      { label: 'unknown method /etcdserverpb.KV/RangeStream: Unimplemented (code only)', raw: '/etcdserverpb.KV/RangeStream', bytes: encode('Range', { key: b('x') }), compare: 'code', expect: expectError(12) },
      { label: 'unknown service (code only)', raw: '/nope.Nope/Nope', bytes: Buffer.alloc(0), compare: 'code', expect: expectError(12) },
      intact('still up at the end'),
      put(K('after'), 'ok', {}, 'writes still work'),
      { ...rangePrefix({ keys_only: true }, 'final keys'), expect: expectOk },
    ],
  },
];

describe('conformance: bad input', () => {
  const targets = useTargets();
  defineScenarios(targets, scenarios);
});
