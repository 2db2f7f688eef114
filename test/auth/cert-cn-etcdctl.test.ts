import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makePki, type CertPair, type TestPki } from '../../cluster-tests/pki';
import { etcdctl } from '../support/etcdctl';
import { startMember, type Member } from '../support/member';

/**
 * --client-cert-auth with auth enabled: a client that sends no token acts as its verified
 * certificate's CN (etcd's AuthInfoFromTLS). The same etcdctl session, each step with one client
 * certificate, runs against etcd 3.4 and cairn, each serving client mTLS with the same PKI, and
 * the transcripts must be equal.
 */
let pki: TestPki;
let pairs: Record<'client' | 'alice' | 'nobody', CertPair>;
let etcd: Member;
let cairn: Member;

beforeAll(async () => {
  pki = makePki();
  pairs = { client: pki.client, alice: pki.issue('alice', { cn: 'alice' }), nobody: pki.issue('nobody', { cn: 'nobody' }) };
  const tls = { ca: pki.ca, serverCert: pki.server.cert, serverKey: pki.server.key, clientCert: pki.client.cert, clientKey: pki.client.key };
  [etcd, cairn] = await Promise.all([startMember({ kind: 'etcd', name: 'cn', tls }), startMember({ kind: 'cairn', name: 'cn', tls })]);
}, 60_000);

afterAll(async () => {
  await Promise.all([etcd?.cleanup(), cairn?.cleanup()]);
  pki?.cleanup();
});

async function session(m: Member): Promise<string[]> {
  const out: string[] = [];
  const as = async (cert: 'client' | 'alice' | 'nobody', args: string[]): Promise<void> => {
    const pair = pairs[cert];
    const r = await etcdctl(`https://${m.endpoint}`, ['--cacert', pki.ca, '--cert', pair.cert, '--key', pair.key, ...args]);
    // clientv3's retry-interceptor warnings carry timestamps and ports: keep etcdctl's own lines.
    const stderr = r.stderr.split('\n').filter((l) => !l.startsWith('{"level"')).join('\n').trim();
    out.push(`${cert}$ ${args.join(' ')} => ${r.code} ${r.stdout.trim()} ${stderr}`);
  };
  // The harness's client certificate has CN=root.
  await as('client', ['user', 'add', 'root:rootpw']);
  await as('client', ['user', 'grant-role', 'root', 'root']);
  await as('client', ['role', 'add', 'app']);
  await as('client', ['role', 'grant-permission', 'app', 'readwrite', 'app/', '--prefix']);
  await as('client', ['user', 'add', 'alice:alicepw']);
  await as('client', ['user', 'grant-role', 'alice', 'app']);
  await as('client', ['put', 'other', 'o']);
  await as('client', ['auth', 'enable']);
  await as('alice', ['put', 'app/x', '1']);
  await as('alice', ['get', 'app/x', '--print-value-only']);
  await as('alice', ['put', 'other', '2']);
  await as('alice', ['get', 'other']);
  await as('alice', ['user', 'list']);
  await as('nobody', ['get', 'app/x']);
  // A token still wins over the certificate.
  await as('nobody', ['--user', 'alice:alicepw', 'get', 'app/x', '--print-value-only']);
  await as('client', ['get', 'other', '--print-value-only']);
  await as('client', ['user', 'list']);
  await as('client', ['auth', 'disable']);
  await as('nobody', ['get', 'other', '--print-value-only']);
  return out;
}

describe('client certificate CN as the user (--client-cert-auth)', () => {
  it('gives the same etcdctl transcript as etcd 3.4', async () => {
    const want = await session(etcd);
    const got = await session(cairn);
    expect(got).toEqual(want);
    // The session exercised both outcomes: alice was refused outside her prefix and served inside it.
    expect(want.find((l) => l.startsWith('alice$ put other'))).toMatch(/permission denied/);
    expect(want.find((l) => l.startsWith('alice$ get app/x'))).toMatch(/=> 0 1/);
  });
});
