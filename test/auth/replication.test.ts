import * as grpc from '@grpc/grpc-js';
import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadEtcdServices } from '../../proto';
import { FAST_ELECTION_MS, FAST_HEARTBEAT_MS, startCluster, waitFor, type Cluster, type ClusterMember } from '../support/cluster';
import { etcdctl } from '../support/etcdctl';

/**
 * Auth state is replicated through Raft and kept in the backend: a user added at one member
 * authenticates at another, a simple token assigned through the log works at every member, and
 * the state survives a restart and a catch-up by snapshot (the backend of the leader).
 */

const SNAPSHOT_COUNT = 100;
const SNAPSHOT_CATCHUP_ENTRIES = 10;
const ROOT = ['--user', 'root:rootpw'];

/** A Range with a token in the metadata, straight over gRPC: the answer or the error text. */
function rangeWithToken(endpoint: string, token: string, key: string): Promise<string> {
  const Ctor = (loadEtcdServices().etcdserverpb as grpc.GrpcObject).KV as grpc.ServiceClientConstructor;
  const client = new Ctor(endpoint, grpc.credentials.createInsecure());
  const md = new grpc.Metadata();
  md.set('token', token);
  return new Promise((resolve) => {
    (client as unknown as Record<string, (r: object, md: grpc.Metadata, cb: (e: grpc.ServiceError | null, r?: { kvs: { value: Buffer }[] }) => void) => void>).Range(
      { key: Buffer.from(key) },
      md,
      (e, r) => {
        client.close();
        resolve(e ? `error: ${e.details}` : (r?.kvs[0]?.value.toString() ?? 'none'));
      },
    );
  });
}

async function token(m: ClusterMember, name: string, password: string): Promise<string> {
  const c = new Etcd3({ hosts: `http://${m.endpoint}` });
  try {
    return (await c.auth.authenticate({ name, password })).token;
  } finally {
    c.close();
  }
}

async function ok(endpoint: string, args: string[], stdin?: string): Promise<string> {
  const r = await etcdctl(endpoint, args, stdin === undefined ? {} : { stdin });
  if (r.code !== 0) throw new Error(`etcdctl ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

describe('auth across a 3-member cairn cluster', () => {
  let c: Cluster;
  let a: ClusterMember;
  let b: ClusterMember;
  let third: ClusterMember;

  beforeAll(async () => {
    c = await startCluster({
      kind: 'cairn',
      heartbeatIntervalMs: FAST_HEARTBEAT_MS,
      electionTimeoutMs: FAST_ELECTION_MS,
      snapshotCount: SNAPSHOT_COUNT,
      snapshotCatchupEntries: SNAPSHOT_CATCHUP_ENTRIES,
    });
    [a, b, third] = c.members;
  });
  afterAll(async () => {
    await c?.cleanup();
  });

  it('a user added through one member authenticates at another; a token from one member works at the others', async () => {
    await ok(a.endpoint, ['user', 'add', 'root:rootpw']);
    await ok(a.endpoint, ['role', 'add', 'app']);
    await ok(a.endpoint, ['role', 'grant-permission', 'app', 'readwrite', 'app/', '--prefix']);
    await ok(a.endpoint, ['user', 'add', 'alice:alicepw']);
    await ok(a.endpoint, ['user', 'grant-role', 'alice', 'app']);
    expect(await ok(a.endpoint, ['auth', 'enable'])).toContain('Authentication Enabled');

    expect(await ok(b.endpoint, ['--user', 'alice:alicepw', 'put', 'app/x', 'from-b'])).toContain('OK');
    const denied = await etcdctl(third.endpoint, ['--user', 'alice:alicepw', 'put', 'other', 'x']);
    expect(denied.stderr).toContain('etcdserver: permission denied');

    const t = await token(b, 'alice', 'alicepw');
    expect(t).toMatch(/^[a-zA-Z]{16}\.\d+$/);
    for (const m of c.members) expect(await rangeWithToken(m.endpoint, t, 'app/x')).toBe('from-b');
    expect(await rangeWithToken(third.endpoint, `${t.split('.')[0]}x.${t.split('.')[1]}`, 'app/x')).toBe('error: etcdserver: invalid auth token');
  }, 60_000);

  it('auth state survives a restart and a catch-up by snapshot', async () => {
    await third.restart();
    expect(await ok(third.endpoint, ['--user', 'alice:alicepw', 'get', 'app/x', '--print-value-only'])).toBe('from-b\n');
    expect((await etcdctl(third.endpoint, ['get', 'app/x'])).stderr).toContain('etcdserver: user name is empty');

    // While `third` is down: an auth change, then enough entries that the others compact their logs past it.
    await third.stop();
    const others = c.endpoints([a, b]);
    await ok(others, [...ROOT, 'user', 'add', 'bob:bobpw']);
    await ok(others, [...ROOT, 'user', 'grant-role', 'bob', 'app']);
    await ok(others, [...ROOT, 'role', 'revoke-permission', 'app', 'app/', '--prefix']);
    await ok(others, [...ROOT, 'role', 'grant-permission', 'app', 'read', 'app/', '--prefix']);
    const root = new Etcd3({ hosts: [a, b].map((m) => `http://${m.endpoint}`), auth: { username: 'root', password: 'rootpw' } });
    try {
      for (let i = 0; i < 3 * (SNAPSHOT_COUNT + SNAPSHOT_CATCHUP_ENTRIES); i++) await root.put(`fill/${i}`).value('v');
    } finally {
      root.close();
    }
    await third.start('new', c.initialCluster());
    await waitFor('snapshot installed on the restarted member', 30_000, () => third.log().includes('installing snapshot from leader'));
    const leaderIndex = (await a.status())!.raftIndex;
    await c.waitApplied(leaderIndex, [third]);
    expect(await ok(third.endpoint, ['--user', 'bob:bobpw', 'get', 'app/x', '--print-value-only'])).toBe('from-b\n');
    // The permission changed while it was down: read-only now, at that member too.
    expect((await etcdctl(third.endpoint, ['--user', 'bob:bobpw', 'put', 'app/y', 'y'])).stderr).toContain('etcdserver: permission denied');
    expect(await ok(third.endpoint, [...ROOT, 'user', 'list'])).toBe('alice\nbob\nroot\n');
  }, 120_000);
});
