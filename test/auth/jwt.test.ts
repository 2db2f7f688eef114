import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { Etcd3 } from 'etcd3';
import jwt from 'jsonwebtoken';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadEtcdServices } from '../../proto';
import { etcdctl } from '../support/etcdctl';
import { startMember, type Member } from '../support/member';

/**
 * --auth-token jwt with keys made by openssl here: etcd 3.4 and cairn with the same keys issue
 * tokens any holder of the public key can verify (user name, auth revision, expiry), refuse a
 * token signed by another key or expired, refuse a token from before an auth change as old, and both refuse
 * to start with options they cannot use.
 */

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-jwt-'));
const file = (n: string): string => path.join(dir, n);
let etcd: Member;
let cairn: Member;

function openssl(args: string[]): void {
  execFileSync('openssl', args, { stdio: 'ignore' });
}

function rangeWithToken(endpoint: string, token: string): Promise<string> {
  const Ctor = (loadEtcdServices().etcdserverpb as grpc.GrpcObject).KV as grpc.ServiceClientConstructor;
  const client = new Ctor(endpoint, grpc.credentials.createInsecure());
  const md = new grpc.Metadata();
  md.set('token', token);
  return new Promise((resolve) => {
    (client as unknown as Record<string, (r: object, md: grpc.Metadata, cb: (e: grpc.ServiceError | null) => void) => void>).Range({ key: Buffer.from('k') }, md, (e) => {
      client.close();
      resolve(e ? `${grpc.status[e.code]}: ${e.details}` : 'OK');
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

const jwtFlag = (extra = ''): string => `jwt,pub-key=${file('pub.pem')},priv-key=${file('priv.pem')},sign-method=RS256,ttl=10m${extra}`;

beforeAll(async () => {
  openssl(['genrsa', '-out', file('priv.pem'), '2048']);
  openssl(['rsa', '-in', file('priv.pem'), '-pubout', '-out', file('pub.pem')]);
  openssl(['genrsa', '-out', file('other.pem'), '2048']);
  openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', file('ec.pem')]);
  [etcd, cairn] = await Promise.all(['etcd', 'cairn'].map((kind) => startMember({ kind: kind as 'etcd' | 'cairn', extraArgs: ['--auth-token', jwtFlag()] })));
});

afterAll(async () => {
  await Promise.all([etcd?.cleanup(), cairn?.cleanup()]);
  fs.rmSync(dir, { recursive: true, force: true });
});

async function scenario(m: Member): Promise<Record<string, unknown>> {
  for (const args of [['user', 'add', 'root:rootpw'], ['user', 'grant-role', 'root', 'root'], ['auth', 'enable']]) {
    const r = await etcdctl(m.endpoint, args);
    if (r.code !== 0) throw new Error(`${args.join(' ')}: ${r.stderr}`);
  }
  const token = await authenticate(m, 'root', 'rootpw');
  const claims = jwt.verify(token, fs.readFileSync(file('pub.pem')), { algorithms: ['RS256'] }) as jwt.JwtPayload;
  const header = JSON.parse(Buffer.from(token.split('.')[0], 'base64url').toString()) as { alg: string };
  const forged = jwt.sign({ username: 'root', revision: claims.revision, exp: claims.exp }, fs.readFileSync(file('other.pem')), { algorithm: 'RS256' });
  const out: Record<string, unknown> = {
    alg: header.alg,
    username: claims.username,
    revision: claims.revision,
    expiresInRange: (claims.exp ?? 0) * 1000 > Date.now() + 9 * 60_000 && (claims.exp ?? 0) * 1000 <= Date.now() + 10 * 60_000 + 1000,
    withToken: await rangeWithToken(m.endpoint, token),
    forged: await rangeWithToken(m.endpoint, forged),
    put: (await etcdctl(m.endpoint, ['--user', 'root:rootpw', 'put', 'k', 'v'])).stdout,
  };
  // Signed with the member's own key, for the current revision, but expired a minute ago.
  const expired = jwt.sign({ username: 'root', revision: claims.revision, exp: Math.floor(Date.now() / 1000) - 60 }, fs.readFileSync(file('priv.pem')), { algorithm: 'RS256' });
  out.expired = await rangeWithToken(m.endpoint, expired);
  // An auth change makes every earlier token's revision old.
  await etcdctl(m.endpoint, ['--user', 'root:rootpw', 'user', 'add', 'carol:pw']);
  out.afterChange = await rangeWithToken(m.endpoint, token);
  out.fresh = await rangeWithToken(m.endpoint, await authenticate(m, 'root', 'rootpw'));
  return out;
}

describe('--auth-token jwt', () => {
  it('tokens carry user, revision and expiry, signed with the configured key; as etcd 3.4', async () => {
    const [want, got] = await Promise.all([scenario(etcd), scenario(cairn)]);
    expect(got).toEqual(want);
    expect(got).toMatchObject({
      alg: 'RS256',
      username: 'root',
      expiresInRange: true,
      withToken: 'OK',
      forged: 'UNAUTHENTICATED: etcdserver: invalid auth token',
      expired: 'UNAUTHENTICATED: etcdserver: invalid auth token',
      afterChange: 'INVALID_ARGUMENT: etcdserver: revision of auth store is old',
      fresh: 'OK',
    });
  }, 60_000);

  it('options etcd cannot use refuse to start, with etcd message', async () => {
    const bad = [
      `jwt,pub-key=${file('pub.pem')},priv-key=${file('priv.pem')}`, // no sign-method
      `jwt,pub-key=${file('pub.pem')},priv-key=${file('priv.pem')},sign-method=XX256`,
      `jwt,priv-key=${file('missing.pem')},sign-method=RS256`,
      'jwt,sign-method',
      'bogus',
    ];
    for (const spec of bad) {
      for (const kind of ['etcd', 'cairn'] as const) {
        const started = startMember({ kind, extraArgs: ['--auth-token', spec], readyTimeoutMs: 10_000 });
        await expect(started, `${kind} ${spec}`).rejects.toThrow(/auth: invalid auth options/);
      }
    }
    // An ECDSA key for an RSA method, and a key pair that does not match: refused too.
    for (const spec of [`jwt,priv-key=${file('ec.pem')},sign-method=RS256`, `jwt,pub-key=${file('pub.pem')},priv-key=${file('other.pem')},sign-method=RS256`]) {
      await expect(startMember({ kind: 'cairn', extraArgs: ['--auth-token', spec], readyTimeoutMs: 10_000 }), spec).rejects.toThrow(/exited/);
    }
  }, 120_000);
});
