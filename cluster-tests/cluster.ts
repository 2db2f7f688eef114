/**
 * Launches N real `bin/cairn` processes on loopback, each dialling every peer through its own pair
 * proxy (proxy.ts explains why one proxy per ordered pair). The cluster is driven over the wire only:
 * processes, signals, the proxies and etcd's gRPC API (Status, MemberList/Add/Remove). It never
 * imports server/, mvcc/ or raft/.
 *
 * Every run lives in its own directory: `<dir>/<member>/` is a data dir and `<dir>/<member>.log` its
 * log (kept with the history and the report). `stop()` ends every process and proxy; a process-exit
 * hook SIGKILLs anything left if the harness itself dies.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { MemberClient } from './client';
import { LOOPBACK, PairProxy } from './proxy';
import * as grpc from '@grpc/grpc-js';
import { clientCredentials, harnessTls, tlsMemberFlags, type HarnessTls } from './tls';
import type { Prng } from './prng';

export const REPO_ROOT = path.resolve(__dirname, __dirname.includes(`${path.sep}dist${path.sep}`) ? '../..' : '..');
export const CAIRN_BIN = path.join(REPO_ROOT, 'bin', 'cairn');
/** The compiled entry point bin/cairn loads (server/etcdmain since the etcd-style layout). */
export const CAIRN_MAIN_JS = path.join(REPO_ROOT, 'dist', 'server', 'etcdmain', 'main.js');

/** etcd's defaults (100 / 1000 ms): faults are judged against the timing users run. */
export const HEARTBEAT_MS = 100;
export const ELECTION_MS = 1_000;
/**
 * Low snapshot thresholds (Jepsen's etcd suite uses 100) so snapshots and snapshot catch-up happen
 * within a run: a member behind by more than SNAPSHOT_COUNT + SNAPSHOT_CATCHUP_ENTRIES needs one.
 * The catch-up window must still outlast one snapshot install: etcd 3.4 hard-codes 5000 entries.
 * With 100 (0.5 s of writes), a member installing a 60k-entry backend (1.5–2.5 s) was behind the
 * compacted log again when it finished, and chained 30 snapshots over a minute of a long run.
 */
export const SNAPSHOT_COUNT = 200;
export const SNAPSHOT_CATCHUP_ENTRIES = 1000;
/** How long a member may take to start and see a leader. */
export const MEMBER_READY_TIMEOUT_MS = 30_000;
/** How long the whole cluster may take to agree on a leader and catch up after faults heal. */
export const CLUSTER_HEALTHY_TIMEOUT_MS = 60_000;
export const STATUS_TIMEOUT_MS = 1_000;
export const ADMIN_TIMEOUT_MS = 5_000;
export const POLL_MS = 100;
/** SIGTERM grace before SIGKILL when stopping a member. */
export const STOP_GRACE_MS = 5_000;
/** How long every member may take to show a membership change in MemberList. */
export const MEMBER_LIST_SETTLE_TIMEOUT_MS = 30_000;
/** Attempts at a membership change that fails with a retryable error. */
export const MEMBERSHIP_ATTEMPTS = 20;

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const liveChildren = new Set<ChildProcess>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const c of liveChildren) {
      try {
        c.kill('SIGCONT');
        c.kill('SIGKILL');
      } catch {
        /* already gone */
      }
    }
  });
}

async function freePorts(count: number): Promise<number[]> {
  const servers: net.Server[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const s = net.createServer();
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject);
        s.listen({ port: 0, host: LOOPBACK, exclusive: true }, () => resolve());
      });
      servers.push(s);
    }
    return servers.map((s) => (s.address() as net.AddressInfo).port);
  } finally {
    await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
  }
}

export interface MemberStatus {
  readonly id: string;
  readonly leader: string;
  readonly raftIndex: number;
  readonly raftAppliedIndex: number;
  readonly raftTerm: number;
  readonly revision: number;
}

export type MemberState = 'running' | 'killed' | 'paused' | 'removed' | 'stopping';

/** A member process that exited although nobody killed or stopped it: a cairn bug to report. */
export interface Crash {
  readonly member: string;
  readonly atIso: string;
  readonly exit: string;
  /** The first lines of the member log's last error, if any. */
  readonly logExcerpt: string;
}

/** Lines of a crashed member's log quoted in the crash report. */
export const CRASH_EXCERPT_LINES = 8;

