import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { etcdctl } from '../support/etcdctl';
import { makePki, type TestPki } from '../support/certs';
import { CAIRN_BIN, ETCD_BIN, trackChild } from '../support/member';
import { freePorts } from '../support/ports';
import { TLS_HANDSHAKE_TIMEOUT_MS } from '../../server/transport/tls/tls-terminator';

/**
 * A configuration that asks for security the member cannot give refuses to start (fail closed),
 * with etcd's message where etcd has one; and what TLS a member does start with holds up:
 * auto TLS, and a handshake that never finishes.
 */

/** Long enough for a member to start and exit on a configuration error. */
const EXIT_TIMEOUT_MS = 20_000;

let pki: TestPki;
let dir: string;

beforeAll(() => {
  pki = makePki();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-failclosed-'));
});
afterAll(() => {
  pki?.cleanup();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** Runs a member that is expected to exit; resolves with its exit code and combined output. */
function runToExit(kind: 'cairn' | 'etcd', args: string[]): Promise<{ code: number | null; out: string }> {
  const cmd = kind === 'etcd' ? ETCD_BIN : process.execPath;
  const full = kind === 'etcd' ? ['--logger', 'zap', ...args] : [CAIRN_BIN, ...args];
  const child = spawn(cmd, full, { stdio: ['ignore', 'pipe', 'pipe'], cwd: dir });
  trackChild(child);
  let out = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr.on('data', (b: Buffer) => (out += b.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), EXIT_TIMEOUT_MS);
  return new Promise((resolve) =>
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    }),
  );
}

async function memberArgs(name: string, client: 'http' | 'https' | 'unixs', peer: 'http' | 'https' | 'unixs'): Promise<string[]> {
  const [c, p] = await freePorts(2);
  const host = (scheme: string): string => (scheme === 'unixs' ? 'localhost' : '127.0.0.1');
  const peerUrl = `${peer}://${host(peer)}:${p}`;
  return [
    '--name', name, '--data-dir', path.join(dir, `${name}-${c}`),
    '--listen-client-urls', `${client}://${host(client)}:${c}`, '--advertise-client-urls', `${client}://${host(client)}:${c}`,
    '--listen-peer-urls', peerUrl, '--initial-advertise-peer-urls', peerUrl, '--initial-cluster', `${name}=${peerUrl}`,
  ];
}

