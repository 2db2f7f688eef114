import * as fs from 'node:fs';
import * as http from 'node:http';
import * as tls from 'node:tls';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClientListener } from '../../server/embed/client-listener';
import { buildConfig, parseFlags } from '../../server/embed/config';
import { listenMetrics } from '../../server/embed/tls-setup';
import { fingerprint256, makePki, type TestPki } from '../support/certs';
import { freePorts } from '../support/ports';

/**
 * --cipher-suites (Go names, mapped to OpenSSL's), --tls-min-version / --tls-max-version and ALPN,
 * from the flags through buildConfig to a real client listener, probed with node:tls.
 */

const log = pino({ level: 'silent' });
let pki: TestPki;
const listeners: ClientListener[] = [];

beforeAll(() => {
  pki = makePki();
});
afterAll(async () => {
  for (const l of listeners) await l.close();
  pki.cleanup();
});

async function listenWith(flags: string[]): Promise<number> {
  const cfg = buildConfig(parseFlags(['--cert-file', pki.server.cert, '--key-file', pki.server.key, ...flags], {}));
  const httpServer = http.createServer((_req, res) => res.end('{"health":"true"}'));
  const l = new ClientListener(new URL('https://127.0.0.1:0'), { grpc: (s) => s.destroy(), http: httpServer }, log, cfg.tls.client);
  await l.listen();
  listeners.push(l);
  return l.address()!.port;
}

interface Handshake {
  protocol: string | null;
  cipher: string;
  alpn: string | false | null;
}

function handshake(port: number, opts: tls.ConnectionOptions = {}): Promise<Handshake> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, ca: fs.readFileSync(pki.ca), ...opts }, () => {
      const r = { protocol: s.getProtocol(), cipher: s.getCipher().name, alpn: s.alpnProtocol };
      s.destroy();
      resolve(r);
    });
    s.once('error', reject);
  });
}

describe('TLS versions, cipher suites and ALPN', () => {
  it('--cipher-suites restricts TLS 1.2 to the named suites', async () => {
    const port = await listenWith(['--cipher-suites', 'TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256', '--tls-max-version', 'TLS1.2']);
    const ok = await handshake(port);
    expect(ok.protocol).toBe('TLSv1.2');
    expect(ok.cipher).toBe('ECDHE-ECDSA-AES128-GCM-SHA256');
    await expect(handshake(port, { ciphers: 'ECDHE-ECDSA-AES256-GCM-SHA384', maxVersion: 'TLSv1.2' })).rejects.toThrow();
  });

  it('--tls-min-version TLS1.3 refuses TLS 1.2 clients', async () => {
    const port = await listenWith(['--tls-min-version', 'TLS1.3']);
    expect((await handshake(port)).protocol).toBe('TLSv1.3');
    await expect(handshake(port, { maxVersion: 'TLSv1.2' })).rejects.toThrow();
  });

  it('serves an https --listen-metrics-urls with the client TLS settings (client certificates required)', async () => {
    const [port] = await freePorts(1);
    const cfg = buildConfig(parseFlags(['--cert-file', pki.server.cert, '--key-file', pki.server.key, '--trusted-ca-file', pki.ca, '--client-cert-auth'], {}));
    const server = await listenMetrics(new URL(`https://127.0.0.1:${port}`), (_req, res) => res.end('etcd_server_has_leader 1\n'), cfg.tls.client, log);
    try {
      const get = (withCert: boolean): Promise<string> =>
        new Promise((resolve, reject) => {
          const s = tls.connect(
            { host: '127.0.0.1', port, ca: fs.readFileSync(pki.ca), ...(withCert ? { cert: fs.readFileSync(pki.client.cert), key: fs.readFileSync(pki.client.key) } : {}) },
            () => s.write('GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'),
          );
          let got = '';
          s.on('data', (b: Buffer) => (got += b.toString()));
          s.on('end', () => resolve(got));
          s.once('error', reject);
        });
      expect(await get(true)).toContain('etcd_server_has_leader 1');
      await expect(get(false)).rejects.toThrow();
    } finally {
      server.close();
    }
  });

  it('re-reads the metrics listener\'s certificate files when they change (rotation without restart)', async () => {
    const [port] = await freePorts(1);
    const first = pki.issue('metrics-first', { cn: 'metrics' });
    const next = pki.issue('metrics-next', { cn: 'metrics' });
    const pair = { cert: `${pki.dir}/metrics.crt`, key: `${pki.dir}/metrics.key` };
    fs.copyFileSync(first.cert, pair.cert);
    fs.copyFileSync(first.key, pair.key);
    const cfg = buildConfig(parseFlags(['--cert-file', pair.cert, '--key-file', pair.key], {}));
    const server = await listenMetrics(new URL(`https://127.0.0.1:${port}`), (_req, res) => res.end('ok'), cfg.tls.client, log);
    const servedCert = (): Promise<string> =>
      new Promise((resolve, reject) => {
        const s = tls.connect({ host: '127.0.0.1', port, ca: fs.readFileSync(pki.ca) }, () => {
          const fp = s.getPeerCertificate().fingerprint256;
          s.destroy();
          resolve(fp);
        });
        s.once('error', reject);
      });
    try {
      expect(await servedCert()).toBe(fingerprint256(first.cert));
      // Swapped by rename, as cert-manager and kubelet do.
      for (const [src, dst] of [[next.key, pair.key], [next.cert, pair.cert]]) {
        fs.copyFileSync(src, `${dst}.tmp`);
        fs.renameSync(`${dst}.tmp`, dst);
      }
      expect(await servedCert()).toBe(fingerprint256(next.cert));
    } finally {
      server.close();
    }
  });

  it('gives gRPC clients h2 and HTTP clients http/1.1, and serves /health over TLS', async () => {
    const port = await listenWith([]);
    expect((await handshake(port, { ALPNProtocols: ['h2'] })).alpn).toBe('h2');
    expect((await handshake(port, { ALPNProtocols: ['h2', 'http/1.1'] })).alpn).toBe('http/1.1');
    const body = await new Promise<string>((resolve, reject) => {
      const s = tls.connect({ host: '127.0.0.1', port, ca: fs.readFileSync(pki.ca), ALPNProtocols: ['h2', 'http/1.1'] }, () =>
        s.write('GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'),
      );
      let got = '';
      s.on('data', (b: Buffer) => (got += b.toString()));
      s.on('end', () => resolve(got));
      s.once('error', reject);
    });
    expect(body).toMatch(/^HTTP\/1\.1 200/);
    expect(body).toContain('{"health":"true"}');
  });
});