export class Member {
  child: ChildProcess | undefined;
  state: MemberState = 'killed';
  /** Hex member ID, learned from Status once it runs. */
  id = '';
  /** This incarnation answered Status with a leader: an exit from now on is a crash, not a failed start. */
  ready = false;
  readonly admin: MemberClient;

  constructor(
    readonly cluster: Cluster,
    readonly name: string,
    readonly clientPort: number,
    readonly peerPort: number,
  ) {
    this.admin = this.newClient();
  }

  /** A client of this member (over mTLS in a --tls run). */
  newClient(): MemberClient {
    return new MemberClient(this.name, this.endpoint, this.cluster.clientCredentials());
  }

  private get scheme(): string {
    return this.cluster.tls ? 'https' : 'http';
  }

  get endpoint(): string {
    return `${LOOPBACK}:${this.clientPort}`;
  }
  get peerUrl(): string {
    return `${this.scheme}://${LOOPBACK}:${this.peerPort}`;
  }
  get clientUrl(): string {
    return `${this.scheme}://${LOOPBACK}:${this.clientPort}`;
  }
  get dataDir(): string {
    return path.join(this.cluster.dir, this.name);
  }
  get logFile(): string {
    return path.join(this.cluster.dir, `${this.name}.log`);
  }
  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  /**
   * Wiped by a member replace and not yet started as `existing`: a failed join leaves a data dir
   * without cluster state, and restarting that as `new` would bootstrap a stray cluster.
   */
  joinPending = false;

  spawn(state: 'new' | 'existing'): void {
    if (this.running) throw new Error(`${this.name} is already running`);
    const c = this.cluster;
    const overrides = c.members
      .filter((m) => m !== this)
      // Keyed by peer URL, which a replaced member keeps: its new ID is dialled through the proxy too.
      .map((m) => `${m.peerUrl}=${LOOPBACK}:${c.proxy(this.name, m.name).port}`)
      .join(',');
    const args = [
      CAIRN_BIN,
      '--name', this.name,
      '--data-dir', this.dataDir,
      '--listen-client-urls', this.clientUrl,
      '--advertise-client-urls', this.clientUrl,
      '--listen-peer-urls', this.peerUrl,
      '--initial-advertise-peer-urls', this.peerUrl,
      '--initial-cluster', c.initialCluster(),
      '--initial-cluster-state', state,
      '--initial-cluster-token', c.token,
      '--heartbeat-interval', String(HEARTBEAT_MS),
      '--election-timeout', String(ELECTION_MS),
      '--snapshot-count', String(c.snapshotCount),
      '--snapshot-catchup-entries', String(SNAPSHOT_CATCHUP_ENTRIES),
      '--peer-dial-override', overrides,
      '--log-level', 'info',
      ...(c.tls ? tlsMemberFlags(c.tls) : []),
    ];
    const fd = fs.openSync(this.logFile, 'a');
    fs.writeSync(fd, `\n=== harness ${new Date().toISOString()} start (${state}): node ${args.join(' ')}\n`);
    const env: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('ETCD_') && !k.startsWith('CAIRN_TESTING_')) env[k] = v;
    if (c.unsafeLocalReads) env.CAIRN_TESTING_UNSAFE_LOCAL_READS = '1';
    if (c.loseUnsyncedWrites) env.CAIRN_TESTING_LOSE_UNSYNCED_WRITES = '1';
    if (c.unsafeNoFsync) env.CAIRN_TESTING_UNSAFE_NO_FSYNC = '1';
    let child: ChildProcess;
    try {
      child = spawn(process.execPath, args, { stdio: ['ignore', fd, fd], env, cwd: c.dir });
    } finally {
      fs.closeSync(fd);
    }
    installExitHook();
    liveChildren.add(child);
    child.once('exit', (code, signal) => {
      liveChildren.delete(child);
      if (this.child === child && (this.state === 'running' || this.state === 'paused')) {
        this.state = 'killed';
        // A process that never became ready failed to start: waitReady reports that (with the log).
        if (!this.ready) return;
        this.cluster.crashes.push({ member: this.name, atIso: new Date().toISOString(), exit: `code ${code} signal ${signal}`, logExcerpt: this.lastError() });
        this.log(`process exited by itself (code ${code}, signal ${signal}): crash`);
      }
    });
    child.once('error', () => undefined);
    this.child = child;
    this.ready = false;
    this.state = 'running';
  }

  /** The tail of the log from its last non-JSON block (an uncaught exception's stack). */
  private lastError(): string {
    try {
      const lines = fs.readFileSync(this.logFile, 'utf8').split('\n');
      const plain = lines.filter((l) => l.trim() !== '' && !l.startsWith('{') && !l.startsWith('==='));
      return plain.slice(0, CRASH_EXCERPT_LINES).join('\n');
    } catch {
      return '';
    }
  }

  async status(timeoutMs = STATUS_TIMEOUT_MS): Promise<MemberStatus | undefined> {
    if (this.state !== 'running' || !this.running) return undefined;
    const r = await this.admin.status(timeoutMs);
    if (r.err) return undefined;
    const s = r.ok;
    return {
      id: BigInt(s.header.member_id).toString(16),
      leader: BigInt(s.leader).toString(16),
      raftIndex: Number(s.raftIndex),
      raftAppliedIndex: Number(s.raftAppliedIndex),
      raftTerm: Number(s.raftTerm),
      revision: Number(s.header.revision),
    };
  }

  async waitReady(timeoutMs = MEMBER_READY_TIMEOUT_MS): Promise<MemberStatus> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (!this.running) throw new Error(`member ${this.name} exited during start (code ${this.child?.exitCode}); see ${this.logFile}`);
      const s = await this.status();
      if (s !== undefined && s.leader !== '0') {
        this.id = s.id;
        this.ready = true;
        return s;
      }
      if (Date.now() > deadline) throw new Error(`member ${this.name} has no leader after ${timeoutMs} ms; see ${this.logFile}`);
      await sleep(POLL_MS);
    }
  }

  kill(): void {
    if (this.child && this.running) {
      this.child.kill('SIGKILL');
    }
    this.state = 'killed';
  }

  async waitExit(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    await new Promise<void>((resolve) => child.once('exit', () => resolve()));
  }

  pause(): void {
    if (this.child && this.running && this.state === 'running') {
      this.child.kill('SIGSTOP');
      this.state = 'paused';
    }
  }

  resume(): void {
    if (this.child && this.running && this.state === 'paused') {
      this.child.kill('SIGCONT');
      this.state = 'running';
    }
  }

  /** SIGTERM, then SIGKILL after STOP_GRACE_MS. */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child || !this.running) {
      this.state = 'killed';
      return;
    }
    this.state = 'stopping';
    child.kill('SIGCONT');
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
    await this.waitExit();
    clearTimeout(timer);
    this.state = 'killed';
  }

  log(what: string): void {
    try {
      fs.appendFileSync(this.logFile, `=== harness ${new Date().toISOString()} ${what}\n`);
    } catch {
      /* the log is best effort */
    }
  }
}

