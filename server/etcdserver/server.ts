import type { Logger } from 'pino';
import type { Message, Snapshot } from '../../raft';
import type { KvStore } from '../../mvcc/kv-store';
import type { Lessor } from '../../mvcc/lessor';
import { WatchableStore } from '../../mvcc/watchable-store';
import type { ResponseHeader } from '../../proto/etcd-types';
import type { ServerConfig } from '../embed/config';
import type { PeerTransport } from '../rafthttp/transport';
import type { Wal } from '../storage/wal/wal';
import type { AlarmStore } from './alarms';
import { readAlarms } from './backend-schema';
import { bootstrap, type Bootstrapped } from './bootstrap';
import { buildComponents, type Components } from './components';
import { ErrStopped } from './errors';
import { failStop } from './fatal';
import type { AuthServer, ClusterServer, HealthServer, KvServer, LeaseServer, MaintenanceServer } from './interfaces';
import { LeadershipEvents } from './leadership-events';
import { Maintenance } from './maintenance';
import type { Member, Membership } from './membership/membership';
import type { Reconfig } from './membership/reconfig';
import { storageSource, type ServerMetrics } from './metrics';
import { PeerTraffic } from './peer-traffic';
import { raftNodeOptions } from './raft-config';
import { RaftNode } from './raft-node';
import { V3Server } from './v3-server';

/** How often a restarting single voter checks whether the WAL replay has been applied. */
const REPLAY_POLL_MS = 5;
/** How often a member retries announcing its name and client URLs until it is applied (etcd's publish retry). */
export const PUBLISH_RETRY_MS = 500;

export type Header = (revision: number) => ResponseHeader;

