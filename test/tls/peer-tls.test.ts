import * as grpc from '@grpc/grpc-js';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listenPeerTls, peerCredentials } from '../../server/rafthttp/tls';
import { ClientListener } from '../../server/embed/client-listener';
import type { TLSInfo } from '../../server/transport/tls/tls-info';
import { makePki, revoke, type CertPair, type TestPki } from '../support/certs';
import { waitFor } from '../support/cluster';
import { CAIRN_BIN, trackChild } from '../support/member';
import { freePorts } from '../support/ports';
import { PROBE_PATH } from '../../server/rafthttp/peer-metrics';

/**
 * The peer listener's checks on a member's client certificate, as etcd's pkg/transport does them:
 * --peer-cert-allowed-cn, --peer-cert-allowed-hostname, the SAN-against-remote-address check
 * (off with --experimental-peer-skip-client-san-verification), and --peer-crl-file /
 * --client-crl-file. Driven through the real listener and the real dialing credentials.
 */

const identity = (b: Buffer): Buffer => b;
const PING: grpc.ServiceDefinition = {
  Ping: { path: '/test.Peer/Ping', requestStream: false, responseStream: false, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity },
};
const log = pino({ level: 'silent' });

let pki: TestPki;
const closers: (() => void | Promise<void>)[] = [];

beforeAll(() => {
  pki = makePki();
});
afterAll(async () => {
  for (const c of closers) await c();
  pki.cleanup();
});

function info(over: Partial<TLSInfo>): TLSInfo {
  return {
    certFile: pki.server.cert, keyFile: pki.server.key, trustedCAFile: pki.ca, clientCertAuth: true, crlFile: '',
    allowedCN: '', allowedHostname: '', checkClientSAN: true, ciphers: '', minVersion: 'TLSv1.2', maxVersion: undefined, autoTls: false, selfSigned: false,
    ...over,
  };
}