export interface ClusterOptions {
  readonly dir: string;
  readonly size: number;
  readonly token: string;
  /** Serve linearizable reads from local state (CAIRN_TESTING_UNSAFE_LOCAL_READS=1): the harness's self-test. */
  readonly unsafeLocalReads?: boolean;
  /** SIGKILL loses what was not fsynced, as a power cut does (CAIRN_TESTING_LOSE_UNSYNCED_WRITES=1). */
  readonly loseUnsyncedWrites?: boolean;
  /** Acknowledge writes without fsync (CAIRN_TESTING_UNSAFE_NO_FSYNC=1): the durability self-test. */
  readonly unsafeNoFsync?: boolean;
  /** --snapshot-count for every member (default SNAPSHOT_COUNT). */
  readonly snapshotCount?: number;
  /** Client and peer mTLS (--tls): certificates made into `<dir>/pki` with openssl. */
  readonly tls?: boolean;
  readonly rand: Prng;
}

export class Cluster {
  readonly members: Member[] = [];
  /** Members that exited by themselves during the run. */
  readonly crashes: Crash[] = [];
  readonly dir: string;
  readonly token: string;
  readonly unsafeLocalReads: boolean;
  readonly loseUnsyncedWrites: boolean;
  readonly unsafeNoFsync: boolean;
  readonly snapshotCount: number;
  readonly tls: HarnessTls | undefined;
  private credentials: grpc.ChannelCredentials | undefined;
  private readonly proxies = new Map<string, PairProxy>();

  private constructor(opts: ClusterOptions) {
    this.dir = opts.dir;
    this.token = opts.token;
    this.unsafeLocalReads = opts.unsafeLocalReads ?? false;
    this.loseUnsyncedWrites = opts.loseUnsyncedWrites ?? false;
    this.unsafeNoFsync = opts.unsafeNoFsync ?? false;
    this.snapshotCount = opts.snapshotCount ?? SNAPSHOT_COUNT;
    this.tls = opts.tls ? harnessTls(path.join(opts.dir, 'pki')) : undefined;
  }

