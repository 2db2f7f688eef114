import type { Logger } from 'pino';
import { RaftError, type Message, type Snapshot } from '../../raft';
import type { KvStore } from '../../mvcc/kv-store';
import type { Lessor } from '../../mvcc/lessor';
import { WatchableStore } from '../../mvcc/watchable-store';
import {
  AlarmAction,
  AlarmType,
  type AlarmRequest,
  type AlarmMember,
  type CompactionRequest,
  type DeleteRangeRequest,
  type InternalRaftRequest,
  type LeaseGrantRequest,
  type PutRequest,
  type RangeRequest,
  type RangeResponse,
  type ResponseHeader,
  type TxnRequest,
} from '../../proto/etcd-types';
import type { ServerConfig } from '../embed/config';
import type { PeerTransport } from '../rafthttp/transport';
import type { Wal } from '../storage/wal/wal';
import { AlarmStore, type Alarm } from './alarms';
import { readAlarms } from './backend-schema';
import { bootstrap, type Bootstrapped } from './bootstrap';
import { buildComponents, type Components } from './components';
import { ErrBadLeaderTransferee, ErrFutureRev, ErrNoLeader, ErrNotLeader, ErrStopped, ErrTimeoutLeaderTransfer } from './errors';
import { failStop } from './fatal';
import type { Member, Membership } from './membership/membership';
import { storageSource, type ServerMetrics } from './metrics';
import { LEASE_COST_BYTES, txnCost } from './quota';
import { LeadershipEvents } from './leadership-events';
import { RaftNode } from './raft-node';
import { testingSwitches } from './testing-switches';
import type { AuthInfo, AuthServer, ClusterServer, HealthServer, KvServer, LeaseServer, MaintenanceServer } from './interfaces';
import { isTxnReadOnly, isTxnSerializable } from './txn-kind';

/** How often a restarting single voter checks whether the WAL replay has been applied. */
const REPLAY_POLL_MS = 5;
/** How often a member retries announcing its name and client URLs until it is applied (etcd's publish retry). */
export const PUBLISH_RETRY_MS = 500;
/** etcd's maxSizePerMsg and maxInflightMsgs (4096 / 8) for the Raft node. */
export const MAX_SIZE_PER_MSG_BYTES = 1024 * 1024;
export const MAX_INFLIGHT_MSGS = 512;
/** etcd's maxUncommittedEntriesSize for the server's Raft node: 1 GiB. */
export const MAX_UNCOMMITTED_ENTRIES_BYTES = 1 << 30;

export type Header = (revision: number) => ResponseHeader;

/**
 * One member (etcd's EtcdServer), as orchestration only: it wires the Raft node (raft-node.ts),
 * proposals (proposals.ts), the apply chain (apply/), linearizable reads (read-index.ts), snapshots
 * (snapshot.ts), the leader's lease duties (lease-loop.ts), the backend quota (quota.ts) and
 * membership changes (membership/reconfig.ts), and exposes the operations the front ends call
 * (see interfaces.ts). Writes are proposed and answered after apply; reads run after ReadIndex,
 * or locally when serializable.
 */
export class EtcdServer implements KvServer, LeaseServer, ClusterServer, MaintenanceServer, HealthServer {
  readonly memberId: bigint;
  readonly clusterId: bigint;
  readonly store: KvStore;
  readonly lessor: Lessor;
  readonly membership: Membership;
  readonly alarms: AlarmStore;
  /** The watch hub over the store: the store notifies it of every commit itself (etcd's watchableStore). */
  readonly watchable: WatchableStore;
  /** Every leader change this member observes (embed/lifecycle.ts feeds 'leaderChanged' from it). */
  readonly leadership = new LeadershipEvents();
  /** The parts this member is made of (components.ts). */
  private readonly c: Components;
  private readonly memberIdStr: string;
  private readonly clusterIdStr: string;
  private readonly wal: Wal;
  private raft!: RaftNode;
  private transport: PeerTransport | undefined;
  private term = 0;
  private stopped = false;
  private publishTimer: NodeJS.Timeout | undefined;
  private readonly selfRemovedListeners: (() => void)[] = [];
  /** Set once this member knows it was removed: it stops (after a delay when it applied its own removal). */
  private removing = false;

