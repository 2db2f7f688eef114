import * as grpc from '@grpc/grpc-js';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { connect, type EtcdClient } from './grpc-client';
import { CAIRN_BIN, ETCD_BIN, REPO_ROOT as REPO_ROOT_DIR, trackChild, type MemberKind } from './member';
import { freePorts } from './ports';

/**
 * A multi-member etcd or cairn cluster of real processes on loopback, started with identical
 * flags (the ones etcd's docs and `shared/reference/refcluster.sh` use), for process tests and the
 * cluster benchmark.
 *
 *   const c = await startCluster({ kind: 'cairn', size: 3, electionTimeoutMs: 500 });
 *   const leader = await c.leader();           // via Maintenance.Status on every running member
 *   await leader.kill();                        // SIGKILL
 *   await leader.restart();                     // same ports and data dir, waits until it sees a leader
 *   const d = c.newMember('d');                 // ports only: `etcdctl member add d --peer-urls=${d.peerUrl}`
 *   await c.join(d);                            // --initial-cluster-state existing
 *   await c.cleanup();
 *
 * Every spawned process is tracked and SIGKILLed when the test worker exits.
 */

/** How long a member may take to start and see a leader. */
export const MEMBER_READY_TIMEOUT_MS = 30_000;
/** Polling interval for readiness, leader and catch-up checks. */
export const POLL_MS = 50;
/** SIGTERM grace before SIGKILL on stop(). */
export const STOP_GRACE_MS = 5_000;
/** Deadline of each Status probe. */
export const STATUS_DEADLINE_MS = 1_000;
/** Fast Raft timing for tests: proves the same things as etcd's defaults (100 / 1000 ms), sooner. */
export const FAST_HEARTBEAT_MS = 50;
export const FAST_ELECTION_MS = 500;

export interface ClusterOptions {
  kind: MemberKind;
  /** Number of members (default 3). */
  size?: number;
  /** Member names (default a, b, c, ...). */
  names?: string[];
  heartbeatIntervalMs?: number;
  electionTimeoutMs?: number;
  snapshotCount?: number;
  snapshotCatchupEntries?: number;
  quotaBackendBytes?: number;
  /** --initial-cluster-token (default `cluster-test`). */
  token?: string;
  /** Extra flags for every member. */
  extraArgs?: string[];
  /** Parent of the members' data dirs (default: a fresh temp dir). */
  baseDir?: string;
  readyTimeoutMs?: number;
  env?: Record<string, string>;
  /** Extra node options for cairn members (e.g. --cpu-prof), placed before bin/cairn. */
  nodeArgs?: string[];
  /** Client and peer mTLS: https:// URLs, etcd's TLS flags, and a TLS client for the harness's own calls. */
  tls?: ClusterTls;
}

/** Certificate files for a TLS cluster (test/support/certs.ts makes them). */
export interface ClusterTls {
  ca: string;
  /** The members' pair (serves client and peer ports, and dials peers). */
  cert: string;
  key: string;
  /** The pair the harness's own gRPC client presents. */
  clientCert: string;
  clientKey: string;
}

/** etcd's flags for client and peer mTLS with one CA (kubeadm's layout). */
export function tlsFlags(t: ClusterTls): string[] {
  return [
    '--cert-file', t.cert, '--key-file', t.key, '--trusted-ca-file', t.ca, '--client-cert-auth',
    '--peer-cert-file', t.cert, '--peer-key-file', t.key, '--peer-trusted-ca-file', t.ca, '--peer-client-cert-auth',
  ];
}

/** etcdctl's flags to reach a TLS cluster with the harness's client pair. */
export function etcdctlTlsFlags(t: ClusterTls): string[] {
  return [`--cacert=${t.ca}`, `--cert=${t.clientCert}`, `--key=${t.clientKey}`];
}

export interface MemberStatus {
  /** Hex member ID, as etcdctl prints it. */
  id: string;
  leader: string;
  raftIndex: number;
  raftTerm: number;
  raftAppliedIndex: number;
  revision: number;
  isLearner: boolean;
  errors: string[];
  dbSize: number;
}


