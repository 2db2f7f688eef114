import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { etcdctl, ETCDCTL_BIN } from '../support/etcdctl';
import { connect, must, type EtcdClient } from '../support/grpc-client';
import { CAIRN_BIN, startMember, type Member, type MemberKind } from '../support/member';
import { bboltDump, pageKinds, type DumpedBucket } from '../support/bboltcheck';
import { BboltReader, readTree, type Tree } from '../../server/storage/bbolt';
import { etcdMemberJson } from '../../server/storage/schema/etcd-buckets';

function toDump(t: Tree): DumpedBucket {
  return { name: t.name.toString('hex'), keys: t.keys.map(([k, v]) => [k.toString('hex'), v.toString('hex')]), buckets: t.buckets.map(toDump) };
}

/**
 * Snapshots in etcd's format both ways, against Debian's etcd 3.4 and etcdctl:
 * cairn -> `etcdctl snapshot save` -> `etcdctl snapshot restore` -> etcd serves what cairn served,
 * and etcd -> `etcdctl snapshot save` -> `bin/cairn snapshot restore` -> cairn serves what etcd
 * served: keys, values, create/mod revisions, versions, history since the compaction, leases, and
 * auth (users, roles, permissions, auth enabled: the restored side authenticates and enforces them).
 */
const members: Member[] = [];
afterAll(async () => {
  for (const m of members) await m.cleanup();
});

async function start(kind: MemberKind, opts: { name?: string; dataDir?: string } = {}): Promise<Member> {
  const m = await startMember({ kind, ...opts });
  members.push(m);
  return m;
}

const LEASE_A = '7587869839049441281';
const LEASE_B = '42';
const LEASE_TTL = 600;
const BIG = Buffer.alloc(20_000, 'z');

/** The same writes on either server: overwrites, deletes, a compaction, leases, a big value, many keys. */
async function workload(c: EtcdClient): Promise<{ compactRev: number }> {
  must(await c.leaseGrant({ ID: LEASE_A, TTL: String(LEASE_TTL) }));
  must(await c.leaseGrant({ ID: LEASE_B, TTL: String(LEASE_TTL) }));
  for (let i = 0; i < 300; i++) must(await c.put({ key: Buffer.from(`many/${String(i).padStart(4, '0')}`), value: Buffer.from(`v${i}`) }));
  must(await c.put({ key: Buffer.from('a'), value: Buffer.from('1') }));
  must(await c.put({ key: Buffer.from('a'), value: Buffer.from('2') }));
  must(await c.put({ key: Buffer.from('gone'), value: Buffer.from('x') }));
  must(await c.deleteRange({ key: Buffer.from('gone') }));
  must(await c.deleteRange({ key: Buffer.from('many/0010'), range_end: Buffer.from('many/0020') }));
  const compactAt = must(await c.put({ key: Buffer.from('a'), value: Buffer.from('3') }));
  const compactRev = Number(compactAt.header.revision);
  must(await c.compact({ revision: String(compactRev), physical: true }));
  must(await c.put({ key: Buffer.from('a'), value: Buffer.from('4') }));
  // A tombstone newer than the compaction stays in the key bucket.
  must(await c.deleteRange({ key: Buffer.from('many/0030') }));
  must(await c.put({ key: Buffer.from('big'), value: BIG }));
  must(await c.put({ key: Buffer.from('leased/1'), value: Buffer.from('l1'), lease: LEASE_A }));
  must(await c.put({ key: Buffer.from('leased/2'), value: Buffer.from('l2'), lease: LEASE_A }));
  must(await c.put({ key: Buffer.from('leased/3'), value: Buffer.from('l3'), lease: LEASE_B }));
  must(await c.put({ key: Buffer.from(''.padEnd(1, '\u00ff')), value: Buffer.alloc(0) }));
  return { compactRev };
}

interface Observed {
  revision: number;
  kvs: unknown[];
  /** `a` as of the compaction revision and just after it. */
  history: unknown[];
  compactedErr: number | undefined;
  leases: Array<{ id: string; ttl: string; keys: string[] }>;
}