  private constructor(
    readonly cfg: ServerConfig,
    private readonly log: Logger,
    private readonly metrics: ServerMetrics,
    private readonly boot: Bootstrapped,
  ) {
    const { identity, store, lessor, membership } = boot;
    this.memberId = identity.memberId;
    this.clusterId = identity.clusterId;
    this.memberIdStr = identity.memberId.toString();
    this.clusterIdStr = identity.clusterId.toString();
    this.store = store;
    this.lessor = lessor;
    this.membership = membership;
    this.wal = boot.wal;
    const c: Components = buildComponents(cfg, log, metrics, boot, {
      raft: () => this.raft,
      transport: () => this.transport,
      header: this.header,
      removedFromCluster: (why, stopDelayMs) => this.removedFromCluster(why, stopDelayMs),
      forwardToLeader: (path, body) => this.forwardToLeader(path, body),
    });
    this.c = c;
    this.alarms = c.alarms;
    this.watchable = c.watchable;
  }

  /** Opens (or bootstraps) the data directory; `start` then replays the WAL into the store. */
  static async open(cfg: ServerConfig, log: Logger, metrics: ServerMetrics): Promise<EtcdServer> {
    const server = new EtcdServer(cfg, log, metrics, await bootstrap(cfg, log, metrics));
    metrics.bind({ server, storage: storageSource(server.store, server.watchable) });
    server.alarms.restore(await readAlarms(server.store));
    await server.c.auth.store.restore();
    await server.c.quota.refresh();
    return server;
  }

  /** Starts the Raft node; a single voter elects itself at once. */
  start(transport?: PeerTransport): void {
    this.transport = transport;
    for (const m of this.membership.list()) if (m.id !== this.memberId) transport?.addPeer(m.id, m.peerUrls);
    const tickMs = this.cfg.heartbeatIntervalMs;
    this.raft = new RaftNode({
      id: this.memberId,
      storage: this.boot.storage,
      wal: this.wal,
      // Raft replays every committed entry after the last snapshot, even those the backend already
      // holds (the apply chain skips them), so its configuration sees every conf change.
      applied: this.c.snapshots.snapshotIndex,
      electionTicks: Math.max(1, Math.round(this.cfg.electionTimeoutMs / tickMs)),
      heartbeatTicks: 1,
      tickMs,
      preVote: this.cfg.preVote,
      maxSizePerMsgBytes: MAX_SIZE_PER_MSG_BYTES,
      maxInflightMsgs: MAX_INFLIGHT_MSGS,
      maxUncommittedEntriesSizeBytes: MAX_UNCOMMITTED_ENTRIES_BYTES,
      send: (messages: Message[]) => transport?.send(messages),
      apply: (entries) => this.c.applyChain.applyEntries(entries),
      onLeaderChange: (lead, term) => this.onLeaderChange(lead, term),
      onReadStates: (rs) => this.c.readIndexer.onReadStates(rs),
      installSnapshot: (snap: Snapshot) => this.c.snapshots.install(snap),
      // Log compaction only between Readies (etcd waits for the raft loop's notifyc): while a Ready
      // is in flight a follower may have applied entries that MemoryStorage does not hold yet, or
      // still holds a stale entry of an older term at the applied index.
      onAdvanced: () => this.c.snapshots.maybeSnapshot(),
      // Election timeouts are randomized (thesis §3.4); raft/ takes its randomness from the caller.
      random: Math.random,
      log: this.log,
      metrics: this.metrics,
    });
    this.metrics.serverId.set({ server_id: this.memberId.toString(16) }, 1);
    this.raft.start();
    if (this.membership.isRemoved(this.memberId)) {
      // etcd refuses to start a member that was removed (it applied its own removal before it stopped).
      this.removedFromCluster('the member has been permanently removed from the cluster; it will not start');
      return;
    }
    // A forced new cluster is a single voter once the appended conf changes are applied.
    const alone = this.membership.voters().length === 1 && this.membership.voters()[0] === this.memberId;
    if (alone || this.boot.forcedNewCluster) this.campaignWhenReplayed();
    this.c.proposals.start();
    this.c.quota.start();
    // etcd's revokeExpiredLeases counts each expired lease the leader revoked; expired leases are
    // revoked as root (etcd's WithRoot), whoever attached keys to them.
    this.c.leases.start((id) => this.leaseRevoke(id, this.c.auth.rootAuthInfo()).then((r) => {
      this.metrics.leaseExpired.inc();
      return r;
    }));
    this.publishAttributes();
  }

