import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makePki, type TestPki } from '../support/certs';
import { etcdctl } from '../support/etcdctl';
import { waitFor } from '../support/cluster';
import { CAIRN_BIN, ETCD_BIN, trackChild } from '../support/member';
import { freePorts } from '../support/ports';
import { peerCredentials } from '../../server/rafthttp/tls';
import { dialAddress } from '../../server/rafthttp/peer-service';
import { urlScheme } from '../../server/transport/url-scheme';

/**
 * Listen URL schemes. http:// and https:// client URLs side by side on one member, each served as
 * it asks. unix:// and unixs:// listen URLs, as etcd 3.4 serves them: a unix socket at the URL's host (the
 * file `name:port` in the working directory), TLS on unixs://. A unixs:// client, peer or metrics
 * URL must never be served in plaintext, nor on TCP at host:port. Each case runs against cairn and
 * etcd 3.4 with the same flags.
 */

const START_TIMEOUT_MS = 20_000;

let pki: TestPki;
let dir: string;
const children: ChildProcess[] = [];

beforeAll(() => {
  pki = makePki();
  // Short: a unix socket path is limited to 107 bytes.
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cx-'));
});
afterAll(() => {
  for (const c of children) c.kill('SIGKILL');
  pki?.cleanup();
  fs.rmSync(dir, { recursive: true, force: true });
});

interface Reply {
  /** What came back before the connection closed (or the timeout). */
  data: string;
  /** 'closed' if the server closed it, 'timeout' if it stayed open with no complete answer. */
  end: 'closed' | 'timeout';
}

/** A plaintext HTTP/1.1 GET /health over `connect`; resolves with what came back. */
function plaintextGet(connect: () => net.Socket): Promise<Reply> {
  return new Promise((resolve) => {
    const s = connect();
    let data = '';
    const timer = setTimeout(() => {
      s.destroy();
      resolve({ data, end: 'timeout' });
    }, 12_000);
    s.on('connect', () => s.write('GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n'));
    s.on('data', (b: Buffer) => (data += b.toString('latin1')));
    s.on('error', () => undefined);
    s.on('close', () => {
      clearTimeout(timer);
      resolve({ data, end: 'closed' });
    });
  });
}

/** GET /health over TLS on a unix socket, verifying the server against the test CA. */
function tlsGet(socketPath: string, alpn: string[]): Promise<{ status: string; alpn: string | false }> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ path: socketPath, ca: fs.readFileSync(pki.ca), servername: 'localhost', ALPNProtocols: alpn } as tls.ConnectionOptions);
    let data = '';
    s.on('secureConnect', () => {
      if (alpn[0] === 'h2') {
        resolve({ status: '', alpn: s.alpnProtocol ?? false });
        s.destroy();
        return;
      }
      s.write('GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
    });
    s.on('data', (b: Buffer) => (data += b.toString()));
    s.on('error', reject);
    s.on('end', () => resolve({ status: data.split('\r\n')[0], alpn: s.alpnProtocol ?? false }));
  });
}

function tcpRefused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.on('connect', () => {
      s.destroy();
      resolve(false);
    });
    s.on('error', () => resolve(true));
  });
}

/** Starts cairn or etcd in its own directory under `dir` (the sockets are made there). */
function start(kind: 'cairn' | 'etcd', cwd: string, args: string[]): ChildProcess {
  fs.mkdirSync(cwd, { recursive: true });
  const child = kind === 'etcd'
    ? spawn(ETCD_BIN, args, { stdio: ['ignore', 'ignore', 'pipe'], cwd })
    : spawn(process.execPath, [CAIRN_BIN, ...args], { stdio: ['ignore', 'ignore', 'pipe'], cwd });
  trackChild(child);
  children.push(child);
  child.stderr?.resume();
  return child;
}