async function observe(endpoint: string, compactRev: number): Promise<Observed> {
  const c = connect(endpoint);
  try {
    const all = must(await c.range({ key: Buffer.from([0]), range_end: Buffer.from([0]) }));
    const history = [];
    for (const rev of [compactRev, compactRev + 1]) history.push(must(await c.range({ key: Buffer.from('a'), revision: String(rev) })).kvs);
    const compacted = await c.range({ key: Buffer.from('a'), revision: String(compactRev - 1) });
    const leases = [];
    for (const l of must(await c.leaseLeases()).leases as Array<{ ID: string }>) {
      const t = must(await c.leaseTimeToLive({ ID: l.ID, keys: true }));
      // The remaining TTL runs down on its own; it must be positive and at most the granted TTL.
      expect(Number(t.TTL)).toBeGreaterThan(0);
      expect(Number(t.TTL)).toBeLessThanOrEqual(Number(t.grantedTTL));
      leases.push({ id: t.ID, ttl: t.grantedTTL, keys: (t.keys as Buffer[]).map((k) => k.toString()).sort() });
    }
    leases.sort((x, y) => x.id.localeCompare(y.id));
    return { revision: Number(all.header.revision), kvs: all.kvs, history, compactedErr: compacted.err?.code, leases };
  } finally {
    c.close();
  }
}

async function save(m: Member, file: string): Promise<void> {
  const r = await etcdctl(m.endpoint, [...ROOT, 'snapshot', 'save', file], { timeoutMs: 30_000 });
  expect(r.code, r.stderr).toBe(0);
}

const ROOT = ['--user=root:rootpw'];

async function ok(endpoint: string, args: string[]): Promise<string> {
  const r = await etcdctl(endpoint, args);
  expect(r.code, `etcdctl ${args.join(' ')}: ${r.stderr}`).toBe(0);
  return r.stdout;
}

/** Auth state the snapshot must carry: root, a user with a role that may read `many/` only, auth on. */
async function addAuth(endpoint: string): Promise<void> {
  await ok(endpoint, ['user', 'add', 'root:rootpw']);
  await ok(endpoint, ['user', 'grant-role', 'root', 'root']);
  await ok(endpoint, ['user', 'add', 'alice:alicepw']);
  await ok(endpoint, ['role', 'add', 'reader']);
  await ok(endpoint, ['role', 'grant-permission', 'reader', 'read', 'many/', '--prefix']);
  await ok(endpoint, ['user', 'grant-role', 'alice', 'reader']);
  expect(await ok(endpoint, ['auth', 'enable'])).toContain('Authentication Enabled');
}

/**
 * On a member restored from a snapshot taken with auth on: alice authenticates with her password,
 * her role's permission is enforced (reads under many/ only, no writes), a wrong password and no
 * user are refused; then root turns auth off so the data can be compared.
 */
async function checkAuthThenDisable(endpoint: string): Promise<void> {
  const alice = ['--user=alice:alicepw'];
  expect(await ok(endpoint, [...alice, 'get', 'many/0001', '--print-value-only'])).toBe('v1\n');
  const write = await etcdctl(endpoint, [...alice, 'put', 'many/0001', 'x']);
  expect(write.stderr).toContain('etcdserver: permission denied');
  const outside = await etcdctl(endpoint, [...alice, 'get', 'a']);
  expect(outside.stderr).toContain('etcdserver: permission denied');
  const wrong = await etcdctl(endpoint, ['--user=alice:nope', 'get', 'many/0001']);
  expect(wrong.stderr).toContain('authentication failed, invalid user ID or password');
  const anonymous = await etcdctl(endpoint, ['get', 'many/0001']);
  expect(anonymous.stderr).toContain('etcdserver: user name is empty');
  expect(await ok(endpoint, [...ROOT, 'role', 'get', 'reader'])).toContain('[many/, many0) (prefix many/)');
  expect(await ok(endpoint, [...ROOT, 'user', 'get', 'alice'])).toContain('Roles: reader');
  expect(await ok(endpoint, [...ROOT, 'auth', 'disable'])).toContain('Authentication Disabled');
}

function etcdctlStatus(file: string): { hash: number; revision: number; totalKey: number; totalSize: number } {
  return JSON.parse(execFileSync(ETCDCTL_BIN, ['snapshot', 'status', file, '-w', 'json'], { encoding: 'utf8', env: { ...process.env, ETCDCTL_API: '3' } }));
}

function cairn(args: string[]): string {
  return execFileSync(process.execPath, [CAIRN_BIN, ...args], { encoding: 'utf8' });
}