  /**
   * A single voter elects itself at once, but Raft declines to campaign while committed conf
   * changes are unapplied: wait until the WAL replay after a restart has been applied.
   */
  private campaignWhenReplayed(): void {
    if (this.stopped || this.raft.isLeader) return;
    const st = this.raft.status();
    if (st.applied >= st.commit) this.raft.campaign();
    else setTimeout(() => this.campaignWhenReplayed(), REPLAY_POLL_MS);
  }

  /** Announces this member's client URLs through the log, retrying until it is applied (etcd publish). */
  private publishAttributes(): void {
    const self = this.membership.get(this.memberId);
    const attempt = (): void => {
      this.publishTimer = undefined;
      if (this.stopped) return;
      this.c.proposals.propose({ member_attributes: { ID: this.memberIdStr, name: this.cfg.name, clientURLs: this.cfg.advertiseClientUrls } }).then(
        () => this.log.info({ 'client-urls': this.cfg.advertiseClientUrls }, 'published local member to cluster through raft'),
        () => {
          this.publishTimer = setTimeout(attempt, PUBLISH_RETRY_MS);
        },
      );
    };
    const same = self && self.name === this.cfg.name && self.clientUrls.join(',') === this.cfg.advertiseClientUrls.join(',');
    if (!same || this.membership.list().length > 1) attempt();
  }

  private onLeaderChange(lead: bigint, term: number): void {
    this.term = term;
    this.metrics.hasLeader.set(lead === 0n ? 0 : 1);
    this.metrics.isLeader.set(lead === this.memberId ? 1 : 0);
    // etcd counts a change only when a leader is known (raft.go: newLeader := lead != None && ...).
    if (lead !== 0n) this.metrics.leaderChanges.inc();
    if (lead !== this.memberId) this.c.leases.demote();
    this.c.readIndexer.onLeaderChange();
    this.log.info({ leader: lead.toString(16), term }, lead === 0n ? 'lost leader' : 'elected leader');
    this.leadership.emit(lead, term);
  }

  // ---------------------------------------------------------------- peer traffic

  reportUnreachable(id: bigint): void {
    this.raft?.reportUnreachable(id);
  }

  reportSnapshot(id: bigint, ok: boolean): void {
    this.raft?.reportSnapshot(id, ok);
  }

  /** Incoming traffic from the peer transport. */
  stepMessages(messages: Message[]): void {
    // Peers may dial before start() has created the Raft node (or after stop): Raft retransmits.
    if (!this.raft || this.stopped) return;
    for (const m of messages) {
      try {
        this.raft.step(m);
      } catch (e) {
        // etcd-io/raft's Step returns an error only for messages it may ignore (a local message
        // type, a response from a peer it no longer tracks); anything else thrown while stepping
        // is a broken invariant ("conflict with a committed entry", "commitTo beyond lastIndex"),
        // on which etcd-io/raft panics: this member's log can no longer be trusted.
        if (e instanceof RaftError) {
          this.log.debug({ err: e.message, type: m.type, from: m.from.toString(16) }, 'dropped raft message');
          continue;
        }
        failStop('raft invariant violated', e);
      }
    }
  }