  /** The harness's clients' credentials: the client certificate in a --tls run. */
  clientCredentials(): grpc.ChannelCredentials {
    this.credentials ??= this.tls ? clientCredentials(this.tls) : grpc.credentials.createInsecure();
    return this.credentials;
  }

  static async start(opts: ClusterOptions): Promise<Cluster> {
    if (opts.size < 1 || opts.size > 7) throw new Error('cluster size must be 1..7');
    if (!fs.existsSync(CAIRN_MAIN_JS)) throw new Error('dist/ is missing: run `npm run build` first');
    fs.mkdirSync(opts.dir, { recursive: true });
    const c = new Cluster(opts);
    // Every port of the run in one batch (all held at once, so pairwise distinct): a proxy that
    // took port 0 later could be handed a member's port freed a moment before the member binds it.
    const ports = await freePorts(opts.size * 2 + opts.size * (opts.size - 1));
    for (let i = 0; i < opts.size; i++) c.members.push(new Member(c, `n${i + 1}`, ports[2 * i], ports[2 * i + 1]));
    let nextProxyPort = opts.size * 2;
    for (const a of c.members) {
      for (const b of c.members) {
        if (a === b) continue;
        const p = new PairProxy(a.name, b.name, b.peerPort, opts.rand.fork(`proxy ${a.name}->${b.name}`));
        await p.listen(ports[nextProxyPort++]);
        c.proxies.set(`${a.name}->${b.name}`, p);
      }
    }
    try {
      for (const m of c.members) m.spawn('new');
      for (const m of c.members) await m.waitReady();
    } catch (e) {
      await c.stop();
      throw e;
    }
    return c;
  }

  initialCluster(): string {
    return this.members.map((m) => `${m.name}=${m.peerUrl}`).join(',');
  }

  member(name: string): Member {
    const m = this.members.find((x) => x.name === name);
    if (!m) throw new Error(`no member ${name}`);
    return m;
  }

  proxy(from: string, to: string): PairProxy {
    const p = this.proxies.get(`${from}->${to}`);
    if (!p) throw new Error(`no proxy ${from}->${to}`);
    return p;
  }

  allProxies(): PairProxy[] {
    return [...this.proxies.values()];
  }

  healNetwork(): void {
    for (const p of this.proxies.values()) p.heal();
  }

  /** The leader's name, as any running member reports it (undefined if none does). */
  async leader(): Promise<Member | undefined> {
    for (const m of this.members) {
      const s = await m.status();
      if (s === undefined || s.leader === '0') continue;
      const l = this.members.find((x) => x.id === s.leader);
      if (l) return l;
    }
    return undefined;
  }