export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `fn` until it returns a value other than undefined/false, or throws after `timeoutMs`. */
export async function waitFor<T>(what: string, timeoutMs: number, fn: () => Promise<T | undefined | false> | T | undefined | false): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v as T;
    } catch (e) {
      lastErr = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastErr ? `: ${lastErr instanceof Error ? lastErr.message : String(lastErr)}` : ''}`);
    }
    await sleep(POLL_MS);
  }
}

function hex(id: string | bigint): string {
  return BigInt(id).toString(16);
}

export class ClusterMember {
  readonly clientUrl: string;
  readonly peerUrl: string;
  /** host:port for gRPC clients. */
  readonly endpoint: string;
  readonly dataDir: string;
  readonly logFile: string;
  private child?: ChildProcess;
  private client?: EtcdClient;
  /** Flags of the last start, reused by restart(). */
  private lastStart?: { state: 'new' | 'existing'; initialCluster: string };

  constructor(
    readonly cluster: Cluster,
    readonly name: string,
    readonly clientPort: number,
    readonly peerPort: number,
  ) {
    const scheme = cluster.opts.tls ? 'https' : 'http';
    this.clientUrl = `${scheme}://127.0.0.1:${clientPort}`;
    this.peerUrl = `${scheme}://127.0.0.1:${peerPort}`;
    this.endpoint = `127.0.0.1:${clientPort}`;
    this.dataDir = path.join(cluster.baseDir, name);
    this.logFile = path.join(cluster.baseDir, `${name}.log`);
  }

  get pid(): number {
    return this.child?.pid ?? -1;
  }

  get running(): boolean {
    return !!this.child && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** A gRPC client to this member (kept open across restarts). */
  get grpc(): EtcdClient {
    const t = this.cluster.opts.tls;
    const credentials = t ? grpc.credentials.createSsl(fs.readFileSync(t.ca), fs.readFileSync(t.clientKey), fs.readFileSync(t.clientCert)) : undefined;
    this.client ??= connect(this.endpoint, { defaultDeadlineMs: 5_000, credentials });
    return this.client;
  }

  log(): string {
    try {
      return fs.readFileSync(this.logFile, 'utf8');
    } catch {
      return '';
    }
  }

  logTail(lines = 30): string {
    return this.log().split('\n').slice(-lines).join('\n');
  }

  flags(state: 'new' | 'existing', initialCluster: string): string[] {
    const o = this.cluster.opts;
    const f = [
      '--name', this.name,
      '--data-dir', this.dataDir,
      '--listen-client-urls', this.clientUrl,
      '--advertise-client-urls', this.clientUrl,
      '--listen-peer-urls', this.peerUrl,
      '--initial-advertise-peer-urls', this.peerUrl,
      '--initial-cluster', initialCluster,
      '--initial-cluster-state', state,
      '--initial-cluster-token', o.token ?? 'cluster-test',
    ];
    if (o.heartbeatIntervalMs !== undefined) f.push('--heartbeat-interval', String(o.heartbeatIntervalMs));
    if (o.electionTimeoutMs !== undefined) f.push('--election-timeout', String(o.electionTimeoutMs));
    if (o.snapshotCount !== undefined) f.push('--snapshot-count', String(o.snapshotCount));
    if (o.snapshotCatchupEntries !== undefined) {
      // etcd 3.4 has the knob only as a compile-time constant; cairn takes the flag.
      if (this.cluster.kind === 'cairn') f.push('--snapshot-catchup-entries', String(o.snapshotCatchupEntries));
    }
    if (o.quotaBackendBytes !== undefined) f.push('--quota-backend-bytes', String(o.quotaBackendBytes));
    if (o.tls) f.push(...tlsFlags(o.tls));
    return [...f, ...(o.extraArgs ?? [])];
  }

  /** Spawn the process (does not wait); `extraArgs` apply to this start only (e.g. --force-new-cluster). */
  spawn(state: 'new' | 'existing', initialCluster: string, extraArgs: string[] = []): void {
    if (this.running) throw new Error(`${this.name} is already running`);
    this.lastStart = { state, initialCluster };
    const flags = [...this.flags(state, initialCluster), ...extraArgs];
    const cmd = this.cluster.kind === 'etcd' ? ETCD_BIN : process.execPath;
    if (this.cluster.kind === 'cairn' && !fs.existsSync(CAIRN_BIN)) throw new Error(`${CAIRN_BIN} does not exist`);
    const args = this.cluster.kind === 'etcd' ? flags : [...(this.cluster.opts.nodeArgs ?? []), CAIRN_BIN, ...flags];
    const fd = fs.openSync(this.logFile, 'a');
    fs.writeSync(fd, `\n=== ${new Date().toISOString()} ${cmd} ${args.join(' ')}\n`);
    const env: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('ETCD_') && !k.startsWith('ETCDCTL_')) env[k] = v;
    Object.assign(env, this.cluster.opts.env ?? {});
    let child: ChildProcess;
    try {
      child = spawn(cmd, args, { stdio: ['ignore', fd, fd], env, cwd: this.cluster.baseDir });
    } finally {
      fs.closeSync(fd);
    }
    trackChild(child);
    child.once('error', () => undefined);
    this.child = child;
  }

  /** Maintenance.Status of this member, or undefined if it does not answer. */
  async status(): Promise<MemberStatus | undefined> {
    if (!this.running) return undefined;
    const r = await this.grpc.status({}, { deadlineMs: STATUS_DEADLINE_MS });
    if (r.err) return undefined;
    const s = r.ok;
    return {
      id: hex(s.header.member_id),
      leader: hex(s.leader),
      raftIndex: Number(s.raftIndex),
      raftTerm: Number(s.raftTerm),
      raftAppliedIndex: Number(s.raftAppliedIndex),
      revision: Number(s.header.revision),
      isLearner: !!s.isLearner,
      errors: s.errors ?? [],
      dbSize: Number(s.dbSize),
    };
  }

  /** Waits until the member answers Status and knows a leader. */
  async waitReady(timeoutMs = this.cluster.opts.readyTimeoutMs ?? MEMBER_READY_TIMEOUT_MS): Promise<MemberStatus> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (!this.running) throw new Error(`${this.cluster.kind} member ${this.name} exited during start (code ${this.child?.exitCode}, signal ${this.child?.signalCode}); log tail:\n${this.logTail()}`);
      const s = await this.status();
      if (s && s.leader !== '0') return s;
      if (Date.now() > deadline) throw new Error(`${this.cluster.kind} member ${this.name} has no leader after ${timeoutMs} ms; log tail:\n${this.logTail()}`);
      await sleep(POLL_MS);
    }
  }

  async start(state: 'new' | 'existing', initialCluster: string, extraArgs: string[] = []): Promise<MemberStatus> {
    this.spawn(state, initialCluster, extraArgs);
    return this.waitReady();
  }

  /** SIGTERM, then SIGKILL after `graceMs`. Resolves once the process has exited. */
  async stop(graceMs = STOP_GRACE_MS): Promise<void> {
    const child = this.child;
    if (!child || !this.running) return;
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    child.kill('SIGTERM');
    const timer = setTimeout(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }, graceMs);
    await exited;
    clearTimeout(timer);
  }

  /** SIGKILL (no chance to flush anything) and wait for the exit. */
  async kill(): Promise<void> {
    const child = this.child;
    if (!child || !this.running) return;
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    child.kill('SIGKILL');
    await exited;
  }

  /** Start again on the same ports and data dir (state as at the first start); waits for a leader. */
  async restart(): Promise<MemberStatus> {
    if (!this.lastStart) throw new Error(`${this.name} was never started`);
    await this.stop();
    return this.start(this.lastStart.state, this.lastStart.initialCluster);
  }

  close(): void {
    this.client?.close();
    this.client = undefined;
  }
}