  /** A MsgSnap with the leader's backend: saved to a file, kept by index until Raft accepts that snapshot. */
  async receiveSnapshot(m: Message, entries: AsyncIterable<[Buffer, Buffer][]>): Promise<void> {
    if (!m.snapshot || !this.raft || this.stopped) return;
    await this.c.snapshots.keepReceived(m.snapshot.metadata.index, entries);
    if (!this.stopped) this.stepMessages([m]);
  }

  private forwardToLeader(path: string, body: Uint8Array): Promise<Buffer> {
    const leader = this.raft.leader;
    if (leader === 0n || !this.transport) throw new ErrNoLeader();
    return this.transport.forward(leader, path, body);
  }

  // ---------------------------------------------------------------- identity and status

  header: Header = (revision: number): ResponseHeader => ({
    cluster_id: this.clusterIdStr,
    member_id: this.memberIdStr,
    revision,
    raft_term: this.term,
  });

  get leader(): bigint {
    return this.raft.leader;
  }

  get isLeader(): boolean {
    return this.raft.isLeader;
  }

  get raftTerm(): number {
    return this.term;
  }

  get raftIndex(): number {
    return this.raft.commitIndex;
  }

  get appliedIndex(): number {
    return this.c.appliedWait.index;
  }

  get isLearner(): boolean {
    return this.membership.get(this.memberId)?.isLearner ?? false;
  }

  revision(): number {
    return this.store.rev;
  }

  members(): Member[] {
    return this.membership.list();
  }

  /** How current the member list is: it reflects the backend, which can be ahead of the applied index after a restart. */
  membershipIndex(): number {
    return Math.max(this.c.appliedWait.index, this.store.consistentIndex);
  }

  leaseIds(): bigint[] {
    return this.lessor.ids();
  }

  raisedAlarms(): Alarm[] {
    return this.alarms.get(AlarmType.NONE);
  }

  // ---------------------------------------------------------------- maintenance

  async backendSize(): Promise<{ dbSize: number; dbSizeInUse: number }> {
    const [dbSize, approxInUse] = await Promise.all([this.store.backend.sizeBytes(), this.store.backend.sizeInUseBytes()]);
    // LevelDB's estimate covers only compacted tables; data still in its log is in use too.
    return { dbSize, dbSizeInUse: approxInUse > 0 ? Math.min(approxInUse, dbSize) : dbSize };
  }

  hash(): Promise<number> {
    return this.store.hash();
  }

  async hashKV(rev: number): Promise<{ hash: number; compactRev: number; hashRev: number }> {
    if (rev > this.store.rev) throw new ErrFutureRev();
    return this.store.hashKV(rev);
  }

  async defragment(): Promise<void> {
    // A compaction still deleting holds a LevelDB iterator, which pins the files a defragment
    // would drop; wait for it, as etcd's defrag waits for the backend lock.
    await this.store.compactionIdle();
    await this.store.defragment();
    await this.c.quota.refresh();
  }

  snapshotEntries(): AsyncIterable<[Buffer, Buffer][]> {
    return timedSnapshot(this.store.snapshotEntries(), (seconds) => this.metrics.backendSnapshotSeconds.observe(seconds));
  }

  // ---------------------------------------------------------------- KV

  /** The Auth service's side of this member (auth-server.ts). */
  get auth(): AuthServer {
    return this.c.auth;
  }

  async range(r: RangeRequest, ai?: AuthInfo): Promise<RangeResponse> {
    if (!r.serializable) await this.linearizableReadNotify();
    // Reads are served here, not applied, so they are checked here (etcd's doSerialize).
    return this.c.auth.serialize(ai, (who) => this.c.auth.store.isRangePermitted(who, r.key, r.range_end), () => this.c.applier.range(r, this.header));
  }

