import * as grpc from '@grpc/grpc-js';
import { spawn } from 'node:child_process';
import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadEtcdServices } from '../../proto';
import { sleep, waitFor } from '../support/cluster';
import { connect, must, type EtcdClient } from '../support/grpc-client';
import type { Member } from '../support/member';
import { SUBJECT_KIND, startTarget } from '../watch/support/harness';

/**
 * Election and Lock: the v3electionpb / v3lockpb services, and the client-side recipes of etcdctl
 * and npm etcd3 (which need sort by create revision with limit 1, max_create_revision, txn reads of
 * own writes, and watches from a past revision). Runs against CONFORMANCE_SUBJECT (default bin/cairn).
 */

let member: Member;
let kv: EtcdClient;

beforeAll(async () => {
  member = await startTarget(SUBJECT_KIND, []);
  kv = connect(member.endpoint);
}, 60_000);

afterAll(async () => {
  kv?.close();
  await member?.cleanup();
});

type Unary = (req: object, md: grpc.Metadata, opts: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r?: any) => void) => grpc.ClientUnaryCall;

function serviceClient(pkg: string, service: string): grpc.Client & Record<string, Unary> {
  const ns = loadEtcdServices()[pkg] as grpc.GrpcObject;
  const Ctor = ns[service] as grpc.ServiceClientConstructor;
  return new Ctor(member.endpoint, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 }) as any;
}

function call(c: grpc.Client & Record<string, Unary>, method: string, req: object, deadlineMs = 10_000): { done: Promise<any>; cancel(): void } {
  let handle!: grpc.ClientUnaryCall;
  const done = new Promise((resolve, reject) => {
    handle = c[method](req, new grpc.Metadata(), { deadline: Date.now() + deadlineMs }, (e, r) => (e ? reject(e) : resolve(r)));
  });
  return { done, cancel: () => handle.cancel() };
}

/** The keys under `prefix` (lock and election recipes put one per holder or waiter). */
async function keysUnder(prefix: string): Promise<string[]> {
  const end = Buffer.from(prefix);
  end[end.length - 1]++;
  return must(await kv.range({ key: Buffer.from(prefix), range_end: end }), 'range').kvs.map((x: { key: Buffer }) => x.key.toString());
}

const WAIT_MS = 10_000;

async function grant(ttl = 30): Promise<string> {
  return must(await kv.leaseGrant({ ID: '0', TTL: String(ttl) }), 'grant').ID;
}

describe('v3lockpb.Lock', () => {
  it('a second Lock on the same name waits until the holder unlocks, then gets a key under name/', async () => {
    const lock = serviceClient('v3lockpb', 'Lock');
    const [l1, l2] = [await grant(), await grant()];
    const first = await call(lock, 'Lock', { name: Buffer.from('/locks/a'), lease: l1 }).done;
    expect(first.key.toString()).toBe(`/locks/a/${BigInt(l1).toString(16)}`);
    let secondDone = false;
    const second = call(lock, 'Lock', { name: Buffer.from('/locks/a'), lease: l2 });
    void second.done.then(() => (secondDone = true));
    // The second Lock is waiting: its key is written (etcd's Mutex puts it, then waits for the
    // earlier key's deletion).
    await waitFor('the second Lock\'s key', WAIT_MS, async () => (await keysUnder('/locks/a/')).length === 2);
    expect(secondDone).toBe(false);
    const unlocked = await call(lock, 'Unlock', { key: first.key }).done;
    const got = await second.done;
    expect(got.key.toString()).toBe(`/locks/a/${BigInt(l2).toString(16)}`);
    expect(Number(got.header.revision)).toBeGreaterThan(Number(first.header.revision));
    // It was granted only after the unlock: its header is that of the read that saw the holder's
    // key gone (etcd Mutex.Lock's waitDeletes), at or after the unlock's revision.
    expect(Number(got.header.revision)).toBeGreaterThanOrEqual(Number(unlocked.header.revision));
    lock.close();
  });

  it('the holder\'s lease expiring hands the lock to the next waiter', async () => {
    const lock = serviceClient('v3lockpb', 'Lock');
    const [l1, l2] = [await grant(2), await grant(30)];
    await call(lock, 'Lock', { name: Buffer.from('/locks/b'), lease: l1 }).done;
    const started = Date.now();
    const got = await call(lock, 'Lock', { name: Buffer.from('/locks/b'), lease: l2 }, 20_000).done;
    expect(got.key.toString()).toBe(`/locks/b/${BigInt(l2).toString(16)}`);
    expect(Date.now() - started).toBeGreaterThan(1000);
    lock.close();
  }, 30_000);
});

