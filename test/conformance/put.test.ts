import { describe } from 'vitest';
import { b, defineScenarios, prefixEnd, expectError, expectOk, put, rangePrefix, useTargets, type Ctx, type Scenario, type Step } from './runner';

/** Put and DeleteRange: prev_kv, leases (incl. lease-not-found), ignore_value / ignore_lease. */

const K = (s: string) => (c: Ctx) => c.k(s);
const NOT_FOUND = 5;
const INVALID_ARGUMENT = 3;

const grant = (name: string, TTL = 600): Step => ({ label: `LeaseGrant ${name}`, rpc: 'LeaseGrant', req: (c) => ({ ID: c.lease(name), TTL }), expect: expectOk });

/** LeaseTimeToLive with keys, minus the remaining TTL (wall-clock dependent; granted TTL is kept). */
const timeToLive = (name: string): Step => ({
  label: `LeaseTimeToLive ${name} keys`,
  custom: async (c) => {
    const r = await c.target.client.leaseTimeToLive({ ID: c.lease(name), keys: true });
    if (r.err) return { error: { code: r.err.code, message: r.err.details } };
    const remainingOk = Number(r.ok.TTL) > 0 && Number(r.ok.TTL) <= Number(r.ok.grantedTTL);
    return {
      ID: r.ok.ID === c.lease(name) ? 'lease:' + name : r.ok.ID,
      grantedTTL: Number(r.ok.grantedTTL),
      remainingTTLInRange: remainingOk,
      keys: (r.ok.keys as Buffer[]).map((k) => k.toString('latin1')).sort(),
    };
  },
});