  put(r: PutRequest, ai?: AuthInfo) {
    this.c.quota.check(r.key.length + r.value.length);
    return this.proposeFor({ put: r }, ai);
  }

  deleteRange(r: DeleteRangeRequest, ai?: AuthInfo) {
    return this.proposeFor({ delete_range: r }, ai);
  }

  async txn(r: TxnRequest, ai?: AuthInfo) {
    if (isTxnReadOnly(r)) {
      if (!isTxnSerializable(r)) await this.linearizableReadNotify();
      return this.c.auth.serialize(ai, (who) => this.c.auth.checkTxn(who, r), () => this.c.applier.readOnlyTxn(r, this.header));
    }
    this.c.quota.check(txnCost(r));
    return this.proposeFor({ txn: r }, ai);
  }

  async compact(r: CompactionRequest, ai?: AuthInfo) {
    const result = await this.c.auth.raftRequest({ compaction: r }, ai);
    if (result.physicalDone) {
      // physical=true: reply only once superseded revisions are gone and that is on disk.
      await result.physicalDone;
      await this.store.backend.forceCommit({ sync: true });
    }
    return result.response;
  }

  async linearizableReadNotify(): Promise<void> {
    if (this.stopped) throw new ErrStopped();
    // Test-only fault (cluster-tests proves it catches it): serve "linearizable" reads from local
    // state without ReadIndex, i.e. possibly stale. Never set outside the harness's own scenario.
    if (testingSwitches.unsafeLocalReads) return;
    await this.c.readIndexer.linearizableRead();
  }

  private async proposeFor(req: InternalRaftRequest, ai?: AuthInfo) {
    return (await this.c.auth.raftRequest(req, ai)).response;
  }

  // ---------------------------------------------------------------- leases

  leaseGrant(r: LeaseGrantRequest, ai?: AuthInfo) {
    let id = BigInt(r.ID);
    // etcd picks a positive ID from the member-scoped generator when the client leaves it 0.
    if (id === 0n) id = this.c.ids.nextId() & ((1n << 63n) - 1n);
    this.c.quota.check(LEASE_COST_BYTES);
    return this.proposeFor({ lease_grant: { ID: id.toString(), TTL: r.TTL } }, ai);
  }

  leaseRevoke(id: bigint, ai?: AuthInfo) {
    return this.proposeFor({ lease_revoke: { ID: id.toString() } }, ai);
  }

  leaseRenew(id: bigint): Promise<{ ttl: number; notFound: boolean }> {
    return this.c.leases.renew(id);
  }

  leaseTimeToLive(id: bigint, keys: boolean): Promise<{ found: boolean; ttl: number; grantedTtl: number; keys: Buffer[] }> {
    return this.c.leases.timeToLive(id, keys);
  }

  // ---------------------------------------------------------------- alarms and quota

  /** The Alarm RPC: GET is answered locally after ReadIndex; changes go through the log. */
  async alarm(r: AlarmRequest): Promise<{ header: ResponseHeader; alarms: AlarmMember[] }> {
    if (r.action === AlarmAction.GET) {
      await this.linearizableReadNotify();
      return { header: this.header(this.store.rev), alarms: this.alarms.get(r.alarm).map(AlarmStore.toMsg) };
    }
    return (await this.c.proposals.propose({ alarm: r })).response as { header: ResponseHeader; alarms: AlarmMember[] };
  }

  /** Refresh the cached backend size now (after compaction and defragmentation). */
  refreshDbSize(): Promise<number> {
    return this.c.quota.refresh();
  }

  /** Status errors, formatted as etcd does. */
  alarmErrors(): string[] {
    return this.alarms.get(AlarmType.NONE).map((a) => `memberID:${a.memberId} alarm:${AlarmType[a.type]} `);
  }

  // ---------------------------------------------------------------- cluster membership

  addMember(peerUrls: string[], isLearner: boolean): Promise<{ member: Member; members: Member[] }> {
    return this.c.reconfig.addMember(peerUrls, isLearner);
  }

