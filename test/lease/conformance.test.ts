import { describe } from 'vitest';
import { waitFor } from '../support/cluster';
import type { CallResult } from '../support/grpc-client';
import { conformanceSuite } from '../watch/support/harness';
import { openKeepAlive } from '../watch/support/watch-client';

/** Lease conformance against the real etcd (etcd-api-surface.md §2.6). */

const uniqueId = (): string => String(0x3c000000 + Math.floor(Math.random() * 0xfffffff));

function res(r: CallResult, pick: (ok: any) => unknown): unknown {
  return r.err ? { err: r.err } : pick(r.ok);
}

describe('lease conformance', () => {
  const scenario = conformanceSuite('lease');
  // Chosen IDs are fixed per scenario so both targets see the same ones.
  const ids = { a: uniqueId(), b: uniqueId(), c: uniqueId() };

  scenario('grant: chosen ID, TTL below the minimum raised to 2 s, too large a TTL, an existing ID', async (c) => {
    const out = [
      res(await c.client.leaseGrant({ ID: ids.a, TTL: '30' }), (ok) => ({ ID: ok.ID === ids.a, TTL: ok.TTL, error: ok.error })),
      res(await c.client.leaseGrant({ ID: ids.a, TTL: '30' }), (ok) => ok),
      res(await c.client.leaseGrant({ ID: ids.b, TTL: '1' }), (ok) => ({ TTL: ok.TTL })),
      res(await c.client.leaseGrant({ ID: ids.c, TTL: '0' }), (ok) => ({ TTL: ok.TTL })),
      res(await c.client.leaseGrant({ ID: '0', TTL: '9000000001' }), (ok) => ok),
    ];
    const auto = await c.client.leaseGrant({ ID: '0', TTL: '9000000000' });
    out.push(res(auto, (ok) => ({ positive: BigInt(ok.ID) > 0n, TTL: ok.TTL })));
    for (const id of [ids.a, ids.b, ids.c, auto.ok?.ID ?? '0']) await c.client.leaseRevoke({ ID: id });
    return out;
  });

  scenario('TimeToLive: granted TTL, remaining TTL, attached keys; an unknown lease answers TTL -1 without error', async (c) => {
    const id = uniqueId();
    await c.client.leaseGrant({ ID: id, TTL: '100' });
    await c.put('b', '1', id);
    await c.put('a', '2', id);
    const ttl = await c.client.leaseTimeToLive({ ID: id, keys: true });
    const noKeys = await c.client.leaseTimeToLive({ ID: id, keys: false });
    const unknown = await c.client.leaseTimeToLive({ ID: '12345', keys: true });
    const leases = await c.client.leaseLeases({});
    await c.client.leaseRevoke({ ID: id });
    return [
      res(ttl, (ok) => ({ ID: ok.ID === id, TTL: Number(ok.TTL) >= 98 && Number(ok.TTL) <= 100, grantedTTL: ok.grantedTTL, // etcd keeps a lease's keys in a Go map: their order is unspecified.
        keys: ok.keys.map((k: Buffer) => k.toString().slice(c.prefix.length)).sort() })),
      res(noKeys, (ok) => ({ keys: ok.keys })),
      res(unknown, (ok) => ({ ID: ok.ID, TTL: ok.TTL, grantedTTL: ok.grantedTTL, keys: ok.keys })),
      res(leases, (ok) => ok.leases.some((l: { ID: string }) => l.ID === id)),
    ];
  });

  scenario('KeepAlive answers the granted TTL; an unknown lease answers TTL 0 without error', async (c) => {
    const id = uniqueId();
    await c.client.leaseGrant({ ID: id, TTL: '7' });
    const s = openKeepAlive(c.endpoint);
    s.send({ ID: id });
    await s.count(1);
    s.send({ ID: '98765' });
    await s.count(2);
    s.send({ ID: id });
    await s.count(3);
    s.close();
    await c.client.leaseRevoke({ ID: id });
    return s.responses.map((r) => ({ ID: r.ID === id ? 'id' : r.ID, TTL: r.TTL, rev: r.header ? c.relRev(r.header.revision) : null }));
  });

  scenario('Revoke: unknown lease is "requested lease not found"; a put with an unknown lease fails the same way', async (c) => {
    return [
      res(await c.client.leaseRevoke({ ID: '424242' }), (ok) => ok),
      res(await c.client.put({ key: c.k('x'), value: Buffer.from('1'), lease: '424242' }), (ok) => ok),
    ];
  });

  scenario('a put re-attaches the key to the new lease; ignore_lease keeps it; a put without a lease detaches it', async (c) => {
    const a = uniqueId();
    const b = uniqueId();
    await c.client.leaseGrant({ ID: a, TTL: '100' });
    await c.client.leaseGrant({ ID: b, TTL: '100' });
    const keys = async (id: string): Promise<string[]> =>
      ((await c.client.leaseTimeToLive({ ID: id, keys: true })).ok!.keys as Buffer[]).map((k) => k.toString().slice(c.prefix.length)).sort();
    const out: unknown[] = [];
    await c.put('k', '1', a);
    out.push([await keys(a), await keys(b)]);
    await c.put('k', '2', b);
    out.push([await keys(a), await keys(b)]);
    await c.client.put({ key: c.k('k'), value: Buffer.from('3'), ignore_lease: true });
    out.push([await keys(a), await keys(b)]);
    await c.put('k', '4');
    out.push([await keys(a), await keys(b)]);
    await c.put('j', '1', a);
    await c.del('j');
    out.push([await keys(a), await keys(b)]);
    await c.client.leaseRevoke({ ID: a });
    await c.client.leaseRevoke({ ID: b });
    return out;
  });

  scenario('an expired lease is revoked by the leader through the log: its keys are deleted in one revision', async (c) => {
    const id = uniqueId();
    await c.client.leaseGrant({ ID: id, TTL: '2' });
    await c.put('e/1', '1', id);
    await c.put('e/2', '2', id);
    // The TTL must elapse (time-based); what is compared is its consequence, so wait for that.
    const range = await waitFor('the expired lease\'s keys to be deleted', 15_000, async () => {
      const r = (await c.client.range({ key: c.k('e/'), range_end: c.k('e0') })).ok!;
      return Number(r.count) === 0 && r;
    });
    const ttl = (await c.client.leaseTimeToLive({ ID: id })).ok!;
    // Both deletes happened at one revision: the next after the two puts.
    return { count: range.count, rev: c.relRev(range.header.revision), ttl: ttl.TTL };
  }, 30_000);
});
