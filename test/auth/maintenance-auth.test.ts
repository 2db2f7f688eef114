import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bboltDump, type DumpedBucket } from '../support/bboltcheck';
import { etcdctl } from '../support/etcdctl';
import { connect, type EtcdClient } from '../support/grpc-client';
import { startMember, type Member } from '../support/member';

/**
 * Maintenance calls under auth, and --bcrypt-cost, on etcd 3.4 and cairn side by side: Alarm is
 * open to any user but, going through Raft, refuses a token that does not resolve; Snapshot needs
 * the root role; the stored password hash has the configured bcrypt cost.
 */

const BCRYPT_COST = 5;
let etcd: Member;
let cairn: Member;

beforeAll(async () => {
  [etcd, cairn] = await Promise.all(
    (['etcd', 'cairn'] as const).map((kind) => startMember({ kind, extraArgs: ['--bcrypt-cost', String(BCRYPT_COST)] })),
  );
  for (const m of [etcd, cairn]) {
    for (const args of [['user', 'add', 'root:rootpw'], ['user', 'grant-role', 'root', 'root'], ['user', 'add', 'alice:alicepw'], ['auth', 'enable']]) {
      const r = await etcdctl(m.endpoint, args);
      if (r.code !== 0) throw new Error(`${m.kind} ${args.join(' ')}: ${r.stderr}`);
    }
  }
});

afterAll(async () => {
  await Promise.all([etcd?.cleanup(), cairn?.cleanup()]);
});

async function withClient<T>(m: Member, fn: (c: EtcdClient) => Promise<T>): Promise<T> {
  const c = connect(m.endpoint);
  try {
    return await fn(c);
  } finally {
    c.close();
  }
}

async function token(c: EtcdClient, name: string, password: string): Promise<string> {
  const r = await c.call<{ token: string }>('Auth', 'Authenticate', { name, password });
  if (r.err) throw new Error(`authenticate ${name}: ${r.err.details}`);
  return r.ok.token;
}

const answer = (r: { err?: { code: number; details: string } }): string => (r.err ? `${r.err.code}: ${r.err.details}` : 'OK');

describe('Maintenance under auth, as etcd 3.4', () => {
  it('Alarm: a forged token is refused with "invalid auth token"; any authenticated user may list alarms', async () => {
    const got = await Promise.all(
      [etcd, cairn].map((m) =>
        withClient(m, async (c) => {
          const alice = await token(c, 'alice', 'alicepw');
          return {
            forged: answer(await c.alarm({ action: 'GET' }, { metadata: { token: 'forged' } })),
            user: answer(await c.alarm({ action: 'GET' }, { metadata: { token: alice } })),
            raise: answer(await c.alarm({ action: 'ACTIVATE', memberID: '0', alarm: 'NOSPACE' }, { metadata: { token: 'forged' } })),
          };
        }),
      ),
    );
    // etcd 3.4's maintenanceServer.Alarm passes the auth store's error on unconverted: UNKNOWN.
    expect(got[0]).toEqual({ forged: '2: auth: invalid auth token', user: 'OK', raise: '2: auth: invalid auth token' });
    expect(got[1]).toEqual(got[0]);
  });

  it('Snapshot: refused for a user without the root role, with etcd\'s error; served to root', async () => {
    const got = await Promise.all(
      [etcd, cairn].map((m) =>
        withClient(m, async (c) => {
          const alice = await token(c, 'alice', 'alicepw');
          const root = await token(c, 'root', 'rootpw');
          const denied = await c.serverStream('Maintenance', 'Snapshot', {}, { metadata: { token: alice } });
          const noToken = await c.serverStream('Maintenance', 'Snapshot', {});
          const served = await c.serverStream<{ blob: Buffer }>('Maintenance', 'Snapshot', {}, { metadata: { token: root } });
          return {
            denied: `${answer(denied)} (${denied.messages.length} messages)`,
            noToken: `${answer(noToken)} (${noToken.messages.length} messages)`,
            served: answer(served) === 'OK' && served.messages.reduce((n, x) => n + x.blob.length, 0) > 0,
          };
        }),
      ),
    );
    // etcd 3.4's authMaintenanceServer.isAuthenticated returns the auth store's error unconverted: UNKNOWN.
    expect(got[0]).toEqual({ denied: '2: auth: permission denied (0 messages)', noToken: '2: auth: user name is empty (0 messages)', served: true });
    expect(got[1]).toEqual(got[0]);
  });
});

function findBucket(buckets: DumpedBucket[], name: string): DumpedBucket | undefined {
  return buckets.find((b) => Buffer.from(b.name, 'hex').toString() === name || b.name === name);
}

describe('--bcrypt-cost', () => {
  it('the stored password hash has the configured cost, as etcd 3.4 stores it (read from a snapshot)', async () => {
    const costs: Record<string, string[]> = {};
    for (const m of [etcd, cairn]) {
      const snap = await withClient(m, async (c) => {
        const root = await token(c, 'root', 'rootpw');
        return c.serverStream<{ blob: Buffer }>('Maintenance', 'Snapshot', {}, { metadata: { token: root } });
      });
      expect(snap.err, m.kind).toBeUndefined();
      // The stream is the backend's bbolt file followed by a 32-byte SHA-256.
      const blob = Buffer.concat(snap.messages.map((x) => x.blob));
      const file = path.join(m.tmpDir, 'snapshot.db');
      fs.writeFileSync(file, blob.subarray(0, blob.length - 32));
      const users = findBucket(bboltDump(file).buckets, 'authUsers');
      expect(users, `${m.kind}: authUsers bucket`).toBeDefined();
      costs[m.kind] = users!.keys
        .map(([k, v]) => `${Buffer.from(k, 'hex').toString()}=${/\$2[aby]\$(\d\d)\$/.exec(Buffer.from(v, 'hex').toString('latin1'))?.[1] ?? 'no hash'}`)
        .sort();
    }
    const want = [`alice=0${BCRYPT_COST}`, `root=0${BCRYPT_COST}`];
    expect(costs.etcd).toEqual(want);
    expect(costs.cairn).toEqual(want);
  });
});
