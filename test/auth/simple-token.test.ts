import * as grpc from '@grpc/grpc-js';
import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadEtcdServices } from '../../proto';
import { sleep, waitFor } from '../support/cluster';
import { etcdctl } from '../support/etcdctl';
import { startMember, type Member } from '../support/member';

/**
 * Simple tokens (etcd's tokenSimple) with --auth-token-ttl: "<16 letters>.<index>", refreshed on
 * every use, forgotten after the TTL without use, and on a password change. The token may also
 * come in the `authorization` metadata (the JSON gateway's field). Same on etcd 3.4 and cairn.
 */

const TTL_SECONDS = 2;
/**
 * Time-based on purpose (what is tested is a TTL): a token is used this often, well within its
 * TTL, to show use keeps it; idle tokens are probed this far apart, so the probes span the TTL.
 */
const USE_EVERY_MS = 500;
/** Enough idle tokens to span several TTLs at one probe per USE_EVERY_MS. */
const IDLE_TOKENS = 20;
let etcd: Member;
let cairn: Member;

beforeAll(async () => {
  [etcd, cairn] = await Promise.all(
    (['etcd', 'cairn'] as const).map((kind) => startMember({ kind, extraArgs: ['--auth-token', 'simple', '--auth-token-ttl', String(TTL_SECONDS)] })),
  );
  for (const m of [etcd, cairn]) {
    for (const args of [['user', 'add', 'root:rootpw'], ['user', 'grant-role', 'root', 'root'], ['auth', 'enable']]) {
      const r = await etcdctl(m.endpoint, args);
      if (r.code !== 0) throw new Error(`${args.join(' ')}: ${r.stderr}`);
    }
  }
});

afterAll(async () => {
  await Promise.all([etcd?.cleanup(), cairn?.cleanup()]);
});

function rangeWith(endpoint: string, field: string, token: string): Promise<string> {
  const Ctor = (loadEtcdServices().etcdserverpb as grpc.GrpcObject).KV as grpc.ServiceClientConstructor;
  const client = new Ctor(endpoint, grpc.credentials.createInsecure());
  const md = new grpc.Metadata();
  md.set(field, token);
  return new Promise((resolve) => {
    (client as unknown as Record<string, (r: object, md: grpc.Metadata, cb: (e: grpc.ServiceError | null) => void) => void>).Range({ key: Buffer.from('k') }, md, (e) => {
      client.close();
      resolve(e ? `${grpc.status[e.code]}: ${e.details}` : 'OK');
    });
  });
}

async function authenticate(m: Member): Promise<string> {
  const c = new Etcd3({ hosts: `http://${m.endpoint}` });
  try {
    return (await c.auth.authenticate({ name: 'root', password: 'rootpw' })).token;
  } finally {
    c.close();
  }
}

const INVALID = 'UNAUTHENTICATED: etcdserver: invalid auth token';

describe('simple tokens', () => {
  it('look like etcd\'s, and work in `token` and `authorization` metadata', async () => {
    for (const m of [etcd, cairn]) {
      const t = await authenticate(m);
      expect(t).toMatch(/^[a-zA-Z]{16}\.\d+$/);
      expect([await rangeWith(m.endpoint, 'token', t), await rangeWith(m.endpoint, 'authorization', t)]).toEqual(['OK', 'OK']);
      // Another prefix at an index that exists (a token from beyond the applied index makes etcd wait for it).
      expect(await rangeWith(m.endpoint, 'token', `${t.startsWith('a') ? 'b' : 'a'}${t.slice(1)}`)).toBe(INVALID);
      expect(await rangeWith(m.endpoint, 'token', 'not-a-token')).toBe(INVALID);
    }
  });

  it('a token used more often than its TTL stays valid; unused, it expires', async () => {
    await Promise.all(
      [etcd, cairn].map(async (m) => {
        const t = await authenticate(m);
        // Used every half second for twice the TTL: each use pushes the expiry back.
        const until = Date.now() + 2 * TTL_SECONDS * 1000;
        while (Date.now() < until) {
          expect(await rangeWith(m.endpoint, 'token', t)).toBe('OK');
          await sleep(USE_EVERY_MS);
        }
        // Then left alone: idle tokens, each probed exactly once (a probe of a live token would
        // refresh it), one every half second; the first ones are still valid, a later one has expired.
        const idle: string[] = [];
        for (let i = 0; i < IDLE_TOKENS; i++) idle.push(await authenticate(m));
        const answers: string[] = [];
        for (const t2 of idle) {
          answers.push(await rangeWith(m.endpoint, 'token', t2));
          if (answers.at(-1) === INVALID) break;
          await sleep(USE_EVERY_MS);
        }
        expect(answers.at(-1), `${m.kind}: ${answers.join(', ')}`).toBe(INVALID);
      }),
    );
  }, 60_000);

  it('a password change invalidates the user\'s tokens', async () => {
    for (const m of [etcd, cairn]) {
      const t = await authenticate(m);
      const r = await etcdctl(m.endpoint, ['--user', 'root:rootpw', 'user', 'passwd', 'root', '--interactive=false'], { stdin: 'rootpw\n' });
      expect(r.code).toBe(0);
      expect(await rangeWith(m.endpoint, 'token', t)).toBe(INVALID);
    }
  });
});
