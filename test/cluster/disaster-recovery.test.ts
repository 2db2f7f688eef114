import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Cluster, FAST_ELECTION_MS, FAST_HEARTBEAT_MS, startCluster, waitFor, type ClusterMember } from '../support/cluster';
import { etcdctl, etcdctlReconfig } from '../support/etcdctl';
import { must } from '../support/grpc-client';
import { CAIRN_BIN, type MemberKind } from '../support/member';

/**
 * etcd's disaster-recovery guide, on real processes:
 *   - a 3-member cluster loses two members for good; the survivor restarts with
 *     --force-new-cluster, serves every acknowledged key at its revisions, lists one member, takes
 *     writes, and a new member added with `etcdctl member add` joins it and catches up. The same
 *     scenario runs against etcd 3.4 and the outcomes are compared;
 *   - a lost cluster is restored from `etcdctl snapshot save` into three new members
 *     (`bin/cairn snapshot restore` with etcd's --name/--initial-cluster flags), which form a
 *     cluster with the data. (test/clients/snapshot.test.ts covers the single-member restore:
 *     history, integrity check, the revision sequence continuing.)
 */

const clusters: Cluster[] = [];
afterAll(async () => {
  for (const c of clusters) await c.cleanup();
});

const KEYS = 20;
const LEASE_TTL_S = 600;

interface KeyState {
  key: string;
  value: string;
  createRevision: number;
  modRevision: number;
  version: number;
  lease: boolean;
}

interface Outcome {
  /** Every key, read from the survivor after the forced restart. */
  keys: KeyState[];
  membersAfterForce: number;
  membersAfterAdd: number;
  /** The revision of the first write after the forced restart, relative to the last one before. */
  firstWriteRevisionDelta: number;
}

async function keysOf(m: ClusterMember, serializable = false): Promise<KeyState[]> {
  const r = must(await m.grpc.range({ key: Buffer.from('dr/'), range_end: Buffer.from('dr0'), serializable }), 'range');
  return (r.kvs as { key: Buffer; value: Buffer; create_revision: string; mod_revision: string; version: string; lease: string }[]).map((kv) => ({
    key: kv.key.toString(),
    value: kv.value.toString(),
    createRevision: Number(kv.create_revision),
    modRevision: Number(kv.mod_revision),
    version: Number(kv.version),
    lease: kv.lease !== '0',
  }));
}

async function memberList(endpoint: string): Promise<{ ID: string; name: string }[]> {
  const r = await etcdctl(endpoint, ['member', 'list', '-w', 'json']);
  if (r.code !== 0) throw new Error(`member list: ${r.stderr}`);
  return (JSON.parse(r.stdout) as { members: { ID: string; name: string }[] }).members;
}

/** Writes with acknowledged revisions, then the disaster, the forced restart and a new member. */
async function forceNewClusterScenario(kind: MemberKind): Promise<Outcome> {
  const c = await startCluster({ kind, heartbeatIntervalMs: FAST_HEARTBEAT_MS, electionTimeoutMs: FAST_ELECTION_MS });
  clusters.push(c);
  const leader = await c.leader();
  const lease = must(await leader.grpc.leaseGrant({ TTL: LEASE_TTL_S }), 'lease grant');
  for (let i = 0; i < KEYS; i++) must(await leader.grpc.put({ key: Buffer.from(`dr/${i}`), value: Buffer.from(`v${i}`) }), 'put');
  for (let i = 0; i < KEYS; i += 4) must(await leader.grpc.put({ key: Buffer.from(`dr/${i}`), value: Buffer.from(`w${i}`) }), 'overwrite');
  must(await leader.grpc.deleteRange({ key: Buffer.from('dr/1') }), 'delete');
  must(await leader.grpc.put({ key: Buffer.from('dr/leased'), value: Buffer.from('l'), lease: lease.ID }), 'leased put');
  const acknowledged = await keysOf(leader);
  const before = (await leader.status())!;

  // The survivor is a follower that has applied everything acknowledged; the other two are lost
  // for good (killed, data dirs gone).
  const survivor = c.members.find((m) => m !== leader)!;
  await c.waitApplied(before.raftIndex, [survivor]);
  const identity = must(await survivor.grpc.memberList({}), 'member list').header;
  const lost = c.members.filter((m) => m !== survivor);
  for (const m of lost) {
    await m.kill();
    fs.rmSync(m.dataDir, { recursive: true, force: true });
  }
  // Without a quorum nothing is writable: the reason for the recovery.
  const stuck = await survivor.grpc.put({ key: Buffer.from('dr/stuck'), value: Buffer.from('x') }, { deadlineMs: 2_000 });
  expect(stuck.err).toBeDefined();
  await survivor.stop();

  const st = await survivor.start('new', c.initialCluster(), ['--force-new-cluster']);
  // The same member ID and cluster ID, now the leader of its own one-member cluster.
  expect(st.leader).toBe(st.id);
  const after = must(await survivor.grpc.memberList({}), 'member list').header;
  expect([after.member_id, after.cluster_id]).toEqual([identity.member_id, identity.cluster_id]);
  const keys = await keysOf(survivor);
  expect(keys).toEqual(acknowledged);
  const list = await memberList(survivor.endpoint);
  expect(list.map((m) => m.name)).toEqual([survivor.name]);
  // The lease survived with its key.
  const ttl = must(await survivor.grpc.leaseTimeToLive({ ID: lease.ID, keys: true }), 'lease ttl');
  expect(Number(ttl.TTL)).toBeGreaterThan(0);
  expect(Number(ttl.grantedTTL)).toBe(LEASE_TTL_S);
  expect((ttl.keys as Buffer[]).map((k) => k.toString())).toEqual(['dr/leased']);
  const put = must(await survivor.grpc.put({ key: Buffer.from('dr/after-force'), value: Buffer.from('ok') }), 'put after force');
  const firstWriteRevisionDelta = Number(put.header.revision) - before.revision;

  // A new member joins the one-member cluster the way etcd's guide says.
  const d = await c.newMember('d');
  const add = await etcdctlReconfig(survivor.endpoint, ['member', 'add', 'd', `--peer-urls=${d.peerUrl}`]);
  expect(add.code, add.stderr).toBe(0);
  await c.join(d, [survivor, d]);
  await c.waitConverged([survivor, d]);
  expect(await keysOf(d, true)).toEqual(await keysOf(survivor));
  const membersAfterAdd = (await memberList(survivor.endpoint)).length;
  const write = await etcdctl(d.endpoint, ['put', 'dr/through-new-member', 'x']);
  expect(write.stdout.trim(), write.stderr).toBe('OK');
  return { keys, membersAfterForce: list.length, membersAfterAdd, firstWriteRevisionDelta };
}