  removeMember(id: bigint): Promise<Member[]> {
    return this.c.reconfig.removeMember(id);
  }

  promoteMember(id: bigint): Promise<Member[]> {
    // etcd's PromoteMember counts every outcome on the member that took the request, a failure
    // under its error message (etcd_server_learner_promote_failures{Reason}).
    return this.c.reconfig.promoteMember(id).then(
      (members) => {
        this.metrics.learnerPromoteSucceed.inc();
        return members;
      },
      (e: unknown) => {
        this.metrics.learnerPromoteFailed.inc({ Reason: e instanceof Error ? e.message : String(e) });
        throw e;
      },
    );
  }

  updateMember(id: bigint, peerUrls: string[]): Promise<Member[]> {
    return this.c.reconfig.updateMember(id, peerUrls);
  }

  /** On the leader: whether a learner has caught up (asked by a follower that got a MemberPromote). */
  learnerReady(id: bigint): Promise<boolean> {
    return this.c.reconfig.learnerReady(id);
  }

  /** MoveLeader: only the leader may hand leadership to a voting member (etcd's MoveLeader). */
  async moveLeader(target: bigint): Promise<void> {
    if (!this.raft.isLeader) throw new ErrNotLeader();
    const m = this.membership.get(target);
    if (!m || m.isLearner) throw new ErrBadLeaderTransferee();
    if (target === this.memberId) return;
    this.raft.transferLeader(target);
    const deadline = Date.now() + this.c.requestTimeoutMs;
    while (this.raft.leader !== target) {
      if (Date.now() > deadline) throw new ErrTimeoutLeaderTransfer();
      await new Promise((r) => setTimeout(r, this.cfg.heartbeatIntervalMs));
    }
  }

  // ---------------------------------------------------------------- lifecycle

  /** Called once when this member learns it was removed from the cluster and stops (etcd exits then). */
  onSelfRemoved(listener: () => void): void {
    this.selfRemovedListeners.push(listener);
  }

  /**
   * Through the log, or a peer refusing our traffic because we were removed (etcd's ErrMemberRemoved).
   * `stopDelayMs`: how long to keep running first (see REMOVED_MEMBER_STOP_DELAY_MS).
   */
  removedFromCluster(why: string, stopDelayMs = 0): void {
    if (this.stopped || this.removing) return;
    this.removing = true;
    this.log.warn({ 'local-member-id': this.memberId.toString(16) }, why);
    // Remember it (stop() syncs the backend): a restart on this data dir then refuses at once,
    // even when we learnt it from a peer's refusal rather than by applying our own removal.
    if (!this.membership.isRemoved(this.memberId)) this.membership.remove(this.memberId);
    setTimeout(() => {
      this.stop().then(
        () => {
          for (const l of this.selfRemovedListeners) l();
        },
        // The removal could not be made durable: a restart might rejoin under the removed ID.
        (e: unknown) => failStop('backend write failed', e),
      );
    }, stopDelayMs);
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.publishTimer) clearTimeout(this.publishTimer);
    this.c.leases.stop();
    this.c.quota.stop();
    this.c.proposals.stop();
    this.c.readIndexer.close(new ErrStopped());
    this.transport?.close();
    await this.raft?.stop();
    // A log snapshot being saved finishes before the store and WAL close under it.
    await this.c.snapshots.stop();
    this.watchable.close();
    await this.store.close();
    await this.wal.close();
  }
}

/**
 * etcd_disk_backend_snapshot_duration_seconds: etcd times a backend snapshot from when it is taken
 * until it has been read to the end (a Maintenance.Snapshot stream, or a snapshot sent to a peer).
 */
async function* timedSnapshot(entries: AsyncIterable<[Buffer, Buffer][]>, observe: (seconds: number) => void): AsyncGenerator<[Buffer, Buffer][]> {
  const started = performance.now();
  yield* entries;
  observe((performance.now() - started) / 1000);
}