export class Cluster {
  readonly members: ClusterMember[] = [];
  readonly kind: MemberKind;

  constructor(
    readonly opts: ClusterOptions,
    readonly baseDir: string,
  ) {
    this.kind = opts.kind;
  }

  /** Members whose process is running. */
  get running(): ClusterMember[] {
    return this.members.filter((m) => m.running);
  }

  /** Client endpoints (host:port) of the running members, comma-joined for etcdctl and etcdload. */
  endpoints(members: ClusterMember[] = this.running): string {
    return members.map((m) => m.endpoint).join(',');
  }

  /** `name=peerURL,...` for --initial-cluster. */
  initialCluster(members: ClusterMember[] = this.members): string {
    return members.map((m) => `${m.name}=${m.peerUrl}`).join(',');
  }

  member(name: string): ClusterMember {
    const m = this.members.find((x) => x.name === name);
    if (!m) throw new Error(`no member ${name}`);
    return m;
  }

  /** Allocates ports for a member that is not in the cluster yet (add it with MemberAdd, then join()). */
  async newMember(name: string): Promise<ClusterMember> {
    const [client, peer] = await freePorts(2);
    const m = new ClusterMember(this, name, client, peer);
    this.members.push(m);
    return m;
  }

  /** Starts a member added through MemberAdd: --initial-cluster-state existing, every member listed. */
  join(m: ClusterMember, members: ClusterMember[] = this.members): Promise<MemberStatus> {
    return m.start('existing', this.initialCluster(members));
  }