describe.each(['cairn', 'etcd'] as const)('unix socket listeners (%s)', (kind) => {
  it('serves unixs:// client, peer and metrics URLs with TLS on a socket file, refuses plaintext there, and opens no TCP port', async () => {
    const [c, p, m] = await freePorts(3);
    const cwd = path.join(dir, `${kind}-s`);
    const client = `unixs://localhost:${c}`;
    const peer = `unixs://localhost:${p}`;
    const metrics = `unixs://localhost:${m}`;
    const child = start(kind, cwd, [
      '--name', 'u', '--data-dir', path.join(cwd, 'data'),
      '--listen-client-urls', client, '--advertise-client-urls', client,
      '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer, '--initial-cluster', `u=${peer}`,
      '--listen-metrics-urls', metrics,
      '--cert-file', pki.server.cert, '--key-file', pki.server.key,
      '--peer-cert-file', pki.server.cert, '--peer-key-file', pki.server.key, '--peer-trusted-ca-file', pki.ca,
    ]);
    try {
      const sock = (port: number): string => path.join(cwd, `localhost:${port}`);
      await waitFor(`${kind}'s sockets`, START_TIMEOUT_MS, () => [c, p, m].every((port) => fs.existsSync(sock(port))));
      // Over TLS: the client and metrics sockets answer /health; the peer socket negotiates h2.
      const health = await waitFor(`${kind} /health over unixs`, START_TIMEOUT_MS, async () => {
        const r = await tlsGet(sock(c), ['http/1.1']).catch(() => undefined);
        return r?.status === 'HTTP/1.1 200 OK' ? r : undefined;
      });
      expect(health.status).toBe('HTTP/1.1 200 OK');
      expect((await tlsGet(sock(m), ['http/1.1'])).status).toBe('HTTP/1.1 200 OK');
      expect((await tlsGet(sock(p), ['h2'])).alpn).toBe('h2');
      // Plaintext on each socket gets no HTTP answer from the member (Go's TLS server answers a
      // plaintext HTTP request with a 400 and its "HTTP request to an HTTPS server").
      for (const port of [c, p, m]) {
        const r = await plaintextGet(() => net.connect({ path: sock(port) }));
        expect(r.data, `plaintext to ${port}`).not.toMatch(/^HTTP\/1\.[01] 200/);
        expect(r.data, `plaintext to ${port}`).not.toContain('"health"');
        expect(r.end, `plaintext to ${port}`).toBe('closed');
      }
      // Nothing on TCP at host:port.
      for (const port of [c, p, m]) expect(await tcpRefused(port), `TCP ${port}`).toBe(true);
    } finally {
      child.kill('SIGKILL');
    }
  }, 60_000);

  it('serves a unix:// client URL in plaintext on a socket file, not on TCP', async () => {
    const [c, p] = await freePorts(2);
    const cwd = path.join(dir, `${kind}-p`);
    const client = `unix://localhost:${c}`;
    const peer = `unix://localhost:${p}`;
    const child = start(kind, cwd, [
      '--name', 'u', '--data-dir', path.join(cwd, 'data'),
      '--listen-client-urls', client, '--advertise-client-urls', client,
      '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer, '--initial-cluster', `u=${peer}`,
    ]);
    try {
      const sock = path.join(cwd, `localhost:${c}`);
      const r = await waitFor(`${kind} /health over unix`, START_TIMEOUT_MS, async () => {
        if (!fs.existsSync(sock)) return undefined;
        const got = await plaintextGet(() => net.connect({ path: sock }));
        return /^HTTP\/1\.1 200/.test(got.data) ? got : undefined;
      });
      expect(r.data).toContain('"health":"true"');
      expect(fs.existsSync(path.join(cwd, `localhost:${p}`))).toBe(true);
      expect(await tcpRefused(c)).toBe(true);
      expect(await tcpRefused(p)).toBe(true);
    } finally {
      child.kill('SIGKILL');
    }
  }, 60_000);
});

