import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadEtcdServices, serviceDefinition } from '../../proto';
import type { AuthServer } from '../../server/etcdserver/interfaces';
import { authResolver, userFromCertificate } from '../../server/v3rpc/auth-interceptor';

/**
 * With --client-cert-auth, etcd takes the user from the verified client certificate's CN when a
 * call has no token. This drives the resolver through a grpc-js TLS server of its own (the
 * process-level comparison with etcd is cert-cn-etcdctl.test.ts), with certificates made by openssl: it pins the grpc-js API the
 * resolver relies on (getAuthContext().sslPeerCertificate) and the token-first order.
 */

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-cn-'));
const f = (n: string): string => path.join(dir, n);
let server: grpc.Server;
let port: number;

function openssl(args: string[]): void {
  execFileSync('openssl', args, { stdio: 'ignore', cwd: dir });
}

/** Only what the resolver calls; the token path answers as a token for "bob". */
const auth = {
  authInfoFromToken: async (token: string) => ({ username: `token:${token}`, revision: 7 }),
  authInfoFromCommonName: (cn: string) => ({ username: cn, revision: 7 }),
} as unknown as AuthServer;

beforeAll(async () => {
  openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '1', '-subj', '/CN=test-ca']);
  fs.writeFileSync(f('san.ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\n');
  for (const [name, cn, ext] of [['server', 'localhost', true], ['client', 'alice', false]] as const) {
    openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`]);
    openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '1', ...(ext ? ['-extfile', 'san.ext'] : [])]);
  }
  const resolver = authResolver(auth, { clientCertAuth: true });
  server = new grpc.Server();
  // The resolved user comes back as the key of the one KeyValue a Range returns.
  server.addService(serviceDefinition('etcdserverpb', 'KV'), {
    Range: (call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) => {
      resolver.authInfo(call).then(
        (ai) => cb(null, { kvs: [{ key: Buffer.from(`${ai?.username ?? 'nobody'}|${userFromCertificate(call) ?? 'no-cert'}`) }] }),
        (e: Error) => cb(e),
      );
    },
  });
  const creds = grpc.ServerCredentials.createSsl(fs.readFileSync(f('ca.crt')), [{ private_key: fs.readFileSync(f('server.key')), cert_chain: fs.readFileSync(f('server.crt')) }], true);
  port = await new Promise((resolve, reject) => server.bindAsync('127.0.0.1:0', creds, (e, p) => (e ? reject(e) : resolve(p))));
});

afterAll(() => {
  server?.forceShutdown();
  fs.rmSync(dir, { recursive: true, force: true });
});

function whoAmI(withClientCert: boolean, token?: string): Promise<string> {
  const ca = fs.readFileSync(f('ca.crt'));
  const creds = withClientCert ? grpc.credentials.createSsl(ca, fs.readFileSync(f('client.key')), fs.readFileSync(f('client.crt'))) : grpc.credentials.createSsl(ca);
  const Ctor = (loadEtcdServices().etcdserverpb as grpc.GrpcObject).KV as grpc.ServiceClientConstructor;
  const client = new Ctor(`localhost:${port}`, creds);
  const md = new grpc.Metadata();
  if (token) md.set('token', token);
  return new Promise((resolve, reject) => {
    (client as unknown as Record<string, (r: object, md: grpc.Metadata, cb: (e: grpc.ServiceError | null, r?: { kvs: { key: Buffer }[] }) => void) => void>).Range({}, md, (e, r) => {
      client.close();
      if (e) reject(e);
      else resolve(r!.kvs[0].key.toString());
    });
  });
}

describe('client certificate CN as the user', () => {
  it('a verified client certificate without a token: its CN is the user', async () => {
    expect(await whoAmI(true)).toBe('alice|alice');
  });

  it('a token wins over the certificate', async () => {
    expect(await whoAmI(true, 'abc.1')).toBe('token:abc.1|alice');
  });

  it('no client certificate: the handshake is refused (--client-cert-auth requires one)', async () => {
    await expect(whoAmI(false)).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });
  });
});