/**
 * One member (etcd's EtcdServer, server.go), as orchestration only: it starts and stops the Raft
 * node (raft-node.ts, configured by raft-config.ts) over the parts components.ts wires (proposals,
 * the apply chain, ReadIndex, snapshots, lease duties, the quota, reconfig), publishes itself, and
 * handles its own removal. Each operation the front ends (interfaces.ts) and the peer transport
 * call is forwarded to the module that serves it: KV and lease requests to v3-server.ts (etcd's
 * v3_server.go), Maintenance and alarms to maintenance.ts, membership changes to
 * membership/reconfig.ts, Raft traffic to peer-traffic.ts.
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
  /** The KV and lease request paths (v3-server.ts). */
  private readonly kv: V3Server;
  /** The Maintenance API's server side (maintenance.ts). */
  private readonly maintenance: Maintenance;
  /** Raft messages and reports from the peer transport (peer-traffic.ts). */
  private readonly peers: PeerTraffic;
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
    const stopped = (): boolean => this.stopped;
    const transport = (): PeerTransport | undefined => this.transport;
    const raft = (): RaftNode => this.raft;
    const c: Components = buildComponents(cfg, log, metrics, boot, {
      raft,
      transport,
      header: this.header,
      removedFromCluster: (why, stopDelayMs) => this.removedFromCluster(why, stopDelayMs),
      forwardToLeader: (path, body) => this.peers.forwardToLeader(path, body),
    });
    this.c = c;
    this.alarms = c.alarms;
    this.watchable = c.watchable;
    this.peers = new PeerTraffic({ raft, transport, stopped, snapshots: c.snapshots, log });
    this.kv = new V3Server({ store, parts: c, header: this.header, stopped });
    this.maintenance = new Maintenance({
      memberId: this.memberId,
      store,
      membership,
      parts: c,
      metrics,
      header: this.header,
      raft,
      linearizableReadNotify: () => this.kv.linearizableReadNotify(),
      heartbeatIntervalMs: cfg.heartbeatIntervalMs,
    });
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
    const raftLog = {
      id: this.memberId,
      storage: this.boot.storage,
      wal: this.wal,
      // Raft replays every committed entry after the last snapshot, even those the backend already
      // holds (the apply chain skips them), so its configuration sees every conf change.
      applied: this.c.snapshots.snapshotIndex,
    };
    this.raft = new RaftNode(raftNodeOptions(this.cfg, raftLog, {
      send: (messages: Message[]) => transport?.send(messages),
      apply: (entries) => this.c.applyChain.applyEntries(entries),
      onLeaderChange: (lead, term) => this.onLeaderChange(lead, term),
      onReadStates: (rs) => this.c.readIndexer.onReadStates(rs),
      installSnapshot: (snap: Snapshot) => this.c.snapshots.install(snap),
      // Log compaction only between Readies (etcd waits for the raft loop's notifyc): while a Ready
      // is in flight a follower may have applied entries that MemoryStorage does not hold yet, or
      // still holds a stale entry of an older term at the applied index.
      onAdvanced: () => this.c.snapshots.maybeSnapshot(),
    }, this.log, this.metrics));
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
    this.c.leases.start((id) => this.kv.leaseRevoke(id, this.c.auth.rootAuthInfo()).then((r) => {
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

  // ---------------------------------------------------------------- peer traffic (peer-traffic.ts)

  readonly reportUnreachable: PeerTraffic['reportUnreachable'] = (id) => this.peers.reportUnreachable(id);
  readonly reportSnapshot: PeerTraffic['reportSnapshot'] = (id, ok) => this.peers.reportSnapshot(id, ok);
  readonly stepMessages: PeerTraffic['stepMessages'] = (messages) => this.peers.stepMessages(messages);
  readonly receiveSnapshot: PeerTraffic['receiveSnapshot'] = (m, entries) => this.peers.receiveSnapshot(m, entries);

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

  /** The Auth service's side of this member (auth-server.ts). */
  get auth(): AuthServer {
    return this.c.auth;
  }

  // ---------------------------------------------------------------- KV and leases (v3-server.ts)

  readonly range: V3Server['range'] = (r, ai) => this.kv.range(r, ai);
  readonly put: V3Server['put'] = (r, ai) => this.kv.put(r, ai);
  readonly deleteRange: V3Server['deleteRange'] = (r, ai) => this.kv.deleteRange(r, ai);
  readonly txn: V3Server['txn'] = (r, ai) => this.kv.txn(r, ai);
  readonly compact: V3Server['compact'] = (r, ai) => this.kv.compact(r, ai);
  readonly linearizableReadNotify: V3Server['linearizableReadNotify'] = () => this.kv.linearizableReadNotify();
  readonly leaseGrant: V3Server['leaseGrant'] = (r, ai) => this.kv.leaseGrant(r, ai);
  readonly leaseRevoke: V3Server['leaseRevoke'] = (id, ai) => this.kv.leaseRevoke(id, ai);
  readonly leaseRenew: V3Server['leaseRenew'] = (id) => this.kv.leaseRenew(id);
  readonly leaseTimeToLive: V3Server['leaseTimeToLive'] = (id, keys) => this.kv.leaseTimeToLive(id, keys);

  // ---------------------------------------------------------------- maintenance and alarms (maintenance.ts)

  readonly backendSize: Maintenance['backendSize'] = () => this.maintenance.backendSize();
  readonly hash: Maintenance['hash'] = () => this.maintenance.hash();
  readonly hashKV: Maintenance['hashKV'] = (rev) => this.maintenance.hashKV(rev);
  readonly defragment: Maintenance['defragment'] = () => this.maintenance.defragment();
  readonly snapshotEntries: Maintenance['snapshotEntries'] = () => this.maintenance.snapshotEntries();
  readonly alarm: Maintenance['alarm'] = (r) => this.maintenance.alarm(r);
  readonly raisedAlarms: Maintenance['raisedAlarms'] = () => this.maintenance.raisedAlarms();
  readonly alarmErrors: Maintenance['alarmErrors'] = () => this.maintenance.alarmErrors();
  readonly refreshDbSize: Maintenance['refreshDbSize'] = () => this.maintenance.refreshDbSize();
  readonly moveLeader: Maintenance['moveLeader'] = (target) => this.maintenance.moveLeader(target);

  // ---------------------------------------------------------------- cluster membership (membership/reconfig.ts)

  readonly addMember: Reconfig['addMember'] = (peerUrls, isLearner) => this.c.reconfig.addMember(peerUrls, isLearner);
  readonly removeMember: Reconfig['removeMember'] = (id) => this.c.reconfig.removeMember(id);
  readonly updateMember: Reconfig['updateMember'] = (id, peerUrls) => this.c.reconfig.updateMember(id, peerUrls);
  /** On the leader: whether a learner has caught up (asked by a follower that got a MemberPromote). */
  readonly learnerReady: Reconfig['learnerReady'] = (id) => this.c.reconfig.learnerReady(id);

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