describe('peers over unixs:// sockets', () => {
  it('two cairn members dial each other\'s unixs:// peer socket with TLS and form a cluster', async () => {
    const [c1, c2] = await freePorts(2);
    const cwd = path.join(dir, 'pair');
    const initial = 'a=unixs://pa:1,b=unixs://pb:1';
    const members = (['a', 'b'] as const).map((n, i) => {
      const client = `http://127.0.0.1:${[c1, c2][i]}`;
      return start('cairn', cwd, [
        '--name', n, '--data-dir', path.join(cwd, `data-${n}`),
        '--listen-client-urls', client, '--advertise-client-urls', client,
        '--listen-peer-urls', `unixs://p${n}:1`, '--initial-advertise-peer-urls', `unixs://p${n}:1`, '--initial-cluster', initial,
        '--peer-cert-file', pki.server.cert, '--peer-key-file', pki.server.key, '--peer-trusted-ca-file', pki.ca,
      ]);
    });
    try {
      // Two voters: a committed write needs both, so the peers reached each other over their sockets.
      const put = await waitFor('a committed write', START_TIMEOUT_MS, async () => {
        const r = await etcdctl(`http://127.0.0.1:${c1}`, ['--command-timeout', '3s', 'put', 'over-unixs', 'yes']);
        return r.code === 0 ? r : undefined;
      });
      expect(put.stdout.trim()).toBe('OK');
      const got = await etcdctl(`http://127.0.0.1:${c2}`, ['get', 'over-unixs', '--print-value-only']);
      expect(got.stdout.trim()).toBe('yes');
      // And nothing in plaintext on either peer socket.
      for (const n of ['pa:1', 'pb:1']) expect((await plaintextGet(() => net.connect({ path: path.join(cwd, n) }))).end).toBe('closed');
    } finally {
      for (const m of members) m.kill('SIGKILL');
    }
  }, 60_000);
});

describe.each(['cairn', 'etcd'] as const)('mixed http and https client URLs (%s)', (kind) => {
  it('serves both on one member: plaintext on the http URL, TLS on the https URL, which refuses plaintext', async () => {
    const [h, s, p] = await freePorts(3);
    const cwd = path.join(dir, `${kind}-mixed`);
    const peer = `http://127.0.0.1:${p}`;
    const child = start(kind, cwd, [
      '--name', 'x', '--data-dir', path.join(cwd, 'data'),
      '--listen-client-urls', `http://127.0.0.1:${h},https://127.0.0.1:${s}`, '--advertise-client-urls', `https://127.0.0.1:${s}`,
      '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer, '--initial-cluster', `x=${peer}`,
      '--cert-file', pki.server.cert, '--key-file', pki.server.key,
    ]);
    try {
      const plain = await waitFor(`${kind} on http`, START_TIMEOUT_MS, async () => {
        const r = await etcdctl(`http://127.0.0.1:${h}`, ['put', 'mixed', 'plain']);
        return r.code === 0 ? r : undefined;
      });
      expect(plain.stdout.trim()).toBe('OK');
      const secure = await etcdctl(`https://127.0.0.1:${s}`, ['--cacert', pki.ca, 'get', 'mixed', '--print-value-only']);
      expect(secure.stdout.trim()).toBe('plain');
      const refused = await etcdctl(`http://127.0.0.1:${s}`, ['--dial-timeout', '2s', '--command-timeout', '3s', 'get', 'mixed'], { timeoutMs: 10_000 });
      expect(refused.code).not.toBe(0);
      expect(refused.stdout).not.toContain('plain');
      const r = await plaintextGet(() => net.connect({ host: '127.0.0.1', port: s }));
      expect(r.data).not.toContain('"health"');
    } finally {
      child.kill('SIGKILL');
    }
  }, 60_000);
});

describe('one scheme function for every listener and dialer', () => {
  it('dials a unixs:// peer with TLS at its socket path, a unix:// peer in plaintext, and refuses other schemes', () => {
    const info = { certFile: pki.server.cert, keyFile: pki.server.key, trustedCAFile: pki.ca, clientCertAuth: false, crlFile: '', allowedCN: '', allowedHostname: '', checkClientSAN: false, ciphers: '', minVersion: 'TLSv1.2' as const, maxVersion: undefined, autoTls: false, selfSigned: false };
    expect(peerCredentials(info, 'unixs://localhost:2380')._isSecure()).toBe(true);
    expect(peerCredentials(info, 'https://127.0.0.1:2380')._isSecure()).toBe(true);
    // A TLS peer URL is dialed with TLS even by a member without peer TLS files.
    expect(peerCredentials(undefined, 'unixs://localhost:2380')._isSecure()).toBe(true);
    expect(peerCredentials(info, 'unix://localhost:2380')._isSecure()).toBe(false);
    expect(dialAddress('unixs://localhost:2380')).toBe('unix:localhost:2380');
    expect(dialAddress('https://localhost:2380')).toBe('127.0.0.1:2380');
    expect(urlScheme('unixs://x:1')).toEqual({ secure: true, unix: true });
    expect(() => urlScheme('ftp://x:1')).toThrow(/unsupported URL scheme "ftp"/);
  });
});