describe('v3electionpb.Election', () => {
  it('Campaign, Leader, Proclaim, Observe and Resign follow etcd\'s recipe', async () => {
    const el = serviceClient('v3electionpb', 'Election');
    const name = Buffer.from('/elect/x');
    await expect(call(el, 'Leader', { name }).done).rejects.toMatchObject({ details: 'election: no leader' });
    await expect(call(el, 'Proclaim', { value: Buffer.from('v') }).done).rejects.toMatchObject({ details: '"leader" field must be provided' });
    const [l1, l2] = [await grant(), await grant()];
    const c1 = await call(el, 'Campaign', { name, lease: l1, value: Buffer.from('one') }).done;
    expect(c1.leader).toMatchObject({ name, key: Buffer.from(`/elect/x/${BigInt(l1).toString(16)}`), lease: l1 });
    const observed: string[] = [];
    const obs = el.makeServerStreamRequest(
      '/v3electionpb.Election/Observe',
      (x: any) => (loadEtcdServices() as any).v3electionpb.Election.service.Observe.requestSerialize(x),
      (b: Buffer) => (loadEtcdServices() as any).v3electionpb.Election.service.Observe.responseDeserialize(b),
      { name },
    );
    obs.on('data', (r: any) => observed.push(r.kv.value.toString()));
    obs.on('error', () => undefined);
    let secondElected = false;
    const c2 = call(el, 'Campaign', { name, lease: l2, value: Buffer.from('two') });
    void c2.done.then(() => (secondElected = true));
    // The second campaign is waiting: its key is written (etcd's Election.Campaign puts it, then
    // waits for the earlier keys' deletion).
    await waitFor('the second campaign\'s key', WAIT_MS, async () => (await keysUnder('/elect/x/')).length === 2);
    expect(secondElected).toBe(false);
    expect((await call(el, 'Leader', { name }).done).kv.value.toString()).toBe('one');
    await call(el, 'Proclaim', { leader: c1.leader, value: Buffer.from('one-b') }).done;
    expect((await call(el, 'Leader', { name }).done).kv.value.toString()).toBe('one-b');
    // Still waiting, several round trips after its key was written.
    expect(secondElected).toBe(false);
    await call(el, 'Resign', { leader: c1.leader }).done;
    const won = await c2.done;
    expect(won.leader.key.toString()).toBe(`/elect/x/${BigInt(l2).toString(16)}`);
    // The resigned leader can no longer proclaim.
    await expect(call(el, 'Proclaim', { leader: c1.leader, value: Buffer.from('stale') }).done).rejects.toMatchObject({ details: 'election: not leader' });
    // Nothing more (no stale value, no repeat) may reach the observer: a proclamation by the new
    // leader is a barrier, as Observe reports the leader's values in revision order.
    await call(el, 'Proclaim', { leader: won.leader, value: Buffer.from('two-b') }).done;
    await waitFor('the observer to see the barrier', WAIT_MS, () => observed.includes('two-b'));
    expect(observed).toEqual(['one', 'one-b', 'two', 'two-b']);
    obs.cancel();
    el.close();
  });
});

function run(cmd: string, args: string[], timeoutMs = 30_000): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { env: { ...process.env, ETCDCTL_API: '3' } });
    let out = '';
    child.stdout.on('data', (b) => (out += b));
    child.stderr.on('data', (b) => (out += b));
    const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code) => {
      clearTimeout(t);
      resolve({ code, out });
    });
  });
}