  /** Status of every running member that answers. */
  async statuses(members: ClusterMember[] = this.running): Promise<{ member: ClusterMember; status: MemberStatus }[]> {
    const out = await Promise.all(members.map(async (member) => ({ member, status: await member.status() })));
    return out.filter((x): x is { member: ClusterMember; status: MemberStatus } => x.status !== undefined);
  }

  /**
   * The running member that is leader by its own Status and that every other answering member
   * agrees on; waits up to `timeoutMs` for such a member.
   */
  async leader(timeoutMs = MEMBER_READY_TIMEOUT_MS, among: ClusterMember[] = this.running): Promise<ClusterMember> {
    return waitFor('an agreed leader', timeoutMs, async () => {
      const st = await this.statuses(among);
      const self = st.filter((x) => x.status.id === x.status.leader);
      if (self.length !== 1) return undefined;
      const id = self[0].status.id;
      if (!st.every((x) => x.status.leader === id)) return undefined;
      return self[0].member;
    });
  }

  /** Waits until every given member has applied at least `index`. */
  async waitApplied(index: number, members: ClusterMember[] = this.running, timeoutMs = MEMBER_READY_TIMEOUT_MS): Promise<void> {
    await waitFor(`members ${members.map((m) => m.name).join(',')} to apply index ${index}`, timeoutMs, async () => {
      const st = await Promise.all(members.map((m) => m.status()));
      return st.every((s) => s !== undefined && s.raftAppliedIndex >= index);
    });
  }

  /** Waits until the given members report the same raft index, applied index and revision; returns the statuses. */
  async waitConverged(members: ClusterMember[] = this.running, timeoutMs = MEMBER_READY_TIMEOUT_MS): Promise<MemberStatus[]> {
    return waitFor(`members ${members.map((m) => m.name).join(',')} to converge`, timeoutMs, async () => {
      const st = await Promise.all(members.map((m) => m.status()));
      if (st.some((s) => s === undefined)) return undefined;
      const all = st as MemberStatus[];
      const same = (f: (s: MemberStatus) => number) => all.every((s) => f(s) === f(all[0]));
      return same((s) => s.raftIndex) && same((s) => s.raftAppliedIndex) && same((s) => s.revision) ? all : undefined;
    });
  }

  async stopAll(): Promise<void> {
    await Promise.all(this.members.map((m) => m.stop()));
  }

  async cleanup(): Promise<void> {
    await this.stopAll();
    for (const m of this.members) m.close();
    if (process.env.CAIRN_TEST_KEEP_TMP !== '1' && !this.opts.baseDir) fs.rmSync(this.baseDir, { recursive: true, force: true });
  }
}

