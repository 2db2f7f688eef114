import { Etcd3 } from 'etcd3';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { etcdctl, etcdctlReconfig } from '../support/etcdctl';
import { etcdctlTlsFlags, runEtcdload, startCluster, waitFor, type Cluster, type ClusterTls } from '../support/cluster';
import { fingerprint256, makePki, type TestPki } from '../support/certs';
import { b64 } from '../gateway/gateway-client';

/**
 * A 3-member cairn cluster with client and peer mTLS (kubeadm's layout: one CA, --client-cert-auth
 * and --peer-client-cert-auth), driven by etcdctl, Go clientv3 (tools/etcdload) and npm etcd3.
 * What a refused client sees is compared with a real etcd 3.4 member started with the same flags.
 */

const TLS_SERVED_TIMEOUT_MS = 30_000;

let pki: TestPki;
let cluster: Cluster;
let etcd: Cluster;
let t: ClusterTls;

function served(endpoint: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const [host, port] = endpoint.split(':');
    const s = tls.connect({ host, port: Number(port), ca: fs.readFileSync(pki.ca), cert: fs.readFileSync(pki.client.cert), key: fs.readFileSync(pki.client.key), ALPNProtocols: ['h2'] }, () => {
      const fp = s.getPeerCertificate().fingerprint256;
      s.destroy();
      resolve(fp);
    });
    s.once('error', reject);
  });
}

/** Writes `src`'s content to `dst` by rename, as cert-manager and kubelet swap files. */
function swapIn(src: string, dst: string): void {
  fs.copyFileSync(src, `${dst}.tmp`);
  fs.renameSync(`${dst}.tmp`, dst);
}

beforeAll(async () => {
  pki = makePki();
  // The members' pair lives in its own files so rotating it does not touch the other fixtures.
  const member = pki.issue('member', { cn: 'member' });
  t = { ca: pki.ca, cert: member.cert, key: member.key, clientCert: pki.client.cert, clientKey: pki.client.key };
  [cluster, etcd] = await Promise.all([
    startCluster({ kind: 'cairn', size: 3, heartbeatIntervalMs: 50, electionTimeoutMs: 500, tls: t }),
    startCluster({ kind: 'etcd', size: 1, tls: t }),
  ]);
}, 90_000);

afterAll(async () => {
  await cluster?.cleanup();
  await etcd?.cleanup();
  pki?.cleanup();
});