  /**
   * Wait until every member runs, agrees on one leader and has applied as far as the leader's index
   * at the start of the wait: the "healthy again" point after faults heal.
   */
  async waitHealthy(timeoutMs = CLUSTER_HEALTHY_TIMEOUT_MS): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last = '';
    for (;;) {
      const sts = await Promise.all(this.members.map((m) => m.status()));
      const leaders = new Set(sts.map((s) => s?.leader));
      if (sts.every((s) => s !== undefined) && leaders.size === 1 && !leaders.has('0')) {
        const leader = sts.find((s) => s!.id === s!.leader);
        const target = leader?.raftIndex ?? Infinity;
        if (sts.every((s) => s!.raftAppliedIndex >= target - 0)) return;
        last = `applied ${sts.map((s) => s!.raftAppliedIndex).join('/')} < leader index ${target}`;
      } else {
        last = `statuses: ${this.members.map((m, i) => `${m.name}:${m.state}:${sts[i] ? `leader=${sts[i]!.leader}` : 'no answer'}`).join(' ')}`;
      }
      if (Date.now() > deadline) throw new Error(`cluster not healthy after ${timeoutMs} ms (${last})`);
      await sleep(POLL_MS * 2);
    }
  }

  /**
   * Member replace, as etcd's robustness MemberReplace does: remove the member, stop it, wipe its
   * data dir, add it back (a new member ID, same name and peer URL) and start it with
   * `--initial-cluster-state existing`; it catches up by snapshot.
   */
  async replaceMember(m: Member, note: (what: string) => void): Promise<void> {
    const others = (): Member[] => this.members.filter((x) => x !== m && x.state === 'running');
    const oldId = m.id;
    // A removed member stops on its own: that exit is expected, not a crash.
    m.state = 'removed';
    try {
      await this.retryMembership(`remove ${m.name}`, others, (via) => via.admin.memberRemove(BigInt('0x' + oldId).toString(), ADMIN_TIMEOUT_MS), (d) => d.includes('member not found'));
    } catch (e) {
      if (m.running) m.state = 'running'; // not removed: it is still a member and still runs
      throw e;
    }
    note(`removed ${m.name} (id ${oldId})`);
    await this.waitMemberLists(others, (ids) => !ids.has(oldId), `${oldId} removed`);
    m.kill();
    await m.waitExit();
    fs.rmSync(m.dataDir, { recursive: true, force: true });
    m.joinPending = true;
    m.log(`data dir wiped for member replace (old id ${oldId})`);
    await this.retryMembership(`add ${m.name}`, others, (via) => via.admin.memberAdd([m.peerUrl], ADMIN_TIMEOUT_MS), (d) => d.includes('Peer URLs already exists'));
    note(`added ${m.name} back`);
    // Started at once, as an operator would: the new member asks every peer and trusts the most
    // current member list, so a peer that has not applied the add yet cannot hand it the old ID.
    m.spawn('existing');
    await m.waitReady();
    m.joinPending = false;
    note(`${m.name} rejoined as ${m.id}`);
    await this.waitHealthy();
    note('cluster healthy again');
    const bypassed = await this.bypassedLinks(m);
    if (bypassed.length > 0) note(`WARNING: links not through their proxy: ${bypassed.join(', ')}`);
  }

  /**
   * Links between the leader and `m` that carry no connection through their proxy although both
   * ends run: heartbeats and their answers flow on them, so an empty proxy means a direct dial.
   */
  async bypassedLinks(m: Member): Promise<string[]> {
    await sleep(1_000);
    const leader = await this.leader();
    if (leader === undefined || leader === m) return [];
    return [this.proxy(leader.name, m.name), this.proxy(m.name, leader.name)].filter((p) => p.openConnections === 0).map((p) => `${p.from}->${p.to}`);
  }

  /**
   * Wait (bounded) until every running member's MemberList satisfies `ok`, as a careful operator and
   * etcd's robustness MemberReplace do between the steps of a replace.
   */
  private async waitMemberLists(members: () => Member[], ok: (ids: Set<string>) => boolean, what: string): Promise<void> {
    const deadline = Date.now() + MEMBER_LIST_SETTLE_TIMEOUT_MS;
    for (;;) {
      const lists = await Promise.all(members().map((x) => x.admin.memberList(STATUS_TIMEOUT_MS)));
      const settled = lists.every((r) => {
        if (!r.ok) return false;
        const ms = r.ok.members as { ID: string }[];
        return ok(new Set(ms.map((x) => BigInt(x.ID).toString(16))));
      });
      if (settled) return;
      if (Date.now() > deadline) throw new Error(`member lists did not settle (${what}) within ${MEMBER_LIST_SETTLE_TIMEOUT_MS} ms`);
      await sleep(POLL_MS);
    }
  }

  private async retryMembership(
    what: string,
    candidates: () => Member[],
    call: (via: Member) => Promise<{ err?: { details: string } }>,
    alreadyDone: (details: string) => boolean,
  ): Promise<void> {
    let lastErr = '';
    for (let attempt = 0; attempt < MEMBERSHIP_ATTEMPTS; attempt++) {
      const via = candidates()[attempt % Math.max(1, candidates().length)];
      if (via !== undefined) {
        const r = await call(via);
        if (!r.err) return;
        // A retry after an unknown outcome may find the change already made.
        if (attempt > 0 && alreadyDone(r.err.details)) return;
        lastErr = r.err.details;
      }
      await sleep(500);
    }
    throw new Error(`membership change "${what}" failed ${MEMBERSHIP_ATTEMPTS} times: ${lastErr}`);
  }

  /** Peer links that carried no connection through their proxy (a member dials the peer directly). */
  unproxiedLinks(): string[] {
    return this.allProxies()
      .filter((p) => p.acceptedTotal === 0)
      .map((p) => `${p.from}->${p.to}`);
  }

  async stop(): Promise<void> {
    await Promise.all(this.members.map((m) => m.stop()));
    for (const m of this.members) m.admin.close();
    await Promise.all(this.allProxies().map((p) => p.close()));
  }
}