async function peerServer(i: TLSInfo): Promise<number> {
  const server = new grpc.Server();
  server.addService(PING, { Ping: (_c: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => cb(null, Buffer.from('pong')) });
  const tcp: net.Server = await listenPeerTls(server, new URL('https://127.0.0.1:0'), i, log);
  closers.push(() => {
    tcp.close();
    server.forceShutdown();
  });
  return (tcp.address() as net.AddressInfo).port;
}

/** Dials like a member does (peerCredentials), presenting `pair`; resolves 'pong' or the gRPC code. */
function ping(port: number, pair: CertPair): Promise<string | number> {
  const creds = peerCredentials(info({ clientCertFile: pair.cert, clientKeyFile: pair.key }), `https://127.0.0.1:${port}`);
  const client = new grpc.Client(`127.0.0.1:${port}`, creds);
  return new Promise((resolve) =>
    client.makeUnaryRequest('/test.Peer/Ping', identity, identity, Buffer.alloc(0), { deadline: Date.now() + 3000 }, (err, res) => {
      client.close();
      resolve(err ? err.code : (res ?? Buffer.alloc(0)).toString());
    }),
  );
}

describe('peer TLS listener checks', () => {
  it('--peer-cert-allowed-cn admits only that CN', async () => {
    const port = await peerServer(info({ allowedCN: 'member' }));
    expect(await ping(port, pki.issue('m1', { cn: 'member' }))).toBe('pong');
    expect(await ping(port, pki.issue('intruder', { cn: 'intruder' }))).toBe(grpc.status.UNAVAILABLE);
  });

  it('--peer-cert-allowed-hostname admits only certificates valid for that host', async () => {
    const port = await peerServer(info({ allowedHostname: 'member.example' }));
    expect(await ping(port, pki.issue('named', { cn: 'x', sans: ['IP:127.0.0.1', 'DNS:member.example'] }))).toBe('pong');
    expect(await ping(port, pki.issue('unnamed', { cn: 'x', sans: ['IP:127.0.0.1', 'DNS:other.example'] }))).toBe(grpc.status.UNAVAILABLE);
  });

  it('a dialing member presents its rotated peer certificate on new connections', async () => {
    const port = await peerServer(info({ allowedCN: 'member-next' }));
    const first = pki.issue('dial-first', { cn: 'member' });
    const dialPair = { cert: `${pki.dir}/dial.crt`, key: `${pki.dir}/dial.key` };
    fs.copyFileSync(first.cert, dialPair.cert);
    fs.copyFileSync(first.key, dialPair.key);
    expect(await ping(port, dialPair)).toBe(grpc.status.UNAVAILABLE);
    const next = pki.issue('dial-next', { cn: 'member-next' });
    fs.copyFileSync(next.key, dialPair.key);
    fs.copyFileSync(next.cert, dialPair.cert);
    expect(await ping(port, dialPair)).toBe('pong');
  });

  it('checks a client certificate\'s SANs against the remote address unless told to skip it', async () => {
    const elsewhere = pki.issue('elsewhere', { cn: 'member', sans: ['IP:10.1.2.3'] });
    expect(await ping(await peerServer(info({})), elsewhere)).toBe(grpc.status.UNAVAILABLE);
    expect(await ping(await peerServer(info({})), pki.issue('here', { cn: 'member' }))).toBe('pong');
    expect(await ping(await peerServer(info({ checkClientSAN: false })), elsewhere)).toBe('pong');
  });

  it('refuses a revoked certificate on peer and client listeners (CRL files)', async () => {
    const good = pki.issue('good', { cn: 'member' });
    const bad = pki.issue('bad', { cn: 'member' });
    const crl = revoke(pki.dir, bad);
    const port = await peerServer(info({ crlFile: crl }));
    expect(await ping(port, good)).toBe('pong');
    expect(await ping(port, bad)).toBe(grpc.status.UNAVAILABLE);
    // The client listener (--client-crl-file) uses the same terminator.
    const server = new grpc.Server();
    server.addService(PING, { Ping: (_c: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => cb(null, Buffer.from('pong')) });
    const injector = server.createConnectionInjector(grpc.ServerCredentials.createInsecure());
    const l = new ClientListener(new URL('https://127.0.0.1:0'), { grpc: (s) => injector.injectConnection(s), http: http.createServer() }, log, info({ crlFile: crl, checkClientSAN: false }));
    await l.listen();
    closers.push(async () => {
      await l.close();
      injector.destroy();
      server.forceShutdown();
    });
    const read = (f: string): Buffer => fs.readFileSync(f);
    const call = (pair: CertPair): Promise<string | number> => {
      const client = new grpc.Client(`127.0.0.1:${l.address()!.port}`, grpc.credentials.createSsl(read(pki.ca), read(pair.key), read(pair.cert)));
      return new Promise((resolve) =>
        client.makeUnaryRequest('/test.Peer/Ping', identity, identity, Buffer.alloc(0), { deadline: Date.now() + 3000 }, (err, res) => {
          client.close();
          resolve(err ? err.code : (res ?? Buffer.alloc(0)).toString());
        }),
      );
    };
    expect(await call(good)).toBe('pong');
    expect(await call(bad)).toBe(grpc.status.UNAVAILABLE);
  });
});

describe('peer certificate checks through bin/cairn flags', () => {
  /** A member with peer mTLS and `extra`; resolves its peer port once it serves peers. */
  async function member(extra: string[], good: CertPair): Promise<number> {
    const [c, p] = await freePorts(2);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-peerflags-'));
    const peer = `https://127.0.0.1:${p}`;
    const child = spawn(process.execPath, [
      CAIRN_BIN, '--name', 'a', '--data-dir', path.join(dir, 'data'),
      '--listen-client-urls', `http://127.0.0.1:${c}`, '--advertise-client-urls', `http://127.0.0.1:${c}`,
      '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer, '--initial-cluster', `a=${peer}`,
      '--peer-cert-file', pki.server.cert, '--peer-key-file', pki.server.key, '--peer-trusted-ca-file', pki.ca, '--peer-client-cert-auth',
      ...extra,
    ], { stdio: 'ignore', cwd: dir });
    trackChild(child);
    closers.push(() => {
      child.kill('SIGKILL');
      fs.rmSync(dir, { recursive: true, force: true });
    });
    await waitFor('the member to serve peers', 20_000, async () => (await probe(p, good)) === '');
    return p;
  }

  /** The peer service's Probe, dialed as a member dials (peerCredentials) with `pair`: '' or the gRPC code. */
  function probe(port: number, pair: CertPair): Promise<string | number> {
    const creds = peerCredentials(info({ clientCertFile: pair.cert, clientKeyFile: pair.key }), `https://127.0.0.1:${port}`);
    const client = new grpc.Client(`127.0.0.1:${port}`, creds);
    return new Promise((resolve) =>
      client.makeUnaryRequest(PROBE_PATH, identity, identity, Buffer.alloc(0), { deadline: Date.now() + 3000 }, (err, res) => {
        client.close();
        resolve(err ? err.code : (res ?? Buffer.alloc(0)).toString());
      }),
    );
  }

  it('--peer-cert-allowed-cn: a member whose peer certificate has another CN is refused', async () => {
    const good = pki.issue('flag-member', { cn: 'member' });
    const port = await member(['--peer-cert-allowed-cn', 'member'], good);
    expect(await probe(port, pki.issue('flag-intruder', { cn: 'intruder' }))).toBe(grpc.status.UNAVAILABLE);
    expect(await probe(port, good)).toBe('');
  }, 30_000);

  it('--peer-cert-allowed-hostname: a member whose peer certificate is not valid for that host is refused', async () => {
    const good = pki.issue('flag-named', { cn: 'x', sans: ['IP:127.0.0.1', 'DNS:member.example'] });
    const port = await member(['--peer-cert-allowed-hostname', 'member.example'], good);
    expect(await probe(port, pki.issue('flag-unnamed', { cn: 'x', sans: ['IP:127.0.0.1', 'DNS:other.example'] }))).toBe(grpc.status.UNAVAILABLE);
    expect(await probe(port, good)).toBe('');
  }, 30_000);
});
