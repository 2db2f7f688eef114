import * as grpc from '@grpc/grpc-js';
import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadEtcdServices } from '../../proto';
import { startMember, type Member } from '../support/member';

/**
 * The npm `etcd3` client's auth API end to end (roles, users, grants, password auth, its typed
 * errors), plus the two checks that are not a plain KV call: a watch is refused at creation
 * without read permission, and a lease revoke needs write permission on every attached key.
 * The same scenario runs against etcd 3.4 and cairn; outcomes must be equal, and as expected.
 */

let etcd: Member;
let cairn: Member;

beforeAll(async () => {
  [etcd, cairn] = await Promise.all([startMember({ kind: 'etcd' }), startMember({ kind: 'cairn' })]);
});

afterAll(async () => {
  await Promise.all([etcd?.cleanup(), cairn?.cleanup()]);
});

/** An outcome as data: the value, or the error's class name and message. */
async function outcome<T>(p: Promise<T>): Promise<unknown> {
  try {
    return { ok: await p };
  } catch (e) {
    return { err: (e as Error).constructor.name, message: (e as Error).message };
  }
}

/** A raw Watch stream with a token in its metadata: the first response to one create request. */
function firstWatchResponse(endpoint: string, token: string, key: string): Promise<Record<string, unknown>> {
  const Ctor = (loadEtcdServices().etcdserverpb as grpc.GrpcObject).Watch as grpc.ServiceClientConstructor;
  const client = new Ctor(endpoint, grpc.credentials.createInsecure());
  const md = new grpc.Metadata();
  md.set('token', token);
  const call = (client as unknown as { Watch(md: grpc.Metadata): grpc.ClientDuplexStream<object, Record<string, unknown>> }).Watch(md);
  return new Promise((resolve, reject) => {
    call.once('data', (r: Record<string, unknown>) => {
      call.cancel();
      client.close();
      resolve(r);
    });
    call.once('error', (e) => {
      if ((e as grpc.ServiceError).code !== grpc.status.CANCELLED) reject(e);
    });
    call.write({ create_request: { key: Buffer.from(key), range_end: Buffer.alloc(0) } });
  });
}

/** v3lockpb.Lock.Lock with a token: the key's prefix, or the error. */
function lockWithToken(endpoint: string, token: string, name: string, lease: string): Promise<string> {
  const Ctor = (loadEtcdServices().v3lockpb as grpc.GrpcObject).Lock as grpc.ServiceClientConstructor;
  const client = new Ctor(endpoint, grpc.credentials.createInsecure());
  const md = new grpc.Metadata();
  md.set('token', token);
  type LockFn = (r: object, md: grpc.Metadata, opts: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r?: { key: Buffer }) => void) => void;
  return new Promise((resolve) => {
    (client as unknown as Record<string, LockFn>).Lock({ name: Buffer.from(name), lease }, md, { deadline: Date.now() + 10_000 }, (e, r) => {
      client.close();
      resolve(e ? `${grpc.status[e.code]}: ${e.details}` : `locked ${r?.key.toString().slice(0, name.length + 1)}`);
    });
  });
}

async function authenticate(m: Member, name: string, password: string): Promise<string> {
  const c = new Etcd3({ hosts: `http://${m.endpoint}` });
  try {
    return (await c.auth.authenticate({ name, password })).token;
  } finally {
    c.close();
  }
}

