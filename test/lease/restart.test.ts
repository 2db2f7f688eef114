import { Etcd3 } from 'etcd3';
import { afterAll, describe, expect, it } from 'vitest';
import { connect, must } from '../support/grpc-client';
import { startMember, type Member, type MemberKind } from '../support/member';
import { openKeepAlive, sleep } from '../watch/support/watch-client';

/**
 * Leases across a restart (etcd-api-surface.md §2.6 "Leader change"): a restart makes the member a
 * new leader, whose lessor Promotes every lease to now + remaining + election timeout, where
 * remaining is the full TTL without --experimental-enable-lease-checkpoint and the last
 * checkpointed remaining TTL with it. etcd 3.4 checkpoints every 5 minutes (not configurable), so
 * only the reset is compared with the real etcd; cairn's checkpoint interval is shortened for the
 * test with CAIRN_LEASE_CHECKPOINT_INTERVAL_MS.
 */

const members: Member[] = [];
afterAll(async () => {
  for (const m of members) await m.cleanup();
});

async function start(kind: MemberKind, extraArgs: string[] = [], env: Record<string, string> = {}): Promise<Member> {
  const m = await startMember({ kind, extraArgs, env });
  members.push(m);
  return m;
}

async function ttlAfterRestart(m: Member, waitMs: number): Promise<{ before: number; after: number; granted: number }> {
  const c = connect(m.endpoint);
  const id = must(await c.leaseGrant({ ID: '0', TTL: '30' }), 'grant').ID;
  must(await c.put({ key: Buffer.from('/lease/restart'), value: Buffer.from('v'), lease: id }), 'put');
  await sleep(waitMs);
  const before = Number(must(await c.leaseTimeToLive({ ID: id }), 'ttl').TTL);
  c.close();
  await m.restart();
  const c2 = connect(m.endpoint);
  const r = must(await c2.leaseTimeToLive({ ID: id, keys: true }), 'ttl after restart');
  expect(r.keys.map((k: Buffer) => k.toString())).toEqual(['/lease/restart']);
  c2.close();
  return { before, after: Number(r.TTL), granted: Number(r.grantedTTL) };
}

describe.concurrent('leases across a restart', () => {
  it.each(['etcd', 'cairn'] as const)('%s without checkpointing: a restart resets the lease to its full TTL (plus the election timeout)', async (kind) => {
    const m = await start(kind);
    const { before, after, granted } = await ttlAfterRestart(m, 5000);
    expect(granted).toBe(30);
    expect(before).toBeLessThanOrEqual(25);
    // Full TTL + 1 s election timeout, read within a second or so of the new term.
    expect(after).toBeGreaterThanOrEqual(29);
    expect(after).toBeLessThanOrEqual(31);
  }, 60_000);

  it('cairn with --experimental-enable-lease-checkpoint keeps the checkpointed remaining TTL across a restart', async () => {
    const m = await start('cairn', ['--experimental-enable-lease-checkpoint'], { CAIRN_LEASE_CHECKPOINT_INTERVAL_MS: '1000' });
    const { before, after, granted } = await ttlAfterRestart(m, 5000);
    expect(granted).toBe(30);
    expect(before).toBeLessThanOrEqual(25);
    // The last checkpoint (at most ~1 s old) + the 1 s election timeout, minus the restart time.
    expect(after).toBeLessThanOrEqual(before + 2);
    expect(after).toBeGreaterThanOrEqual(before - 6);
  }, 60_000);

  it('with checkpointing, a keepalive clears the checkpoint: a renewed lease restarts from its full TTL', async () => {
    const m = await start('cairn', ['--experimental-enable-lease-checkpoint'], { CAIRN_LEASE_CHECKPOINT_INTERVAL_MS: '1000' });
    const c = connect(m.endpoint);
    const id = must(await c.leaseGrant({ ID: '0', TTL: '30' }), 'grant').ID;
    await sleep(4500); // several checkpoints, the last with ~26 s left
    const ka = openKeepAlive(m.endpoint);
    ka.send({ ID: id });
    await ka.count(1);
    expect(ka.responses[0].TTL).toBe('30');
    ka.close();
    await sleep(300); // the clearing checkpoint is applied; the next periodic one would be ~29 s (ceil, < TTL)
    c.close();
    await m.restart();
    const c2 = connect(m.endpoint);
    const after = Number(must(await c2.leaseTimeToLive({ ID: id }), 'ttl').TTL);
    c2.close();
    expect(after).toBeGreaterThanOrEqual(27);
  }, 60_000);
});

describe.concurrent('LeaseKeepAlive and hasleader', () => {
  it('a keepalive stream with hasleader=true on a member with a leader works; the npm etcd3 lease() keeps a lease alive past its TTL and revoke() deletes its keys', async () => {
    const m = await start('cairn');
    const ka = openKeepAlive(m.endpoint, { hasleader: 'true' });
    const c = connect(m.endpoint);
    const id = must(await c.leaseGrant({ ID: '0', TTL: '5' }), 'grant').ID;
    ka.send({ ID: id });
    await ka.count(1);
    expect(ka.responses[0]).toMatchObject({ ID: id, TTL: '5' });
    ka.close();
    await c.leaseRevoke({ ID: id });

    // etcd3's lease(): grant, keepalive every TTL/3, keys attached to it.
    const client = new Etcd3({ hosts: m.endpoint });
    try {
      const lease = client.lease(2, { autoKeepAlive: true });
      lease.on('lost', () => undefined);
      await lease.put('/npm-lease/a').value('1').exec();
      await lease.put('/npm-lease/b').value('2').exec();
      await sleep(5000); // 2.5 TTLs: only the keepalives keep it
      expect(await client.getAll().prefix('/npm-lease/').keys()).toEqual(['/npm-lease/a', '/npm-lease/b']);
      expect(Number(must(await c.leaseTimeToLive({ ID: await lease.grant() }), 'ttl').TTL)).toBeGreaterThan(0);
      await lease.revoke();
      expect(await client.getAll().prefix('/npm-lease/').keys()).toEqual([]);

      // Without keepalives, the lease expires and its keys vanish.
      const short = client.lease(2, { autoKeepAlive: false });
      short.on('lost', () => undefined);
      await short.put('/npm-lease/c').value('3').exec();
      const deadline = Date.now() + 10_000;
      while ((await client.get('/npm-lease/c').string()) !== null && Date.now() < deadline) await sleep(200);
      expect(await client.get('/npm-lease/c').string()).toBeNull();
    } finally {
      client.close();
      c.close();
    }
  }, 60_000);
});
