/**
 * npm run e2e:patroni: Patroni, a real etcd3 client that speaks only the JSON gateway (/v3/kv/range,
 * /v3/kv/txn, /v3/lease/*, /v3/watch), manages two PostgreSQL nodes on a 3-member cairn cluster.
 *
 *   1. both nodes bootstrap: one primary, one replica streaming from it (a row written on the
 *      primary is read on the replica);
 *   2. SIGKILL of the primary's Patroni and PostgreSQL: the replica is promoted within the TTL of
 *      the leader key (plus one loop_wait, the longest Patroni waits before it looks again);
 *   3. the old primary, restarted, rejoins as a replica of the new primary and streams from it.
 *
 * Needs Debian's `patroni` and `postgresql` and root (Patroni and PostgreSQL run as the `postgres`
 * user: both refuse root). Build first (`npm run build`). Prints one line per step and the timings;
 * exits non-zero on the first failed step. Every process it starts is stopped by its pid.
 * `npm run e2e:patroni -- --etcd` runs the same steps with etcd 3.4 as the DCS, for comparison.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { startCluster, waitFor, type Cluster } from '../test/support/cluster';
import { freePorts } from '../test/support/ports';

/** Patroni's DCS timings (bootstrap.dcs): loop_wait + 2 * retry_timeout <= ttl, as Patroni requires. */
const TTL_S = 20;
const LOOP_WAIT_S = 5;
const RETRY_TIMEOUT_S = 5;
const PG_USER = 'postgres';
/** `--etcd` runs the same steps on a 3-member etcd 3.4 cluster, for comparison. */
const DCS = process.argv.includes('--etcd') ? 'etcd' : 'cairn';
const BOOTSTRAP_TIMEOUT_MS = 120_000;
const REJOIN_TIMEOUT_MS = 120_000;

function pgBinDir(): string {
  const root = '/usr/lib/postgresql';
  const versions = fs.existsSync(root) ? fs.readdirSync(root).filter((v) => fs.existsSync(path.join(root, v, 'bin/postgres'))) : [];
  if (versions.length === 0) throw new Error('PostgreSQL is not installed (apt-get install -y postgresql patroni)');
  return path.join(root, versions.sort((a, b) => Number(b) - Number(a))[0], 'bin');
}

interface Node {
  name: string;
  dir: string;
  pgPort: number;
  apiPort: number;
  config: string;
  proc?: ChildProcess;
}

function nodeConfig(n: Node, hosts: string, binDir: string): string {
  return `scope: cairn-e2e
name: ${n.name}
log:
  level: INFO
  dir: ${n.dir}
restapi:
  listen: 127.0.0.1:${n.apiPort}
  connect_address: 127.0.0.1:${n.apiPort}
etcd3:
  hosts: ${hosts}
bootstrap:
  dcs:
    ttl: ${TTL_S}
    loop_wait: ${LOOP_WAIT_S}
    retry_timeout: ${RETRY_TIMEOUT_S}
    maximum_lag_on_failover: 1048576
    postgresql:
      use_pg_rewind: true
      parameters:
        wal_log_hints: "on"
  initdb:
    - encoding: UTF8
  pg_hba:
    - local all all trust
    - host replication replicator 127.0.0.1/32 md5
    - host all all 127.0.0.1/32 md5
postgresql:
  listen: 127.0.0.1:${n.pgPort}
  connect_address: 127.0.0.1:${n.pgPort}
  data_dir: ${n.dir}/data
  bin_dir: ${binDir}
  pgpass: ${n.dir}/pgpass
  authentication:
    replication: { username: replicator, password: rep-pass }
    superuser: { username: postgres, password: su-pass }
    rewind: { username: rewinder, password: rewind-pass }
  parameters:
    unix_socket_directories: ${n.dir}
`;
}

function startPatroni(n: Node): void {
  const out = fs.openSync(path.join(n.dir, 'patroni.out'), 'a');
  n.proc = spawn('runuser', ['-u', PG_USER, '--', 'patroni', n.config], { stdio: ['ignore', out, out] });
}

/** Patroni's REST API: GET /primary and /replica answer 200 only in that role (and running). */
async function role(n: Node): Promise<'primary' | 'replica' | undefined> {
  for (const r of ['primary', 'replica'] as const) {
    try {
      const res = await fetch(`http://127.0.0.1:${n.apiPort}/${r}`, { signal: AbortSignal.timeout(2000) });
      await res.text();
      if (res.status === 200) return r;
    } catch {
      /* not up */
    }
  }
  return undefined;
}

async function patroniState(n: Node): Promise<{ replication?: { application_name: string; state: string }[] }> {
  const res = await fetch(`http://127.0.0.1:${n.apiPort}/patroni`, { signal: AbortSignal.timeout(2000) });
  return (await res.json()) as { replication?: { application_name: string; state: string }[] };
}

async function streamingTo(primary: Node, replica: Node): Promise<boolean> {
  try {
    const s = await patroniState(primary);
    return (s.replication ?? []).some((r) => r.application_name === replica.name && r.state === 'streaming');
  } catch {
    return false;
  }
}

