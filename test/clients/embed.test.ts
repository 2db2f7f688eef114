import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Etcd3 } from 'etcd3';
import { freePorts } from '../support/ports';
import { REPO_ROOT } from '../support/member';
import { waitFor } from '../support/cluster';
import { etcdctl } from '../support/etcdctl';
import { makePki, type TestPki } from '../support/certs';

/**
 * cairn as a library: the package's entry point (package.json "main", the built dist/) starts a
 * member in this process from etcd's flags, real clients use it, and close() releases its data dir.
 */

const dirs: string[] = [];
const pkis: TestPki[] = [];
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  for (const p of pkis) p.cleanup();
});

type EmbedApi = typeof import('../../server/embed/index');

describe('embedding a member with one import', () => {
  it("require('cairn') starts a member that the npm etcd3 client can use, and restarts from its data dir", async () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { main: string };
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const cairn = require(path.join(REPO_ROOT, pkg.main)) as EmbedApi;
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-embed-'));
    dirs.push(dir);
    const [client, peer] = await freePorts(2);
    const flags = [
      '--name', 'embedded', '--data-dir', path.join(dir, 'data'),
      '--listen-client-urls', `http://127.0.0.1:${client}`, '--advertise-client-urls', `http://127.0.0.1:${client}`,
      '--listen-peer-urls', `http://127.0.0.1:${peer}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${peer}`,
      '--initial-cluster', `embedded=http://127.0.0.1:${peer}`, '--log-level', 'error',
    ];
    const start = () => cairn.startMember(cairn.buildConfig(cairn.parseFlags(flags, {})));
    let member = await start();
    expect(member.clientAddresses).toEqual([{ host: '127.0.0.1', port: client }]);
    const etcd = new Etcd3({ hosts: `http://127.0.0.1:${client}` });
    await etcd.put('embedded/key').value('v1');
    expect(await etcd.get('embedded/key').string()).toBe('v1');
    etcd.close();
    await member.close();

    member = await start();
    const again = new Etcd3({ hosts: `http://127.0.0.1:${client}` });
    expect(await again.get('embedded/key').string()).toBe('v1');
    again.close();
    await member.close();
  });

  it('a member whose client port is taken rejects, and releases its data dir for the next try', async () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { main: string };
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const cairn = require(path.join(REPO_ROOT, pkg.main)) as EmbedApi;
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-embed-'));
    dirs.push(dir);
    const [taken, free, peer] = await freePorts(3);
    const blocker = net.createServer().listen(taken, '127.0.0.1');
    await new Promise((r) => blocker.once('listening', r));
    const flags = (client: number): string[] => [
      '--name', 'embedded', '--data-dir', path.join(dir, 'data'),
      '--listen-client-urls', `http://127.0.0.1:${client}`, '--advertise-client-urls', `http://127.0.0.1:${client}`,
      '--listen-peer-urls', `http://127.0.0.1:${peer}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${peer}`,
      '--initial-cluster', `embedded=http://127.0.0.1:${peer}`, '--log-level', 'error',
    ];
    try {
      await expect(cairn.startMember(cairn.buildConfig(cairn.parseFlags(flags(taken), {})))).rejects.toThrow(/EADDRINUSE/);
    } finally {
      blocker.close();
    }
    const member = await cairn.startMember(cairn.buildConfig(cairn.parseFlags(flags(free), {})));
    await member.close();
  });
});

/** The package by its name: Node's self-reference through package.json "exports" (the built dist/). */
// eslint-disable-next-line @typescript-eslint/no-require-imports
const byName = (): EmbedApi => require('cairn') as EmbedApi;