const scenarios: Scenario[] = [
  {
    name: 'put-basics-prev-kv',
    steps: [
      put(K('a'), 'v1', { prev_kv: true }, 'create with prev_kv: no prev_kv'),
      put(K('a'), 'v2', { prev_kv: true }, 'update with prev_kv'),
      put(K('a'), 'v2', {}, 'identical value still bumps revision and version'),
      put(K('a'), 'v3', { prev_kv: false }, 'prev_kv false'),
      rangePrefix(),
      { label: 'delete with prev_kv', rpc: 'DeleteRange', req: (c) => ({ key: c.k('a'), prev_kv: true }) },
      put(K('a'), 'v4', { prev_kv: true }, 'recreate after delete: new generation, no prev_kv'),
      rangePrefix(),
      put(K('empty'), '', { prev_kv: true }, 'empty value'),
      put(K('empty'), 'x', { prev_kv: true }, 'prev_kv with empty value'),
      { label: 'binary key and value', rpc: 'Put', req: (c) => ({ key: c.k(b('\x00\x01\xfe\xff')), value: b('\x00\xff\x80') }) },
      { label: 'binary key read back', rpc: 'Range', req: (c) => ({ key: c.k(b('\x00\x01\xfe\xff')) }) },
      rangePrefix(),
    ],
  },
  {
    name: 'delete-range',
    steps: [
      ...['a', 'b', 'c', 'd'].map((k) => put(K(k), `v-${k}`)),
      { label: 'delete missing key: no revision bump', rpc: 'DeleteRange', req: (c) => ({ key: c.k('zz'), prev_kv: true }) },
      { label: 'delete [b, d) without prev_kv', rpc: 'DeleteRange', req: (c) => ({ key: c.k('b'), range_end: c.k('d') }) },
      { label: 'delete [c, prefix end) with prev_kv', rpc: 'DeleteRange', req: (c) => ({ key: c.k('c'), range_end: prefixEnd(c.k()), prev_kv: true }) },
      rangePrefix(),
      { label: 'delete already-deleted key', rpc: 'DeleteRange', req: (c) => ({ key: c.k('b') }) },
      rangePrefix({ revision: 0 }, 'state'),
    ],
  },
  {
    name: 'put-lease',
    steps: [
      grant('l1'),
      grant('l2'),
      put(K('a'), 'v1', { lease: '@l1' }, 'put with lease l1'),
      put(K('b'), 'v1', { lease: '@l1' }, 'put b with lease l1'),
      rangePrefix(),
      timeToLive('l1'),
      put(K('a'), 'v2', { lease: '@l2', prev_kv: true }, 'move a to lease l2'),
      timeToLive('l1'),
      timeToLive('l2'),
      put(K('a'), 'v3', { prev_kv: true }, 'put without lease detaches'),
      timeToLive('l2'),
      rangePrefix(),
      { label: 'put with a lease that does not exist', rpc: 'Put', req: (c) => ({ key: c.k('c'), value: b('x'), lease: c.lease('nope') }), expect: expectError(NOT_FOUND, 'etcdserver: requested lease not found') },
      { label: 'failed put did not bump the revision', ...rangePrefix() },
      { label: 'LeaseGrant with an existing ID', rpc: 'LeaseGrant', req: (c) => ({ ID: c.lease('l1'), TTL: 600 }) },
      { label: 'LeaseRevoke l1 deletes its keys', rpc: 'LeaseRevoke', req: (c) => ({ ID: c.lease('l1') }), expect: expectOk },
      rangePrefix({}, 'b is gone'),
      { label: 'LeaseRevoke unknown lease', rpc: 'LeaseRevoke', req: (c) => ({ ID: c.lease('l1') }), expect: expectError(NOT_FOUND) },
      { label: 'put with the revoked lease', rpc: 'Put', req: (c) => ({ key: c.k('d'), value: b('x'), lease: c.lease('l1') }), expect: expectError(NOT_FOUND) },
      { label: 'LeaseTimeToLive of a revoked lease: TTL -1', rpc: 'LeaseTimeToLive', req: (c) => ({ ID: c.lease('l1') }) },
      { label: 'LeaseRevoke l2 (no keys attached): no revision bump', rpc: 'LeaseRevoke', req: (c) => ({ ID: c.lease('l2') }) },
      rangePrefix({}, 'final'),
    ],
  },
  {
    name: 'put-ignore-value-lease',
    steps: [
      grant('l1'),
      grant('l2'),
      put(K('a'), 'orig', { lease: '@l1' }),
      put(K('a'), '', { ignore_value: true, prev_kv: true }, 'ignore_value keeps the value, lease 0 detaches'),
      rangePrefix(),
      put(K('a'), '', { ignore_value: true, lease: '@l2' }, 'ignore_value with a new lease'),
      rangePrefix(),
      put(K('a'), 'new', { ignore_lease: true, prev_kv: true }, 'ignore_lease keeps lease l2'),
      rangePrefix(),
      put(K('a'), '', { ignore_value: true, ignore_lease: true }, 'both: only version/mod_revision change'),
      rangePrefix(),
      timeToLive('l2'),
      { ...put(K('missing'), '', { ignore_value: true }, 'ignore_value on a missing key'), expect: expectError(INVALID_ARGUMENT, 'etcdserver: key not found') },
      { ...put(K('missing'), 'x', { ignore_lease: true }, 'ignore_lease on a missing key'), expect: expectError(INVALID_ARGUMENT, 'etcdserver: key not found') },
      { ...put(K('missing'), '', { ignore_value: true, ignore_lease: true }, 'both on a missing key'), expect: expectError(INVALID_ARGUMENT, 'etcdserver: key not found') },
      { rpc: 'DeleteRange', req: (c) => ({ key: c.k('a') }) },
      { ...put(K('a'), '', { ignore_value: true }, 'ignore_value on a deleted key'), expect: expectError(INVALID_ARGUMENT, 'etcdserver: key not found') },
      rangePrefix({}, 'nothing changed by the failures'),
    ],
  },
];

/** '@name' lease placeholders in put() extras become the scenario's lease IDs. */
for (const sc of scenarios) {
  for (const s of sc.steps) {
    if ('rpc' in s && typeof s.req === 'function') {
      const f = s.req;
      s.req = (c: Ctx) => {
        const r = f(c) as Record<string, unknown>;
        if (typeof r.lease === 'string' && r.lease.startsWith('@')) r.lease = c.lease(r.lease.slice(1));
        return r;
      };
    }
  }
}

describe('conformance: Put / DeleteRange', () => {
  const targets = useTargets();
  defineScenarios(targets, scenarios);
});