describe('disaster recovery: --force-new-cluster', () => {
  const outcomes = new Map<MemberKind, Outcome>();

  it('etcd 3.4: the survivor of a lost quorum restarts alone with its data, and a new member joins', async () => {
    outcomes.set('etcd', await forceNewClusterScenario('etcd'));
  });

  it('cairn: the same recovery, with the same keys, revisions, lease and member counts as etcd', async () => {
    const cairn = await forceNewClusterScenario('cairn');
    expect(cairn.membersAfterForce).toBe(1);
    expect(cairn.membersAfterAdd).toBe(2);
    expect(cairn.firstWriteRevisionDelta).toBe(1);
    const etcd = outcomes.get('etcd');
    expect(etcd, 'the etcd run must pass first').toBeDefined();
    expect(cairn).toEqual(etcd);
  });
});

describe('disaster recovery: restoring a lost cluster from a snapshot', () => {
  it('three members restored from one `etcdctl snapshot save` form a cluster that serves the data', async () => {
    const src = await startCluster({ kind: 'cairn', size: 1, names: ['old'], heartbeatIntervalMs: FAST_HEARTBEAT_MS, electionTimeoutMs: FAST_ELECTION_MS });
    clusters.push(src);
    const old = src.members[0];
    const lease = must(await old.grpc.leaseGrant({ TTL: LEASE_TTL_S }), 'lease grant');
    for (let i = 0; i < KEYS; i++) must(await old.grpc.put({ key: Buffer.from(`dr/${i}`), value: Buffer.from(`v${i}`) }), 'put');
    must(await old.grpc.put({ key: Buffer.from('dr/leased'), value: Buffer.from('l'), lease: lease.ID }), 'leased put');
    const saved = await keysOf(old);
    const file = path.join(src.baseDir, 'backup.db');
    const snap = await etcdctl(old.endpoint, ['snapshot', 'save', file]);
    expect(snap.code, snap.stderr).toBe(0);
    await src.stopAll();

    // New machines: ports and data dirs for three members; each restores the same file with its
    // own --name and --initial-advertise-peer-urls and the shared --initial-cluster, as etcd's guide.
    const token = 'restored-cluster';
    const c = new Cluster({ kind: 'cairn', token, heartbeatIntervalMs: FAST_HEARTBEAT_MS, electionTimeoutMs: FAST_ELECTION_MS }, fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-restore-')));
    clusters.push(c);
    const members = [await c.newMember('m1'), await c.newMember('m2'), await c.newMember('m3')];
    for (const m of members) {
      execFileSync(process.execPath, [
        CAIRN_BIN, 'snapshot', 'restore', file, '--name', m.name, '--data-dir', m.dataDir,
        '--initial-cluster', c.initialCluster(members), '--initial-cluster-token', token,
        '--initial-advertise-peer-urls', m.peerUrl,
      ], { encoding: 'utf8' });
    }
    for (const m of members) m.spawn('new', c.initialCluster(members));
    await Promise.all(members.map((m) => m.waitReady()));
    await c.leader();
    const list = await memberList(members[0].endpoint);
    expect(list.map((m) => m.name).sort()).toEqual(['m1', 'm2', 'm3']);
    for (const m of members) expect(await waitFor(`${m.name} to serve the restored keys`, 10_000, async () => {
      const k = await keysOf(m, true);
      return k.length === saved.length ? k : undefined;
    })).toEqual(saved);
    // The restored lease still holds its key, and the cluster takes writes.
    const ttl = must(await members[1].grpc.leaseTimeToLive({ ID: lease.ID, keys: true }), 'lease ttl');
    expect((ttl.keys as Buffer[]).map((k) => k.toString())).toEqual(['dr/leased']);
    const put = await etcdctl(c.endpoints(members), ['put', 'dr/after-restore', 'x']);
    expect(put.stdout.trim(), put.stderr).toBe('OK');
  });
});