describe('3-member cluster with client and peer mTLS', () => {
  it('serves etcdctl with a CA-signed client certificate, on every member', async () => {
    const eps = cluster.members.map((m) => m.clientUrl);
    const put = await etcdctl(eps[0], [...etcdctlTlsFlags(t), 'put', 'tls-key', 'v1']);
    expect(put.stdout.trim()).toBe('OK');
    for (const ep of eps) {
      const get = await etcdctl(ep, [...etcdctlTlsFlags(t), 'get', 'tls-key', '--print-value-only']);
      expect(get.stdout.trim()).toBe('v1');
    }
    // The peers talk TLS too: the other members only have the value through Raft over https.
    expect(cluster.members.every((m) => m.peerUrl.startsWith('https://'))).toBe(true);
  });

  it('refuses a client without a certificate, with another CA\'s certificate, or in plaintext, as etcd does', async () => {
    const attempts: [string, (url: string) => string, string[]][] = [
      ['no certificate', (u) => u, [`--cacert=${pki.ca}`]],
      ['other CA', (u) => u, [`--cacert=${pki.ca}`, `--cert=${pki.otherClient.cert}`, `--key=${pki.otherClient.key}`]],
      ['plaintext', (u) => u.replace('https://', 'http://'), []],
    ];
    for (const [what, url, flags] of attempts) {
      const args = ['--dial-timeout=1s', '--command-timeout=2s', ...flags, 'put', 'refused', what];
      const [ours, theirs] = await Promise.all([etcdctl(url(cluster.members[0].clientUrl), args), etcdctl(url(etcd.members[0].clientUrl), args)]);
      expect(ours.code, what).not.toBe(0);
      expect(ours.stderr, what).toContain('context deadline exceeded');
      expect(theirs.code, what).not.toBe(0);
      expect(lastLine(ours.stderr), what).toBe(lastLine(theirs.stderr));
    }
    const get = await etcdctl(cluster.members[1].clientUrl, [...etcdctlTlsFlags(t), 'get', 'refused']);
    expect(get.stdout).toBe('');
    expect(cluster.members[0].log()).toContain('rejected connection');
  });

  it('answers plain HTTP on a TLS port with no HTTP response, as etcd does', async () => {
    const probe = (endpoint: string): Promise<string> =>
      new Promise((resolve) => {
        const [host, port] = endpoint.split(':');
        const s = net.connect(Number(port), host, () => s.write(`GET /health HTTP/1.1\r\nHost: ${endpoint}\r\n\r\n`));
        let got = '';
        s.on('data', (b: Buffer) => (got += b.toString('latin1')));
        s.on('close', () => resolve(got));
        s.on('error', () => undefined);
      });
    const [ours, theirs] = await Promise.all([probe(cluster.members[0].endpoint), probe(etcd.members[0].endpoint)]);
    expect(ours).not.toContain('HTTP/1.');
    expect(theirs).not.toContain('HTTP/1.');
  });

  it('serves the JSON gateway over https to curl with a client certificate, as etcd does', async () => {
    const curl = (url: string, path: string, body: object, cert = true): Promise<{ code: number | null; out: string }> =>
      new Promise((resolve) => {
        const certArgs = cert ? ['--cert', pki.client.cert, '--key', pki.client.key] : [];
        const child = spawn('curl', ['-sS', '--max-time', '5', '--cacert', pki.ca, ...certArgs, '-X', 'POST', '-d', JSON.stringify(body), `${url}${path}`]);
        let out = '';
        child.stdout.on('data', (b: Buffer) => (out += b.toString()));
        child.stderr.on('data', (b: Buffer) => (out += b.toString()));
        child.on('close', (code) => resolve({ code, out }));
      });
    const mask = (out: string): string => out.replace(/"(cluster_id|member_id|raft_term|revision|create_revision|mod_revision)":"\d+"/g, '"$1":"X"');
    const run = async (url: string): Promise<string[]> => [
      mask((await curl(url, '/v3/kv/put', { key: b64('gw-tls'), value: b64('over https') })).out),
      mask((await curl(url, '/v3/kv/range', { key: b64('gw-tls') })).out),
      // Without a client certificate the handshake is refused: curl gets no HTTP answer.
      String((await curl(url, '/v3/kv/range', { key: b64('gw-tls') }, false)).code !== 0),
    ];
    const [ours, theirs] = await Promise.all([run(cluster.members[0].clientUrl), run(etcd.members[0].clientUrl)]);
    expect(ours).toEqual(theirs);
    expect(ours[1]).toContain(b64('over https'));
    expect(ours[2]).toBe('true');
  });

  it('serves Go clientv3 (etcdload) and the npm etcd3 client over mTLS', async () => {
    const r = await runEtcdload(cluster.endpoints(), ['-conns', '2', '-clients', '4', '-cacert', pki.ca, '-cert', pki.client.cert, '-key', pki.client.key], '2s');
    expect(r.ops).toBeGreaterThan(0);
    expect(r.errors).toBe(0);
    const client = new Etcd3({
      hosts: cluster.members.map((m) => m.clientUrl),
      credentials: { rootCertificate: fs.readFileSync(pki.ca), privateKey: fs.readFileSync(pki.client.key), certChain: fs.readFileSync(pki.client.cert) },
    });
    try {
      await client.put('etcd3-tls').value('yes');
      expect(await client.get('etcd3-tls').string()).toBe('yes');
    } finally {
      client.close();
    }
  }, 60_000);

  it('stays healthy over TLS when a member is killed with SIGKILL and restarted', async () => {
    // The leader, so the survivors must also elect a new one over peer TLS.
    const victim = await cluster.leader();
    const survivor = cluster.members.find((m) => m !== victim)!;
    await victim.kill();
    try {
      // The first attempts may meet the election ("leader changed", a timeout), as with etcd.
      const put = await waitFor('a put while a member is down', TLS_SERVED_TIMEOUT_MS, async () => {
        const r = await etcdctl(survivor.clientUrl, [...etcdctlTlsFlags(t), '--command-timeout=2s', 'put', 'during-kill', 'x']);
        return r.code === 0 ? r : undefined;
      });
      expect(put.stdout.trim()).toBe('OK');
    } finally {
      await victim.restart();
    }
    await cluster.waitConverged();
    const get = await etcdctl(victim.clientUrl, [...etcdctlTlsFlags(t), 'get', 'during-kill', '--print-value-only']);
    expect(get.stdout.trim()).toBe('x');
    const health = await etcdctl(cluster.members.map((m) => m.clientUrl), [...etcdctlTlsFlags(t), 'endpoint', 'health']);
    expect(health.code).toBe(0);
    // etcdctl 3.4 prints the health lines on stderr.
    expect(`${health.stdout}${health.stderr}`.match(/is healthy/g)?.length ?? 0).toBe(3);
  }, 60_000);

  it('lists every member with etcdctl --cluster and lets a new member join over peer TLS', async () => {
    const status = await etcdctl(cluster.members[0].clientUrl, [...etcdctlTlsFlags(t), 'endpoint', 'status', '--cluster']);
    expect(status.code).toBe(0);
    expect(status.stdout.trim().split('\n').filter((l) => l.startsWith('https://'))).toHaveLength(3);
    const d = await cluster.newMember('d');
    const add = await etcdctlReconfig(cluster.members[0].clientUrl, [...etcdctlTlsFlags(t), 'member', 'add', 'd', `--peer-urls=${d.peerUrl}`]);
    expect(add.stdout).toContain('Member');
    // The joining member fetches the member list from its peers over TLS, then catches up.
    await cluster.join(d);
    const get = await etcdctl(d.clientUrl, [...etcdctlTlsFlags(t), 'get', 'tls-key', '--print-value-only']);
    expect(get.stdout.trim()).toBe('v1');
  }, 60_000);

  it('rotates the server certificate while a client keeps writing; a garbage file keeps the last good one', async () => {
    const m = cluster.members[0];
    expect(await served(m.endpoint)).toBe(fingerprint256(t.cert));
    let writes = 0;
    const failures: string[] = [];
    let stop = false;
    const writer = (async () => {
      while (!stop) {
        const r = await m.grpc.put({ key: Buffer.from('rotating'), value: Buffer.from(String(writes)) });
        if (r.err) failures.push(r.err.details);
        else writes++;
      }
    })();
    const next = pki.issue('member-next', { cn: 'member' });
    swapIn(next.key, t.key);
    swapIn(next.cert, t.cert);
    const nextFp = fingerprint256(next.cert);
    await waitFor('the new certificate to be served', TLS_SERVED_TIMEOUT_MS, async () => (await served(m.endpoint)) === nextFp);
    // A new connection (etcdctl) is served with the new certificate, which the CA also signed.
    expect((await etcdctl(m.clientUrl, [...etcdctlTlsFlags(t), 'put', 'after-rotation', 'y'])).stdout.trim()).toBe('OK');
    fs.writeFileSync(t.cert, 'this is not a certificate\n');
    await waitFor('the reload failure to be logged', TLS_SERVED_TIMEOUT_MS, async () => {
      await served(m.endpoint).catch(() => undefined);
      return m.log().includes('failed to reload TLS certificate files');
    });
    expect(await served(m.endpoint)).toBe(nextFp);
    const before = writes;
    await waitFor('more writes', TLS_SERVED_TIMEOUT_MS, () => writes > before + 10);
    stop = true;
    await writer;
    expect(failures).toEqual([]);
    swapIn(next.cert, t.cert);
  }, 90_000);
});

function lastLine(s: string): string {
  const lines = s.trim().split('\n');
  return lines[lines.length - 1];
}