describe('fail-closed startup', () => {
  it('refuses an https client URL without --cert-file/--key-file with etcd 3.4\'s message', async () => {
    const args = await memberArgs('a', 'https', 'http');
    const url = args[args.indexOf('--listen-client-urls') + 1];
    const want = `TLS key/cert (--cert-file, --key-file) must be provided for client url ${url} with HTTPS scheme`;
    const [ours, theirs] = await Promise.all([runToExit('cairn', args), runToExit('etcd', args)]);
    expect(theirs.out).toContain(want);
    expect(ours.out).toContain(want);
    expect(ours.code).not.toBe(0);
    expect(theirs.code).not.toBe(0);
  });

  it('refuses an https peer URL without --peer-cert-file/--peer-key-file with etcd 3.4\'s message', async () => {
    const args = await memberArgs('b', 'http', 'https');
    const host = new URL(args[args.indexOf('--listen-peer-urls') + 1]).host;
    const want = `cannot listen on TLS for ${host}: KeyFile and CertFile are not presented`;
    const [ours, theirs] = await Promise.all([runToExit('cairn', args), runToExit('etcd', args)]);
    expect(theirs.out).toContain(want);
    expect(ours.out).toContain(want);
    expect(ours.code).not.toBe(0);
  });

  it('refuses unixs:// client and peer URLs without a certificate and key, as etcd 3.4 does', async () => {
    const client = await memberArgs('u', 'unixs', 'http');
    const url = client[client.indexOf('--listen-client-urls') + 1];
    const peer = await memberArgs('v', 'http', 'unixs');
    const host = new URL(peer[peer.indexOf('--listen-peer-urls') + 1]).host;
    for (const [args, want] of [
      [client, `TLS key/cert (--cert-file, --key-file) must be provided for client url ${url} with HTTPS scheme`],
      [peer, `cannot listen on TLS for ${host}: KeyFile and CertFile are not presented`],
    ] as const) {
      const [ours, theirs] = await Promise.all([runToExit('cairn', [...args]), runToExit('etcd', [...args])]);
      expect(theirs.out).toContain(want);
      expect(ours.out).toContain(want);
      expect(ours.code).not.toBe(0);
    }
  }, 60_000);

  it('refuses TLS settings it cannot honour instead of starting without them', async () => {
    const tlsArgs = ['--cert-file', pki.server.cert, '--key-file', pki.server.key];
    const cases: [string[], string][] = [
      [['--client-cert-auth'], '--client-cert-auth requires --trusted-ca-file'],
      [['--cipher-suites', 'TLS_NOT_A_SUITE'], 'unexpected TLS cipher suite "TLS_NOT_A_SUITE"'],
      [['--tls-min-version', 'TLS1.1'], 'unexpected TLS version "TLS1.1" (must be one of: TLS1.2, TLS1.3)'],
      [['--peer-cert-allowed-cn', 'member'], '--peer-cert-allowed-cn requires --peer-client-cert-auth'],
      // A security flag cairn does not implement is fatal, never "accepted but ignored".
      [['--client-cert-file', pki.client.cert], '--client-cert-file is not implemented by cairn'],
    ];
    for (const [extra, want] of cases) {
      const r = await runToExit('cairn', [...(await memberArgs('c', 'https', 'http')), ...tlsArgs, ...extra]);
      expect(r.out, extra.join(' ')).toContain(want);
      expect(r.code, extra.join(' ')).not.toBe(0);
    }
  }, 60_000);
});

describe('auto TLS, and a handshake that never finishes', () => {
  it('--auto-tls serves https with a self-signed pair in <data-dir>/fixtures, and drops a connection that never handshakes', async () => {
    const [c, p] = await freePorts(2);
    const args = [
      '--data-dir', path.join(dir, `stall-${c}`), '--auto-tls', '--peer-auto-tls',
      '--listen-client-urls', `https://127.0.0.1:${c}`, '--advertise-client-urls', `https://127.0.0.1:${c}`,
      '--listen-peer-urls', `https://127.0.0.1:${p}`, '--initial-advertise-peer-urls', `https://127.0.0.1:${p}`, '--initial-cluster', `default=https://127.0.0.1:${p}`,
    ];
    const child = spawn(process.execPath, [CAIRN_BIN, ...args], { stdio: 'ignore', cwd: dir });
    trackChild(child);
    try {
      const url = `https://127.0.0.1:${c}`;
      const deadline = Date.now() + EXIT_TIMEOUT_MS;
      let put = await etcdctl(url, ['--insecure-skip-tls-verify', '--insecure-transport=false', 'put', 'auto', 'tls']);
      while (put.code !== 0 && Date.now() < deadline) put = await etcdctl(url, ['--insecure-skip-tls-verify', '--insecure-transport=false', 'put', 'auto', 'tls']);
      expect(put.stdout.trim()).toBe('OK');
      expect(fs.readFileSync(path.join(dir, `stall-${c}`, 'fixtures', 'client', 'cert.pem'), 'utf8')).toContain('BEGIN CERTIFICATE');
      // Connect and send nothing: the member must close the socket itself.
      const closedBy = await new Promise<string>((resolve) => {
        const s = net.connect(c, '127.0.0.1');
        const guard = setTimeout(() => {
          s.destroy();
          resolve('test');
        }, TLS_HANDSHAKE_TIMEOUT_MS + EXIT_TIMEOUT_MS);
        s.on('error', () => undefined);
        s.on('close', () => {
          clearTimeout(guard);
          resolve('server');
        });
      });
      expect(closedBy).toBe('server');
    } finally {
      child.kill('SIGKILL');
    }
  }, 90_000);
});