describe('mutual exclusion with real clients', () => {
  it('etcdctl lock: contending holders never overlap', async () => {
    const marker = `/tmp/cairn-lock-${process.pid}-${Date.now()}`;
    // Each holder fails loudly if another holder's marker exists while it holds the lock.
    const body = `if [ -e ${marker} ]; then echo OVERLAP; fi; touch ${marker}; sleep 0.3; rm -f ${marker}; echo held`;
    const runs = await Promise.all(
      [0, 1, 2, 3].map(() => run('/usr/bin/etcdctl', [`--endpoints=${member.endpoint}`, 'lock', '/locks/ctl', '--', 'sh', '-c', body])),
    );
    for (const r of runs) {
      expect(r.code, r.out).toBe(0);
      expect(r.out).toContain('held');
      expect(r.out).not.toContain('OVERLAP');
    }
  }, 60_000);

  it('etcdctl elect: the campaigner is leader and `elect -l` observes its proposal', async () => {
    const child = spawn('/usr/bin/etcdctl', [`--endpoints=${member.endpoint}`, 'elect', '/elect/ctl', 'p1'], { env: { ...process.env, ETCDCTL_API: '3' } });
    let out = '';
    child.stdout.on('data', (b) => (out += b));
    await waitFor('the campaigner to print its proposal', WAIT_MS, () => out.includes('p1')).catch(() => undefined);
    expect(out).toMatch(/^\/elect\/ctl\/[0-9a-f]+\np1\n/);
    const observer = spawn('/usr/bin/etcdctl', [`--endpoints=${member.endpoint}`, 'elect', '-l', '/elect/ctl'], { env: { ...process.env, ETCDCTL_API: '3' } });
    let seen = '';
    observer.stdout.on('data', (b) => (seen += b));
    await waitFor('the observer to print the proposal', WAIT_MS, () => seen.includes('p1')).catch(() => undefined);
    expect(seen).toContain('p1');
    observer.kill('SIGINT');
    child.kill('SIGINT');
  }, 30_000);

  it('npm etcd3 lock(): concurrent holders never overlap', async () => {
    const client = new Etcd3({ hosts: member.endpoint });
    let holders = 0;
    let maxHolders = 0;
    let entered = 0;
    // etcd3's lock() is a try-lock (it fails when held), so contenders retry until they get it.
    // Time-based, on purpose: each holder keeps the lock HOLD_MS, the window in which an overlap
    // would show, while the others retry every RETRY_MS.
    const HOLD_MS = 100;
    const RETRY_MS = 20;
    const contend = async (): Promise<void> => {
      for (;;) {
        try {
          await client.lock('/locks/npm').ttl(10).do(async () => {
            holders++;
            entered++;
            maxHolders = Math.max(maxHolders, holders);
            await sleep(HOLD_MS);
            holders--;
          });
          return;
        } catch (e) {
          if (!(e instanceof Error) || !e.message.includes('Failed to acquire')) throw e;
          await sleep(RETRY_MS);
        }
      }
    };
    await Promise.all([0, 1, 2, 3, 4].map(contend));
    expect(entered).toBe(5);
    expect(maxHolders).toBe(1);
    client.close();
  }, 30_000);

  it('npm etcd3 election().campaign(): one leader at a time; resigning hands over', async () => {
    const a = new Etcd3({ hosts: member.endpoint });
    const b = new Etcd3({ hosts: member.endpoint });
    const ca = a.election('/elect/npm', 5).campaign('a');
    await new Promise<void>((resolve, reject) => {
      ca.on('elected', () => resolve());
      ca.on('error', reject);
    });
    const cb = b.election('/elect/npm', 5).campaign('b');
    let bElected = false;
    cb.on('elected', () => (bElected = true));
    cb.on('error', () => undefined);
    // b is campaigning: its key is written (etcd3 keeps them under `election/<name>/`), and it
    // waits behind a's.
    await waitFor('b\'s campaign key', WAIT_MS, async () => (await keysUnder('election//elect/npm/')).length === 2);
    expect(await a.election('/elect/npm').leader()).toBe('a');
    expect(bElected).toBe(false);
    await ca.resign();
    await waitFor('b to be elected', WAIT_MS, () => bElected).catch(() => undefined);
    expect(bElected).toBe(true);
    expect(await b.election('/elect/npm').leader()).toBe('b');
    await cb.resign();
    a.close();
    b.close();
  }, 30_000);
});
