import { describe } from 'vitest';
import { b, defineScenarios, expectOk, op, prefixEnd, put, rangePrefix, useTargets, type Ctx, type Scenario, type Step } from './runner';

/**
 * Durability of the KV state across restarts: keys, versions, tombstones, history, the compact
 * revision and leases survive a clean stop (SIGTERM) and a crash (SIGKILL), and the revision
 * counter continues where it left off. etcd fsyncs before acknowledging, so every acknowledged
 * write must survive SIGKILL.
 */

const K = (s: string) => (c: Ctx) => c.k(s);

const restart = (how: 'SIGTERM' | 'SIGKILL'): Step => ({
  label: `restart after ${how}`,
  custom: async (c) => {
    const m = c.target.member;
    if (how === 'SIGKILL') await m.kill('SIGKILL');
    await m.restart();
    return { running: m.running };
  },
});

const history: Step[] = [1, 2, 3, 4, 5].map((n) => ({ label: `prefix at B+${n}`, rpc: 'Range', req: (c: Ctx) => ({ key: c.k(), range_end: prefixEnd(c.k()), revision: c.rev(n) }) }));

/** LeaseTimeToLive compared on everything but the remaining TTL, which changes with time. */
const leaseTimeToLive = (label: string): Step => ({
  label,
  custom: async (c) => {
    const r = await c.target.client.leaseTimeToLive({ ID: c.lease('l'), keys: true });
    if (r.err) return { error: { code: r.err.code, message: r.err.details } };
    return { grantedTTL: r.ok.grantedTTL, ttlPositive: Number(r.ok.TTL) > 0, keys: (r.ok.keys as Buffer[]).map((k) => k.toString()) };
  },
});

const scenarios: Scenario[] = [
  {
    name: 'durability',
    steps: [
      { label: 'LeaseGrant', rpc: 'LeaseGrant', req: (c) => ({ ID: c.lease('l'), TTL: 3600 }), expect: expectOk },
      put(K('a'), 'a1'), // B+1
      put(K('a'), 'a2'), // B+2
      { label: 'put b with a lease', rpc: 'Put', req: (c) => ({ key: c.k('b'), value: b('b1'), lease: c.lease('l') }) }, // B+3
      put(K('c'), 'c1'), // B+4
      { label: 'txn: delete c, put d', rpc: 'Txn', req: (c) => ({ success: [op.del({ key: c.k('c') }), op.put({ key: c.k('d'), value: b('d1') })] }) }, // B+5
      { label: 'compact to B+2', rpc: 'Compact', req: (c) => ({ revision: c.rev(2) }) },
      restart('SIGTERM'),
      rangePrefix({}, 'state after a clean restart'),
      ...history,
      leaseTimeToLive('lease survives with its key'),
      put(K('e'), 'e1', {}, 'revision continues at B+6'),
      restart('SIGKILL'),
      rangePrefix({}, 'state after a crash'),
      ...history,
      { label: 'compact at the old compact revision still fails', rpc: 'Compact', req: (c) => ({ revision: c.rev(2) }) },
      leaseTimeToLive('lease survives a crash'),
      put(K('a'), 'a3', { prev_kv: true }, 'revision continues at B+7, version continues'),
      { label: 'LeaseRevoke after restart deletes b', rpc: 'LeaseRevoke', req: (c) => ({ ID: c.lease('l') }) },
      rangePrefix({}, 'final'),
    ],
  },
];

describe('conformance: durability across restarts', () => {
  const targets = useTargets();
  defineScenarios(targets, scenarios);
});