/** The `key` and `lease` buckets as Go's bbolt dumps them: data-determined, equal across servers. */
function dataBuckets(file: string): unknown {
  const d = bboltDump(file);
  expect(d.code, d.stderr).toBe(0);
  return d.buckets.filter((b) => ['key', 'lease'].includes(Buffer.from(b.name, 'hex').toString()));
}

describe('etcd-format snapshots', () => {
  let etcdFile = '';
  let cairnFile = '';
  let etcdSeen: Observed;
  let cairnSeen: Observed;
  let compactRev = 0;

  it('cairn -> etcdctl snapshot save/status/restore -> etcd serves identical data', async () => {
    const src = await start('cairn');
    const c = connect(src.endpoint);
    compactRev = (await workload(c)).compactRev;
    c.close();
    cairnSeen = await observe(src.endpoint, compactRev);
    expect(cairnSeen.compactedErr).toBe(11);
    expect(cairnSeen.kvs).toHaveLength(295);
    expect(cairnSeen.leases.map((l) => l.keys.length)).toEqual([1, 2]); // lease 42: leased/3; the other: leased/1, leased/2
    await addAuth(src.endpoint);
    cairnFile = path.join(src.tmpDir, 'cairn-snap.db');
    await save(src, cairnFile);

    // etcdctl and cairn read the same numbers from the file, and Go's bbolt finds it consistent.
    const st = etcdctlStatus(cairnFile);
    expect(st.revision).toBe(cairnSeen.revision);
    expect(JSON.parse(cairn(['snapshot', 'status', cairnFile, '-w', 'json']))).toEqual(st);
    const table = execFileSync(ETCDCTL_BIN, ['snapshot', 'status', cairnFile, '-w', 'table'], { encoding: 'utf8', env: { ...process.env, ETCDCTL_API: '3' } });
    expect(cairn(['snapshot', 'status', cairnFile, '-w', 'table'])).toBe(table);
    expect(cairn(['snapshot', 'status', cairnFile])).toBe(`${st.hash.toString(16)}, ${st.revision}, ${st.totalKey}, ${table.split('|')[9].trim()}\n`);

    const dataDir = path.join(src.tmpDir, 'etcd-restored');
    const restored = await etcdctl(src.endpoint, ['snapshot', 'restore', cairnFile, '--data-dir', dataDir, '--name', 'r1', '--initial-cluster', 'r1=http://127.0.0.1:2380', '--initial-advertise-peer-urls', 'http://127.0.0.1:2380']);
    expect(restored.code, restored.stderr).toBe(0);
    const etcd = await start('etcd', { name: 'r1', dataDir });
    await checkAuthThenDisable(etcd.endpoint);
    expect(await observe(etcd.endpoint, compactRev)).toEqual(cairnSeen);
  });

  it('etcd -> etcdctl snapshot save -> cairn snapshot status/restore -> cairn serves identical data', async () => {
    const src = await start('etcd');
    const c = connect(src.endpoint);
    expect((await workload(c)).compactRev).toBe(compactRev);
    c.close();
    etcdSeen = await observe(src.endpoint, compactRev);
    // Same operations, same answers: the two sources agree before any snapshot.
    expect(etcdSeen).toEqual(cairnSeen);
    await addAuth(src.endpoint);
    etcdFile = path.join(src.tmpDir, 'etcd-snap.db');
    await save(src, etcdFile);
    expect(JSON.parse(cairn(['snapshot', 'status', etcdFile, '-w', 'json']))).toEqual(etcdctlStatus(etcdFile));

    const dataDir = path.join(src.tmpDir, 'cairn-restored');
    expect(cairn(['snapshot', 'restore', etcdFile, '--data-dir', dataDir, '--name', 'r2'])).toContain(`at revision ${etcdSeen.revision}`);
    const restored = await start('cairn', { name: 'r2', dataDir });
    await checkAuthThenDisable(restored.endpoint);
    expect(await observe(restored.endpoint, compactRev)).toEqual(etcdSeen);
    // The restored member goes on from the snapshot's revision.
    const r = connect(restored.endpoint);
    const next = must(await r.put({ key: Buffer.from('after'), value: Buffer.from('restore') }));
    r.close();
    expect(Number(next.header.revision)).toBe(etcdSeen.revision + 1);
  });

  it("etcd's and cairn's snapshots of the same data agree where the data determines them", () => {
    // Byte for byte: every revision's mvccpb.KeyValue and every leasepb.Lease.
    expect(dataBuckets(cairnFile)).toEqual(dataBuckets(etcdFile));
    // cairn's reader sees in etcd's own file (free pages, bbolt's splits) what Go's bbolt sees.
    const reader = BboltReader.open(etcdFile, fs.statSync(etcdFile).size - 32);
    try {
      expect(readTree(reader, Buffer.alloc(0), reader.root).buckets.map(toDump)).toEqual(bboltDump(etcdFile).buckets);
      // ... a file with branch pages (300 keys) and overflow pages (the 20 kB value).
      const kinds = pageKinds(reader);
      expect(kinds.branch).toBeGreaterThan(0);
      expect(kinds.overflowed).toBeGreaterThan(0);
    } finally {
      reader.close();
    }
    // cairn writes a member as etcd's json.Marshal(membership.Member) does (field order, omitempty).
    const etcdMembers = bboltDump(etcdFile).buckets.find((bk) => Buffer.from(bk.name, 'hex').toString() === 'members');
    expect(etcdMembers?.keys).toHaveLength(1);
    for (const [hexId, json] of etcdMembers?.keys ?? []) {
      const id = BigInt(`0x${Buffer.from(hexId, 'hex').toString()}`);
      const o = JSON.parse(Buffer.from(json, 'hex').toString()) as { name?: string; peerURLs: string[]; clientURLs?: string[]; isLearner?: boolean };
      const m = { id, name: o.name ?? '', peerUrls: o.peerURLs, clientUrls: o.clientURLs ?? [], isLearner: o.isLearner === true };
      expect(etcdMemberJson(m)).toBe(Buffer.from(json, 'hex').toString());
      expect(etcdMemberJson({ ...m, isLearner: true, name: '', clientUrls: [] })).toBe(`{"id":${id},"peerURLs":${JSON.stringify(o.peerURLs)},"isLearner":true}`);
    }
    const e = etcdctlStatus(etcdFile);
    const k = etcdctlStatus(cairnFile);
    expect(k.revision).toBe(e.revision);
    expect(k.totalKey).toBe(e.totalKey);
  });

  it('refuses a snapshot whose sha256 does not match, as etcd does, unless --skip-hash-check', () => {
    const bad = `${etcdFile}.bad`;
    const bytes = fs.readFileSync(etcdFile);
    bytes[bytes.length - 40] ^= 0xff;
    fs.writeFileSync(bad, bytes);
    const dir = path.join(path.dirname(bad), 'bad-restore');
    expect(() => execFileSync(process.execPath, [CAIRN_BIN, 'snapshot', 'restore', bad, '--data-dir', dir], { stdio: 'pipe' })).toThrow(/integrity check failed: expected sha256/);
    expect(fs.existsSync(dir)).toBe(false);
    // A db copied out of a data dir has no trailer: etcd's message, and accepted with the flag.
    const raw = `${etcdFile}.raw`;
    fs.writeFileSync(raw, fs.readFileSync(etcdFile).subarray(0, bytes.length - 32));
    expect(() => execFileSync(process.execPath, [CAIRN_BIN, 'snapshot', 'restore', raw, '--data-dir', dir], { stdio: 'pipe' })).toThrow(/snapshot missing hash but --skip-hash-check=false/);
    // A db that is damaged inside (here: the key bucket's root page) fails the restore and leaves
    // no data dir behind that a member could start on as if it were restored.
    const broken = Buffer.from(fs.readFileSync(raw));
    const reader = BboltReader.fromBuffer(broken);
    const keyRoot = Number(reader.bucket('key')?.root);
    expect(keyRoot).toBeGreaterThan(2);
    broken.writeUInt16LE(0, keyRoot * reader.pageSize + 8);
    const brokenFile = `${etcdFile}.broken`;
    fs.writeFileSync(brokenFile, broken);
    expect(() => execFileSync(process.execPath, [CAIRN_BIN, 'snapshot', 'restore', brokenFile, '--data-dir', dir, '--skip-hash-check'], { stdio: 'pipe' })).toThrow(/invalid type/);
    expect(fs.existsSync(path.join(dir, 'member'))).toBe(false);
    expect(cairn(['snapshot', 'restore', raw, '--data-dir', dir, '--skip-hash-check'])).toContain(`at revision ${etcdSeen.revision}`);
  });
});