/** Starts a new cluster of `size` members and waits until every member sees the same leader. */
export async function startCluster(opts: ClusterOptions): Promise<Cluster> {
  const size = opts.size ?? 3;
  const names = opts.names ?? Array.from({ length: size }, (_, i) => String.fromCharCode(97 + i));
  let lastErr: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    const baseDir = opts.baseDir ?? fs.mkdtempSync(path.join(os.tmpdir(), `cairn-cluster-${opts.kind}-`));
    fs.mkdirSync(baseDir, { recursive: true });
    const c = new Cluster(opts, baseDir);
    const ports = await freePorts(2 * size);
    for (let i = 0; i < size; i++) c.members.push(new ClusterMember(c, names[i], ports[2 * i], ports[2 * i + 1]));
    const ic = c.initialCluster();
    try {
      for (const m of c.members) m.spawn('new', ic);
      await Promise.all(c.members.map((m) => m.waitReady()));
      await c.leader();
      return c;
    } catch (e) {
      lastErr = e;
      const inUse = c.members.some((m) => /address already in use|EADDRINUSE/i.test(m.log()));
      await c.cleanup();
      if (!inUse) throw e;
    }
  }
  throw lastErr;
}

// ---------------------------------------------------------------- Go clientv3 load (etcdload)

export interface LoadResult {
  ops: number;
  errors: number;
  qps: number;
  p50: number;
  p99: number;
  max: number;
  line: string;
}

/** Builds tools/etcdload (the repo's copy) once into .bench/etcdload (the same binary `npm run bench` uses). */
export function buildEtcdload(): string {
  const out = path.join(REPO_ROOT_DIR, '.bench', 'etcdload');
  // Rebuilt when its source changed (a binary from before the TLS flags would not take -cacert).
  const source = path.resolve(REPO_ROOT_DIR, 'tools/etcdload/main.go');
  if (fs.existsSync(out) && fs.statSync(out).mtimeMs >= fs.statSync(source).mtimeMs) return out;
  fs.mkdirSync(path.dirname(out), { recursive: true });
  const script = path.resolve(REPO_ROOT_DIR, 'tools/etcdload/build.sh');
  execFileSync('bash', [script, out], { stdio: ['ignore', 'ignore', 'inherit'] });
  return out;
}

export function parseLoadLine(line: string): LoadResult {
  const field = (k: string): number => Number(new RegExp(`${k}=([0-9.]+)`).exec(line)?.[1] ?? NaN);
  return { ops: field('ops'), errors: field('errors'), qps: field('qps'), p50: field('p50_ms'), p99: field('p99_ms'), max: field('max_ms'), line: line.trim() };
}

/** A running etcdload: `started` once its connections are up, `stop()` ends it early (SIGINT). */
export interface LoadRun {
  started: Promise<void>;
  done: Promise<LoadResult>;
  /** Whether the load still runs (it ends at `stop()` or after its maximum duration). */
  readonly running: boolean;
  stop(): Promise<LoadResult>;
}

/** Starts etcdload (`-endpoints eps -duration maxDuration ...args`) in the background. */
export function startEtcdload(endpoints: string, args: string[], maxDuration: string): LoadRun {
  const bin = buildEtcdload();
  const child = spawn(bin, ['-endpoints', endpoints, '-duration', maxDuration, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  trackChild(child);
  let out = '';
  let err = '';
  let running = true;
  let markStarted: () => void = () => undefined;
  const started = new Promise<void>((resolve) => (markStarted = resolve));
  child.stdout!.on('data', (b: Buffer) => {
    out += b.toString();
    if (/^started$/m.test(out)) markStarted();
  });
  child.stderr!.on('data', (b: Buffer) => (err += b.toString()));
  const done = new Promise<LoadResult>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => {
      running = false;
      if (code !== 0 || !/ops=/.test(out)) reject(new Error(`etcdload exited ${code}: ${out}${err}`));
      else resolve(parseLoadLine(out.slice(out.indexOf('op='))));
    });
  });
  // A load that fails before it started must fail the waiter on `started` too.
  const startedOrFailed = Promise.race([started, done.then(() => undefined)]);
  return {
    started: startedOrFailed,
    done,
    get running() {
      return running;
    },
    stop() {
      if (running) child.kill('SIGINT');
      return done;
    },
  };
}

/** Runs etcdload in the background (`-endpoints eps -duration d ...args`); resolves with its summary. */
export function runEtcdload(endpoints: string, args: string[], duration: string): Promise<LoadResult> {
  return startEtcdload(endpoints, args, duration).done;
}