function psql(n: Node, sql: string): string {
  const args = ['-u', PG_USER, '--', 'psql', '-h', n.dir, '-p', String(n.pgPort), '-U', 'postgres', '-d', 'postgres', '-Atc', sql];
  return execFileSync('runuser', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
}

function inRecovery(n: Node): string | undefined {
  try {
    return psql(n, 'SELECT pg_is_in_recovery()');
  } catch {
    return undefined;
  }
}

/** The postmaster's pid, from the first line of postmaster.pid. */
function postmasterPid(n: Node): number | undefined {
  try {
    return Number(fs.readFileSync(path.join(n.dir, 'data/postmaster.pid'), 'utf8').split('\n')[0]) || undefined;
  } catch {
    return undefined;
  }
}

function alive(pid: number | undefined): boolean {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function killPid(pid: number | undefined, signal: NodeJS.Signals): void {
  if (!pid) return;
  try {
    process.kill(pid, signal);
  } catch {
    /* already gone */
  }
}

/** runuser forks Patroni as a child; the Patroni process itself is the child of that runuser. */
function childPids(pid: number): number[] {
  try {
    return execFileSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' }).split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

function step(msg: string): void {
  console.log(`[e2e:patroni] ${msg}`);
}

async function main(): Promise<void> {
  const binDir = pgBinDir();
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-patroni-'));
  fs.chmodSync(base, 0o755);
  let cluster: Cluster | undefined;
  const nodes: Node[] = [];
  const t0 = Date.now();
  try {
    cluster = await startCluster({ kind: DCS, size: 3, baseDir: path.join(base, DCS) });
    const hosts = cluster.members.map((m) => m.endpoint).join(',');
    step(`${DCS} cluster up: ${hosts}`);
    const ports = await freePorts(4);
    for (const [i, name] of ['pg1', 'pg2'].entries()) {
      const dir = path.join(base, name);
      fs.mkdirSync(dir, { mode: 0o700 });
      const n: Node = { name, dir, pgPort: ports[2 * i], apiPort: ports[2 * i + 1], config: path.join(dir, 'patroni.yml') };
      fs.writeFileSync(n.config, nodeConfig(n, hosts, binDir));
      execFileSync('chown', ['-R', `${PG_USER}:`, dir]);
      nodes.push(n);
    }
    for (const n of nodes) startPatroni(n);

    // 1. Bootstrap: a primary and a streaming replica.
    const roles = await waitFor('a primary and a replica', BOOTSTRAP_TIMEOUT_MS, async () => {
      const r = await Promise.all(nodes.map(role));
      return r.includes('primary') && r.includes('replica') ? r : undefined;
    });
    const primary = nodes[roles.indexOf('primary')];
    const replica = nodes[roles.indexOf('replica')];
    await waitFor(`${replica.name} streaming from ${primary.name}`, BOOTSTRAP_TIMEOUT_MS, () => streamingTo(primary, replica));
    psql(primary, "CREATE TABLE e2e (v text); INSERT INTO e2e VALUES ('before failover')");
    await waitFor('the row on the replica', 30_000, () => {
      try {
        return psql(replica, 'SELECT v FROM e2e') === 'before failover';
      } catch {
        return false;
      }
    });
    step(`bootstrap: ${primary.name} primary, ${replica.name} streaming replica (${((Date.now() - t0) / 1000).toFixed(1)} s)`);

    // 2. SIGKILL the primary's Patroni and PostgreSQL.
    const pm = postmasterPid(primary);
    const patroniPids = childPids(primary.proc!.pid!);
    const killedAt = Date.now();
    for (const pid of patroniPids) killPid(pid, 'SIGKILL');
    killPid(primary.proc!.pid, 'SIGKILL');
    killPid(pm, 'SIGKILL');
    const limitMs = (TTL_S + LOOP_WAIT_S) * 1000;
    // Promoted: Patroni holds the leader key and PostgreSQL has left recovery (accepts writes).
    await waitFor(`${replica.name} promoted`, limitMs, async () => (await role(replica)) === 'primary' && inRecovery(replica) === 'f');
    const promotedS = (Date.now() - killedAt) / 1000;
    psql(replica, "INSERT INTO e2e VALUES ('after failover')");
    step(`failover: ${replica.name} promoted ${promotedS.toFixed(1)} s after the SIGKILL (ttl ${TTL_S} s, loop_wait ${LOOP_WAIT_S} s)`);

    // 3. The old primary rejoins as a replica of the new one.
    await waitFor('the killed postgres to exit', 30_000, () => !alive(pm));
    startPatroni(primary);
    await waitFor(`${primary.name} back as a replica`, REJOIN_TIMEOUT_MS, async () => (await role(primary)) === 'replica');
    await waitFor(`${primary.name} streaming from ${replica.name}`, REJOIN_TIMEOUT_MS, () => streamingTo(replica, primary));
    await waitFor('the new row on the rejoined node', 30_000, () => {
      try {
        return psql(primary, 'SELECT count(*) FROM e2e') === '2';
      } catch {
        return false;
      }
    });
    step(`rejoin: ${primary.name} streams from ${replica.name}; total ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    step('PASS');
  } finally {
    for (const n of nodes) {
      const pids = n.proc?.pid ? childPids(n.proc.pid) : [];
      for (const pid of pids) killPid(pid, 'SIGTERM');
      killPid(n.proc?.pid, 'SIGTERM');
    }
    await Promise.all(
      nodes.map((n) =>
        waitFor(`${n.name}'s postgres to stop`, 30_000, () => !alive(postmasterPid(n))).catch(() => killPid(postmasterPid(n), 'SIGKILL')),
      ),
    );
    // Patroni stops its PostgreSQL and then itself; the DCS must outlive both.
    await Promise.all(nodes.map((n) => waitFor(`${n.name}'s Patroni to exit`, 30_000, () => !alive(n.proc?.pid)).catch(() => killPid(n.proc?.pid, 'SIGKILL'))));
    await cluster?.cleanup();
    if (process.env.CAIRN_E2E_KEEP !== '1') fs.rmSync(base, { recursive: true, force: true });
    else step(`kept ${base}`);
  }
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(`[e2e:patroni] FAIL: ${e instanceof Error ? e.message : String(e)}`);
    process.exit(1);
  },
);