describe('the typed config builder and lifecycle events', () => {
  it("require('cairn') resolves through package.json exports to the same entry as main", () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { main: string; exports: Record<string, Record<string, string>> };
    expect(require.resolve('cairn')).toBe(path.join(REPO_ROOT, pkg.main));
    expect(pkg.exports['.'].types).toBe(`./${pkg.main.replace(/\.js$/, '.d.ts')}`);
    expect(fs.existsSync(path.join(REPO_ROOT, pkg.exports['.'].types))).toBe(true);
  });

  it("memberConfig fills etcd's defaults and validates as the command line does, with the same messages", () => {
    const { memberConfig, buildConfig, parseFlags, FlagError } = byName();
    const fromFlags = (argv: string[]) => buildConfig(parseFlags(argv, {}));
    expect(memberConfig()).toEqual(fromFlags([]));
    expect(memberConfig({ name: 'n1', heartbeatIntervalMs: 50, electionTimeoutMs: 500, initialCluster: { n1: 'http://127.0.0.1:2380' }, strictReconfigCheck: false })).toEqual(
      fromFlags(['--name', 'n1', '--heartbeat-interval', '50', '--election-timeout', '500', '--initial-cluster', 'n1=http://127.0.0.1:2380', '--strict-reconfig-check=false']),
    );
    expect(memberConfig({ name: 'x' }).dataDir).toBe('x.etcd');
    const message = (f: () => unknown): string => {
      try {
        f();
      } catch (e) {
        expect(e).toBeInstanceOf(FlagError);
        return (e as Error).message;
      }
      throw new Error('expected a FlagError');
    };
    // etcd's own words for each bad value, identical to the flag path's.
    const cases: [() => unknown, () => unknown, string][] = [
      [() => memberConfig({ initialClusterState: 'sideways' as 'new' }), () => fromFlags(['--initial-cluster-state', 'sideways']), 'invalid value "sideways" for flag -initial-cluster-state: valid values are "new", "existing"'],
      [() => memberConfig({ heartbeatIntervalMs: 300 }), () => fromFlags(['--heartbeat-interval', '300']), '--election-timeout[1000ms] should be at least as 5 times as --heartbeat-interval[300ms]'],
      [() => memberConfig({ snapshotCount: 1.5 }), () => fromFlags(['--snapshot-count', '1.5']), 'invalid value "1.5" for flag -snapshot-count: parse error'],
      [() => memberConfig({ listenClientUrls: 'ftp://x:1' }), () => fromFlags(['--listen-client-urls', 'ftp://x:1']), 'invalid value "ftp://x:1" for flag -listen-client-urls: URL scheme must be http, https, unix, or unixs: ftp://x:1'],
    ];
    for (const [typed, flags, expected] of cases) {
      expect(message(typed)).toBe(expected);
      expect(message(flags)).toBe(expected);
    }
    expect(message(() => memberConfig({ bogus: 1 } as never))).toBe('flag provided but not defined: -bogus');
  });

  it("an embedded member reports 'leaderChanged' and 'ready' from its start, and 'stopped' once on close", async () => {
    const { memberConfig, startMember } = byName();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-embed-'));
    dirs.push(dir);
    const [client, peer] = await freePorts(2);
    const member = await startMember(
      memberConfig({
        name: 'events', dataDir: path.join(dir, 'data'), logLevel: 'error',
        listenClientUrls: `http://127.0.0.1:${client}`, advertiseClientUrls: `http://127.0.0.1:${client}`,
        listenPeerUrls: `http://127.0.0.1:${peer}`, initialAdvertisePeerUrls: `http://127.0.0.1:${peer}`,
      }),
    );
    // Listeners attached right after startMember resolves still see what happened during the start.
    const seen: string[] = [];
    member.on('leaderChanged', ({ leader, term, isLeader }) => seen.push(`leader ${leader} ${term} ${isLeader}`));
    member.on('ready', () => seen.push('ready'));
    member.on('stopped', ({ error }) => seen.push(`stopped ${error?.message ?? 'clean'}`));
    await member.ready;
    const self = member.server.memberId.toString(16);
    await waitFor('the held start events', 5_000, () => seen.includes('ready'));
    expect(seen[0]).toMatch(new RegExp(`^leader ${self} [1-9]\\d* true$`));
    expect(seen.indexOf('ready')).toBeGreaterThan(0);
    expect(member.leader).toMatchObject({ leader: self, isLeader: true });
    const etcd = new Etcd3({ hosts: `http://127.0.0.1:${client}` });
    await etcd.put('events/k').value('v');
    etcd.close();
    await Promise.all([member.close(), member.close()]);
    expect(seen.filter((s) => s.startsWith('stopped'))).toEqual(['stopped clean']);
  });

  it("a member removed from its cluster stops by itself and emits 'stopped' with etcd's reason", async () => {
    const { memberConfig, startMember } = byName();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-embed-'));
    dirs.push(dir);
    const [c1, p1, c2, p2] = await freePorts(4);
    const url = (port: number): string => `http://127.0.0.1:${port}`;
    const common = { logLevel: 'error', heartbeatIntervalMs: 50, electionTimeoutMs: 500, strictReconfigCheck: false } as const;
    const first = await startMember(memberConfig({ ...common, name: 'one', dataDir: path.join(dir, 'one'), listenClientUrls: url(c1), advertiseClientUrls: url(c1), listenPeerUrls: url(p1), initialAdvertisePeerUrls: url(p1) }));
    await first.ready;
    const added = await etcdctl(`127.0.0.1:${c1}`, ['member', 'add', 'two', `--peer-urls=${url(p2)}`]);
    expect(added.code, added.stderr).toBe(0);
    const second = await startMember(
      memberConfig({
        ...common, name: 'two', dataDir: path.join(dir, 'two'), initialClusterState: 'existing',
        initialCluster: { one: url(p1), two: url(p2) },
        listenClientUrls: url(c2), advertiseClientUrls: url(c2), listenPeerUrls: url(p2), initialAdvertisePeerUrls: url(p2),
      }),
    );
    const stopped = new Promise<{ error?: Error }>((resolve) => second.once('stopped', resolve));
    await second.ready;
    const id = second.server.memberId.toString(16);
    const removed = await etcdctl(`127.0.0.1:${c1}`, ['member', 'remove', id]);
    // etcdctl prints IDs with %16x: a shorter ID comes with leading spaces.
    expect(removed.stdout, removed.stderr).toMatch(new RegExp(`Member\\s+${id} removed`));
    expect((await stopped).error?.message).toBe('the member has been permanently removed from the cluster');
    // It released its data dir and listeners: close() is a no-op that resolves.
    await second.close();
    await first.close();
  });

  it('memberConfig takes TLS, auth-token and metrics options into the same config fields as their flags', () => {
    const { memberConfig, buildConfig, parseFlags, FlagError } = byName();
    const fromFlags = (argv: string[]) => buildConfig(parseFlags(argv, {}));
    const typed = memberConfig({
      certFile: '/pki/server.crt', keyFile: '/pki/server.key', trustedCaFile: '/pki/ca.crt', clientCertAuth: true,
      clientCrlFile: '/pki/crl.pem', clientCertAllowedHostname: 'client.example',
      peerCertFile: '/pki/peer.crt', peerKeyFile: '/pki/peer.key', peerTrustedCaFile: '/pki/ca.crt', peerClientCertAuth: true,
      peerCrlFile: '/pki/crl.pem', peerCertAllowedCn: 'etcd-peer', peerClientCertFile: '/pki/pc.crt', peerClientKeyFile: '/pki/pc.key',
      experimentalPeerSkipClientSanVerification: true, selfSignedCertValidityYears: 2,
      cipherSuites: ['TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256', 'TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256'], tlsMinVersion: 'TLS1.2', tlsMaxVersion: 'TLS1.3',
      authToken: 'jwt,pub-key=/pki/jwt.pub,priv-key=/pki/jwt.key,sign-method=RS256', bcryptCost: 4, authTokenTtlSeconds: 60, metrics: 'extensive',
    });
    expect(typed).toEqual(
      fromFlags([
        '--cert-file=/pki/server.crt', '--key-file=/pki/server.key', '--trusted-ca-file=/pki/ca.crt', '--client-cert-auth',
        '--client-crl-file=/pki/crl.pem', '--client-cert-allowed-hostname=client.example',
        '--peer-cert-file=/pki/peer.crt', '--peer-key-file=/pki/peer.key', '--peer-trusted-ca-file=/pki/ca.crt', '--peer-client-cert-auth',
        '--peer-crl-file=/pki/crl.pem', '--peer-cert-allowed-cn=etcd-peer', '--peer-client-cert-file=/pki/pc.crt', '--peer-client-key-file=/pki/pc.key',
        '--experimental-peer-skip-client-san-verification', '--self-signed-cert-validity=2',
        '--cipher-suites=TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256', '--tls-min-version=TLS1.2', '--tls-max-version=TLS1.3',
        '--auth-token=jwt,pub-key=/pki/jwt.pub,priv-key=/pki/jwt.key,sign-method=RS256', '--bcrypt-cost=4', '--auth-token-ttl=60', '--metrics=extensive',
      ]),
    );
    expect(typed.tls.client).toMatchObject({ certFile: '/pki/server.crt', keyFile: '/pki/server.key', clientCertAuth: true });
    expect(typed.tls.peer).toMatchObject({ certFile: '/pki/peer.crt', clientCertAuth: true, allowedCN: 'etcd-peer' });
    expect(typed).toMatchObject({ metrics: 'extensive', bcryptCost: 4, authTokenTtlSeconds: 60 });
    expect(memberConfig({ autoTls: true, peerAutoTls: true }).tls).toEqual(fromFlags(['--auto-tls', '--peer-auto-tls']).tls);
    // The same validation as the flags': a bad value fails with the flag's message.
    expect(() => memberConfig({ bcryptCost: 'x' as unknown as number })).toThrow(FlagError);
    expect(() => memberConfig({ bcryptCost: 'x' as unknown as number })).toThrow('invalid value "x" for flag -bcrypt-cost: parse error');
  });

  it('an embedded member configured for mTLS by memberConfig serves a client with a certificate and refuses one without', { timeout: 60_000 }, async () => {
    const { memberConfig, startMember } = byName();
    const pki = makePki();
    pkis.push(pki);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-embed-'));
    dirs.push(dir);
    const [client, peer] = await freePorts(2);
    const url = (port: number): string => `https://127.0.0.1:${port}`;
    const member = await startMember(
      memberConfig({
        name: 'tls', dataDir: path.join(dir, 'data'), logLevel: 'error',
        listenClientUrls: url(client), advertiseClientUrls: url(client), listenPeerUrls: url(peer), initialAdvertisePeerUrls: url(peer),
        certFile: pki.server.cert, keyFile: pki.server.key, trustedCaFile: pki.ca, clientCertAuth: true,
        peerCertFile: pki.server.cert, peerKeyFile: pki.server.key, peerTrustedCaFile: pki.ca, peerClientCertAuth: true,
      }),
    );
    try {
      await member.ready;
      const ep = url(client);
      const withCert = await etcdctl(ep, [`--cacert=${pki.ca}`, `--cert=${pki.client.cert}`, `--key=${pki.client.key}`, 'put', 'tls/k', 'v']);
      expect(withCert.stdout.trim(), withCert.stderr).toBe('OK');
      const read = await etcdctl(ep, [`--cacert=${pki.ca}`, `--cert=${pki.client.cert}`, `--key=${pki.client.key}`, 'get', 'tls/k', '--print-value-only']);
      expect(read.stdout.trim()).toBe('v');
      // No client certificate: the handshake is refused, nothing is written.
      const without = await etcdctl(ep, ['--dial-timeout=2s', '--command-timeout=3s', `--cacert=${pki.ca}`, 'put', 'tls/refused', 'v']);
      expect(without.code).not.toBe(0);
      expect(without.stdout).not.toContain('OK');
      // A certificate from another CA is refused as well.
      const other = await etcdctl(ep, ['--dial-timeout=2s', '--command-timeout=3s', `--cacert=${pki.ca}`, `--cert=${pki.otherClient.cert}`, `--key=${pki.otherClient.key}`, 'put', 'tls/refused', 'v']);
      expect(other.code).not.toBe(0);
      const none = await etcdctl(ep, [`--cacert=${pki.ca}`, `--cert=${pki.client.cert}`, `--key=${pki.client.key}`, 'get', 'tls/refused']);
      expect(none.code, none.stderr).toBe(0);
      expect(none.stdout).toBe('');
      // Plain http on the https port gets nothing either.
      const plain = await etcdctl(`http://127.0.0.1:${client}`, ['--dial-timeout=2s', '--command-timeout=3s', 'get', 'tls/k']);
      expect(plain.code).not.toBe(0);
    } finally {
      await member.close();
    }
  });
});