async function scenario(m: Member): Promise<Record<string, unknown>> {
  const hosts = `http://${m.endpoint}`;
  const admin = new Etcd3({ hosts });
  const out: Record<string, unknown> = {};
  await admin.user('root').create('rootpw');
  await admin.role('root').create();
  await admin.user('root').addRole('root');
  await admin.role('app').create();
  await admin.role('app').grant({ permission: 'Readwrite', range: admin.range({ prefix: 'app/' }) });
  await admin.role('app').grant({ permission: 'Read', key: 'config' });
  await admin.user('alice').create('alicepw');
  await admin.user('alice').addRole('app');
  out.roleExists = await outcome(admin.role('app').create());
  out.userExists = await outcome(admin.user('alice').create('x'));
  out.missingRole = await outcome(admin.user('alice').addRole('nope'));
  out.roles = (await admin.getRoles()).map((r) => r.name);
  out.users = (await admin.getUsers()).map((u) => u.name);
  out.aliceRoles = (await admin.user('alice').roles()).map((r) => r.name);
  out.appPerms = (await admin.role('app').permissions()).map((p) => ({ permission: p.permission, start: p.range.start.toString(), end: p.range.end.toString() }));
  await admin.put('config').value('v1');
  await admin.put('secret').value('s');
  // Two leases: one holding only alice's keys, one holding a key she may not write.
  const own = await admin.leaseClient.leaseGrant({ TTL: 600 });
  const foreign = await admin.leaseClient.leaseGrant({ TTL: 600 });
  await admin.put('app/leased').value('l').lease(own.ID).exec();
  await admin.put('secret/leased').value('l').lease(foreign.ID).exec();
  await admin.auth.authEnable();
  admin.close();

  const root = new Etcd3({ hosts, auth: { username: 'root', password: 'rootpw' } });
  const alice = new Etcd3({ hosts, auth: { username: 'alice', password: 'alicepw' } });
  const wrong = new Etcd3({ hosts, auth: { username: 'alice', password: 'nope' } });
  const anonymous = new Etcd3({ hosts });
  try {
    out.alicePut = await outcome(alice.put('app/x').value('1').then(() => 'ok'));
    out.aliceGet = await outcome(alice.get('app/x').string());
    out.aliceConfig = await outcome(alice.get('config').string());
    out.aliceConfigWrite = await outcome(alice.put('config').value('v2').then(() => 'ok'));
    out.aliceSecret = await outcome(alice.get('secret').string());
    out.alicePrefix = await outcome(alice.getAll().prefix('app/').keys());
    out.aliceAll = await outcome(alice.getAll().keys());
    out.wrongPassword = await outcome(wrong.get('app/x').string());
    out.anonymous = await outcome(anonymous.get('app/x').string());
    out.aliceRevokeForeign = await outcome(alice.leaseClient.leaseRevoke({ ID: foreign.ID }).then(() => 'ok'));
    out.secretLeasedStays = await root.get('secret/leased').string();
    out.aliceRevokeOwn = await outcome(alice.leaseClient.leaseRevoke({ ID: own.ID }).then(() => 'ok'));
    out.ownLeasedGone = await root.get('app/leased').string();
    const aliceToken = await authenticate(m, 'alice', 'alicepw');
    const pick = (r: Record<string, unknown>) => ({ watch_id: String(r.watch_id), created: r.created, canceled: r.canceled, cancel_reason: r.cancel_reason });
    out.watchDenied = pick(await firstWatchResponse(m.endpoint, aliceToken, 'secret'));
    out.watchAllowed = pick(await firstWatchResponse(m.endpoint, aliceToken, 'app/x'));
    out.watchForgedToken = pick(await firstWatchResponse(m.endpoint, 'forged.1', 'app/x'));
    // The Lock service acts for its caller, as etcd's v3lock does (it calls clientv3 with the caller's context).
    const session = await alice.leaseClient.leaseGrant({ TTL: 60 });
    out.lockAllowed = await lockWithToken(m.endpoint, aliceToken, 'app/lock', String(session.ID));
    out.lockDenied = await lockWithToken(m.endpoint, aliceToken, 'secret/lock', String(session.ID));
    await root.user('alice').removeRole('app');
    out.afterRevoke = await outcome(alice.get('app/x').string());
    out.notGranted = await outcome(root.user('alice').removeRole('app'));
    await root.user('alice').setPassword('newpw');
    out.oldPassword = await outcome(new Etcd3({ hosts, auth: { username: 'alice', password: 'alicepw' } }).get('config').string());
    await root.role('app').delete();
    out.rolesAfterDelete = (await root.getRoles()).map((r) => r.name);
    await root.user('alice').delete();
    out.usersAfterDelete = (await root.getUsers()).map((u) => u.name);
  } finally {
    for (const c of [root, alice, wrong, anonymous]) c.close();
  }
  return out;
}

describe('the npm etcd3 client against auth: cairn answers as etcd 3.4', () => {
  it('roles, users, grants, password auth, watch and lease-revoke permissions', async () => {
    const [want, got] = await Promise.all([scenario(etcd), scenario(cairn)]);
    expect(got).toEqual(want);
    // And the answers are the right ones, not merely the same.
    expect(got.alicePut).toEqual({ ok: 'ok' });
    expect(got.aliceSecret).toEqual({ err: 'EtcdPermissionDeniedError', message: '7 PERMISSION_DENIED: etcdserver: permission denied' });
    expect(got.wrongPassword).toMatchObject({ err: 'EtcdAuthenticationFailedError' });
    expect(got.aliceRevokeForeign).toMatchObject({ err: 'EtcdPermissionDeniedError' });
    expect(got.secretLeasedStays).toBe('l');
    expect(got.ownLeasedGone).toBeNull();
    expect(got.watchDenied).toEqual({ watch_id: '-1', created: true, canceled: true, cancel_reason: 'rpc error: code = PermissionDenied desc = etcdserver: permission denied' });
    expect(got.watchAllowed).toMatchObject({ created: true, canceled: false });
    expect(got.lockAllowed).toBe('locked app/lock/');
    expect(got.lockDenied).toBe('UNKNOWN: etcdserver: permission denied'); // etcd's recipes relay clientv3 errors as Unknown
    expect(got.afterRevoke).toMatchObject({ err: 'EtcdPermissionDeniedError' });
  }, 120_000);
});
