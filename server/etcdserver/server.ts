import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Logger } from 'pino';
import { MemoryStorage, EntryType, ErrProposalDropped, RaftError, ConfChangeType, decodeConfChange, type ConfChange, type Entry, type Message, type Snapshot, type ConfState } from '../../raft';
import { KvStore } from '../../mvcc/kv-store';
import { Lessor, type LeaseRecord } from '../../mvcc/lessor';
import type { Bucket } from '../../mvcc/backend';
import { messageCodec, type MessageCodec } from '../../proto';
import type {
  CompactionRequest,
  DeleteRangeRequest,
  InternalRaftRequest,
  LeaseGrantRequest,
  PutRequest,
  RangeRequest,
  ResponseHeader,
  TxnRequest,
} from '../../proto/etcd-types';
import { Applier, type ApplyOutcome, type ApplyResult, type CommitListener } from './apply/applier';
import type { ServerConfig } from '../embed/config';
import {
  ErrBadLeaderTransferee,
  ErrLearnerNotReady,
  ErrMemberBadURLs,
  ErrMemberExist,
  ErrMemberNotFound,
  ErrMemberNotLearner,
  ErrNoLeader,
  ErrNotLeader,
  ErrPeerURLExist,
  ErrRequestTooLarge,
  ErrStopped,
  ErrTimeout,
  ErrTooManyLearners,
  ErrTimeoutLeaderTransfer,
  ErrTooManyRequests,
  ErrNoSpace,
} from './errors';
import { PeerTransport, leaseRenewReq, leaseRenewResp, ttlReq, ttlResp } from '../rafthttp/transport';
import { decodeConfStateRecord, encodeConfStateRecord } from '../storage/wal/conf-state-record';
import { toEtcdError } from '../v3rpc/grpc-errors';
import { IdGenerator } from './id-generator';
import { computeClusterId, computeMemberId } from './membership/member-id';
import { Membership, chooseMemberList, decodeMember, encodeMember, type Member } from './membership/membership';
import type { ServerMetrics } from './metrics';
import { RaftNode } from './raft-node';
import { ReadIndexer } from './read-index';
import { isTxnReadOnly, isTxnSerializable } from '../v3rpc/txn-check';
import { AppliedIndexWait, Wait } from './wait';
import { AlarmStore, decodeAlarmKey, type Alarm } from './alarms';
import { AlarmAction, AlarmType, type AlarmRequest } from '../../proto/etcd-types';
import { Wal } from '../storage/wal/wal';
import { Rng } from '../../raft/sim/rng';
import { logTestingSwitches, testingSwitches } from './testing-switches';
import { failStop } from './fatal';



/** How often a restarting single voter checks whether the WAL replay has been applied. */
const REPLAY_POLL_MS = 5;
/** A joining member retries fetching the member list this many times (its MemberAdd may still be in flight). */
export const JOIN_FETCH_ATTEMPTS = 5;
export const JOIN_FETCH_RETRY_MS = 1_000;

/** etcd refuses new proposals when apply lags commit by more than this many entries. */
export const MAX_GAP_BETWEEN_APPLY_AND_COMMIT = 5000;
/** etcd's maxSizePerMsg and maxInflightMsgs (4096 / 8) for the Raft node. */
export const MAX_SIZE_PER_MSG_BYTES = 1024 * 1024;
export const MAX_INFLIGHT_MSGS = 512;
/** etcd's maxUncommittedEntriesSize for the server's Raft node: 1 GiB. */
export const MAX_UNCOMMITTED_ENTRIES_BYTES = 1 << 30;
/** How often the leader looks for expired leases (etcd's revokeExpiredLeases ticker). */
export const LEASE_EXPIRY_CHECK_MS = 500;
/** How many expired leases are revoked per check: leaseRevokeRate (1000/s) over the interval. */
export const LEASE_REVOKES_PER_CHECK = 500;

interface Identity {
  memberId: bigint;
  clusterId: bigint;
}

function encodeIdentity(id: Identity): Buffer {
  const b = Buffer.alloc(16);
  b.writeBigUInt64BE(id.memberId, 0);
  b.writeBigUInt64BE(id.clusterId, 8);
  return b;
}

function decodeIdentity(b: Uint8Array): Identity {
  const buf = Buffer.from(b);
  return { memberId: buf.readBigUInt64BE(0), clusterId: buf.readBigUInt64BE(8) };
}


const LEASE_BUCKET = 'lease';
const ALARM_BUCKET = 'alarm';
/** How often pending proposals are checked against their deadline. */
export const WAIT_SWEEP_MS = 100;
/** How often the cached backend size (for the quota check) is refreshed. */
export const DB_SIZE_REFRESH_MS = 250;
const MEMBERS_BUCKET = 'members';
/** IDs of removed members: they may never rejoin, and their traffic is refused (etcd: members_removed). */
const MEMBERS_REMOVED_BUCKET = 'members_removed';

async function readRemovedIds(bucket: Bucket): Promise<bigint[]> {
  const ids: bigint[] = [];
  for await (const [k] of bucket.iterate()) ids.push(k.readBigUInt64BE(k.length - 8));
  return ids;
}

function leaseKey(id: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(id);
  return b;
}

export interface Header {
  (revision: number): ResponseHeader;
}

/**
 * One member: the Raft node, the WAL, the key-value store, leases, and the single apply loop
 * between them (etcd's EtcdServer). gRPC services call the methods here and never touch storage:
 * writes are proposed and answered after apply; reads run after ReadIndex (or locally when
 * serializable).
 */
export class EtcdServer {
  readonly memberId: bigint;
  readonly clusterId: bigint;
  private readonly memberIdStr: string;
  private readonly clusterIdStr: string;
  private readonly requestCodec: MessageCodec<InternalRaftRequest> = messageCodec<InternalRaftRequest>('cairnpb.InternalRaftRequest');
  private readonly wait = new Wait<ApplyOutcome>();
  private readonly appliedWait: AppliedIndexWait;
  private readonly readIndexer: ReadIndexer;
  private readonly ids: IdGenerator;
  private readonly applier: Applier;
  private raft!: RaftNode;
  private term = 0;
  private leaseTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  private readonly requestTimeoutMs: number;
  private readonly commitListeners: CommitListener[] = [];
  /** Requests this member proposed, by their entry's bytes (same object in the committed entry). */
  private readonly proposed = new WeakMap<Uint8Array, InternalRaftRequest>();
  private waitSweeper: NodeJS.Timeout | undefined;
  /** The configuration as of the last applied entry, recorded in snapshots. */
  confState!: ConfState;
  /** Index of the last snapshot (the log below it may be compacted). */
  snapshotIndex = 0;
  private transport: PeerTransport | undefined;
  /** Backend data received with a MsgSnap, installed when Raft accepts that snapshot. */
  private incomingSnapshot: { index: number; entries: [Buffer, Buffer][] } | undefined;
  private snapshotting = false;
  private publishTimer: NodeJS.Timeout | undefined;
  private readonly snapshotListeners: (() => void)[] = [];
  readonly alarms: AlarmStore;
  private dbSizeBytes = 0;
  private dbSizeTimer: NodeJS.Timeout | undefined;
  private noSpaceRaised = false;

  private constructor(
    readonly cfg: ServerConfig,
    private readonly log: Logger,
    private readonly metrics: ServerMetrics,
    private readonly wal: Wal,
    readonly store: KvStore,
    readonly lessor: Lessor,
    readonly membership: Membership,
    identity: Identity,
    private readonly storage: MemoryStorage,
    applied: number,
  ) {
    this.memberId = identity.memberId;
    this.clusterId = identity.clusterId;
    this.memberIdStr = identity.memberId.toString();
    this.clusterIdStr = identity.clusterId.toString();
    this.ids = new IdGenerator(identity.memberId);
    this.appliedWait = new AppliedIndexWait(applied);
    this.alarms = new AlarmStore({
      put: (k) => store.backend.bucket(ALARM_BUCKET).put(k, Buffer.alloc(0)),
      del: (k) => store.backend.bucket(ALARM_BUCKET).del(k),
    });
    this.applier = new Applier(
      store,
      lessor,
      (events, rev) => {
        for (const l of this.commitListeners) l(events, rev);
      },
      () => this.alarms.has(AlarmType.NOSPACE),
    );
    // etcd's ReqTimeout: 5 s plus two election timeouts.
    this.requestTimeoutMs = 5000 + 2 * cfg.electionTimeoutMs;
    this.readIndexer = new ReadIndexer({
      requestReadIndex: (ctx) => this.raft.readIndex(ctx),
      waitApplied: (index) => this.appliedWait.wait(index),
      timeoutMs: this.requestTimeoutMs,
      nextCtx: () => this.ids.nextId(),
    });
  }

  /** Opens (or bootstraps) the data directory and replays the WAL into the store. */
  static async open(cfg: ServerConfig, log: Logger, metrics: ServerMetrics): Promise<EtcdServer> {
    const memberDir = path.join(cfg.dataDir, 'member');
    fs.mkdirSync(path.join(memberDir, 'snap'), { recursive: true, mode: 0o700 });
    logTestingSwitches(log);
    const wal = await Wal.open(path.join(memberDir, 'wal'), (s) => metrics.walFsyncSeconds.observe(s), {
      loseUnsyncedWrites: testingSwitches.loseUnsyncedWrites,
      unsafeNoFsync: testingSwitches.unsafeNoFsync,
    });
    const contents = await wal.readAll();
    const store = await KvStore.open(path.join(memberDir, 'snap', 'db'), { loseUnsyncedWrites: testingSwitches.loseUnsyncedWrites });
    const backend = store.backend;
    const leaseBucket = backend.bucket(LEASE_BUCKET);
    const membersBucket = backend.bucket(MEMBERS_BUCKET);
    const removedBucket = backend.bucket(MEMBERS_REMOVED_BUCKET);
    const membershipPersistence = {
      putMember: (m: Member) => membersBucket.put(leaseKey(m.id), encodeMember(m)),
      deleteMember: (id: bigint) => membersBucket.del(leaseKey(id)),
      putRemoved: (id: bigint) => removedBucket.put(leaseKey(id), Buffer.alloc(0)),
    };

    // etcd's minimum lease TTL: 1.5 election timeouts, rounded up to whole seconds.
    const minTtlSeconds = Math.ceil((3 * cfg.electionTimeoutMs) / 2 / 1000);
    const lessor = new Lessor(
      {
        putLease: (r: LeaseRecord) => leaseBucket.put(leaseKey(r.id), encodeLease(r)),
        deleteLease: (id: bigint) => leaseBucket.del(leaseKey(id)),
      },
      minTtlSeconds,
    );

    const storage = new MemoryStorage();
    let identity: Identity;
    let membership: Membership;
    let confState: ConfState = { voters: [], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false };
    let snapshotIndex = 0;
    if (!contents.metadata && cfg.initialClusterState === 'existing') {
      // Joining a running cluster: learn it (and this member's ID, chosen at MemberAdd) from a peer.
      const others = [...cfg.initialCluster.entries()].filter(([name]) => name !== cfg.name).flatMap(([, urls]) => urls);
      const mine = [...cfg.initialAdvertisePeerUrls].sort().join(',');
      let joined: { clusterId: bigint; members: Member[]; removed: bigint[]; self: Member } | undefined;
      for (let attempt = 1; !joined; attempt++) {
        const { clusterId, members, removed } = chooseMemberList(await PeerTransport.fetchMembers(others));
        const self = members.find((m) => [...m.peerUrls].sort().join(',') === mine && !removed.includes(m.id));
        if (self) joined = { clusterId, members, removed, self };
        else if (attempt >= JOIN_FETCH_ATTEMPTS) throw new Error(`member with peer URLs ${mine} is not in the cluster: add it with 'etcdctl member add' first`);
        else await new Promise((r) => setTimeout(r, JOIN_FETCH_RETRY_MS));
      }
      const { clusterId, members, removed, self } = joined;
      identity = { memberId: self.id, clusterId };
      membership = new Membership(identity.clusterId, membershipPersistence);
      self.name = cfg.name;
      self.clientUrls = cfg.advertiseClientUrls;
      membership.restore(members, removed);
      // Durable before the identity is: a member restarted before its first snapshot from the
      // leader must still know its peers, or it could never answer the leader's probes.
      membership.persistAll();
      await backend.forceCommit({ sync: true });
      await wal.saveMetadata(encodeIdentity(identity));
      log.info({ 'local-member-id': identity.memberId.toString(16), 'cluster-id': identity.clusterId.toString(16) }, 'joining an existing cluster');
    } else if (!contents.metadata) {
      const myUrls = cfg.initialCluster.get(cfg.name);
      if (!myUrls) throw new Error(`couldn't find local name "${cfg.name}" in the initial cluster configuration`);
      const advertised = [...cfg.initialAdvertisePeerUrls].sort().join(',');
      if ([...myUrls].sort().join(',') !== advertised) {
        throw new Error(
          `--initial-cluster has ${cfg.name}=${myUrls.join(',')} but missing from --initial-advertise-peer-urls=${cfg.initialAdvertisePeerUrls.join(',')}`,
        );
      }
      const members: Member[] = [...cfg.initialCluster.entries()].map(([name, urls]) => ({
        id: computeMemberId(urls, cfg.initialClusterToken),
        name,
        peerUrls: urls,
        clientUrls: name === cfg.name ? cfg.advertiseClientUrls : [],
        isLearner: false,
      }));
      identity = { memberId: computeMemberId(myUrls, cfg.initialClusterToken), clusterId: computeClusterId(members.map((m) => m.id)) };
      membership = new Membership(identity.clusterId, membershipPersistence);
      for (const m of members) membership.add(m);
      await backend.forceCommit({ sync: true });
      // Every member of a new cluster starts from the same snapshot at index 1, term 1, holding the
      // initial configuration, so their logs agree from the first entry on.
      const initialConf: ConfState = { voters: members.map((m) => m.id), learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false };
      const snapshot: Snapshot = { data: new Uint8Array(), metadata: { index: 1, term: 1, confState: initialConf } };
      await wal.save({
        entries: [],
        hardState: { term: 1, vote: 0n, commit: 1 },
        snapshot: { index: 1, term: 1, data: encodeConfStateRecord(initialConf) },
        previousLastIndex: 0,
        sync: true,
      });
      await wal.saveMetadata(encodeIdentity(identity));
      storage.applySnapshot(snapshot);
      storage.setHardState({ term: 1, vote: 0n, commit: 1 });
      confState = snapshot.metadata.confState;
      snapshotIndex = 1;
      log.info({ 'local-member-id': identity.memberId.toString(16), 'cluster-id': identity.clusterId.toString(16) }, 'bootstrapped a new cluster');
    } else {
      identity = decodeIdentity(contents.metadata);
      membership = new Membership(identity.clusterId, membershipPersistence);
      const members: Member[] = [];
      for await (const [, v] of membersBucket.iterate()) members.push(decodeMember(v));
      membership.restore(members, await readRemovedIds(removedBucket));
      const self = membership.get(identity.memberId);
      if (self) self.clientUrls = cfg.advertiseClientUrls;
      if (contents.snapshot) {
        const snap: Snapshot = {
          data: new Uint8Array(),
          metadata: { index: contents.snapshot.index, term: contents.snapshot.term, confState: decodeConfStateRecord(contents.snapshot.data) },
        };
        storage.applySnapshot(snap);
        confState = snap.metadata.confState;
        snapshotIndex = snap.metadata.index;
      }
      if (contents.hardState) storage.setHardState(contents.hardState);
      storage.append(contents.entries);
      log.info(
        { 'local-member-id': identity.memberId.toString(16), 'wal-entries': contents.entries.length, 'consistent-index': store.consistentIndex },
        'restarting member from data directory',
      );
    }

    const records: LeaseRecord[] = [];
    for await (const [, v] of leaseBucket.iterate()) records.push(decodeLease(v));
    lessor.restore(records);
    for (const kv of store.rangeCurrent(Buffer.from([0]), Buffer.from([0]), {}).kvs) {
      if (kv.lease !== 0n) lessor.attach(kv.lease, kv.key.toString('latin1'));
    }

    const applied = Math.max(snapshotIndex, Math.min(store.consistentIndex, storage.initialState().hardState.commit));
    const server = new EtcdServer(cfg, log, metrics, wal, store, lessor, membership, identity, storage, applied);
    await server.loadAlarms();
    server.dbSizeBytes = await store.backend.sizeBytes();
    server.confState = confState;
    server.snapshotIndex = snapshotIndex;
    return server;
  }

  /** Starts the Raft node; a single voter elects itself at once. */
  start(transport?: PeerTransport): void {
    this.transport = transport;
    const send = (messages: Message[]): void => transport?.send(messages);
    for (const m of this.membership.list()) if (m.id !== this.memberId) transport?.addPeer(m.id, m.peerUrls);
    const tickMs = this.cfg.heartbeatIntervalMs;
    this.raft = new RaftNode({
      id: this.memberId,
      storage: this.storage,
      wal: this.wal,
      // Raft replays every committed entry after the last snapshot, even those the backend already
      // holds (they are skipped by the apply loop), so its configuration sees every conf change.
      applied: this.snapshotIndex,
      electionTicks: Math.max(1, Math.round(this.cfg.electionTimeoutMs / tickMs)),
      heartbeatTicks: 1,
      tickMs,
      preVote: this.cfg.preVote,
      maxSizePerMsgBytes: MAX_SIZE_PER_MSG_BYTES,
      maxInflightMsgs: MAX_INFLIGHT_MSGS,
      maxUncommittedEntriesSizeBytes: MAX_UNCOMMITTED_ENTRIES_BYTES,
      send,
      apply: (entries) => this.applyEntries(entries),
      onLeaderChange: (lead, term) => this.onLeaderChange(lead, term),
      onReadStates: (rs) => this.readIndexer.onReadStates(rs),
      installSnapshot: (snap) => this.installSnapshot(snap),
      random: ((rng) => () => rng.next())(new Rng(Number(this.memberId & 0xffffffffn) ^ Date.now())),
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
    if (this.membership.voters().length === 1 && this.membership.voters()[0] === this.memberId) this.campaignWhenReplayed();
    this.leaseTimer = setInterval(() => this.revokeExpiredLeases(), LEASE_EXPIRY_CHECK_MS);
    this.waitSweeper = setInterval(() => this.wait.expire(Date.now(), () => ({ err: new ErrTimeout() })), WAIT_SWEEP_MS);
    this.dbSizeTimer = setInterval(() => {
      this.store.backend.sizeBytes().then(
        (n) => {
          this.dbSizeBytes = n;
          this.metrics.dbTotalSizeBytes.set(n);
        },
        () => undefined,
      );
    }, DB_SIZE_REFRESH_MS);
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
      this.propose({ member_attributes: { ID: this.memberIdStr, name: this.cfg.name, clientURLs: this.cfg.advertiseClientUrls } }).then(
        () => this.log.info({ 'client-urls': this.cfg.advertiseClientUrls }, 'published local member to cluster through raft'),
        () => {
          this.publishTimer = setTimeout(attempt, 500);
        },
      );
    };
    const same = self && self.name === this.cfg.name && self.clientUrls.join(',') === this.cfg.advertiseClientUrls.join(',');
    if (!same || this.membership.list().length > 1) attempt();
  }

  reportUnreachable(id: bigint): void {
    this.raft?.reportUnreachable(id);
  }

  reportSnapshot(id: bigint, ok: boolean): void {
    this.raft?.reportSnapshot(id, ok);
  }

  /** Incoming traffic from the peer transport. */
  stepMessages(messages: Message[]): void {
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

  /** A MsgSnap with the leader's backend: keep the data until Raft accepts the snapshot. */
  receiveSnapshot(m: Message, entries: [Buffer, Buffer][]): void {
    if (!m.snapshot) return;
    this.incomingSnapshot = { index: m.snapshot.metadata.index, entries };
    this.stepMessages([m]);
  }

  /** Subscribes to backend replacements by a leader snapshot (the watch hub resyncs its watchers). */
  onSnapshotInstalled(listener: () => void): void {
    this.snapshotListeners.push(listener);
  }

  private async installSnapshot(snap: Snapshot): Promise<void> {
    const incoming = this.incomingSnapshot;
    this.incomingSnapshot = undefined;
    this.confState = snap.metadata.confState;
    this.snapshotIndex = snap.metadata.index;
    if (!incoming || incoming.index !== snap.metadata.index) {
      throw new Error(`raft accepted snapshot ${snap.metadata.index} without its data`);
    }
    this.log.info({ index: snap.metadata.index, entries: incoming.entries.length }, 'installing snapshot from leader');
    await this.store.replaceContents([incoming.entries]);
    await this.reloadFromBackend();
    this.appliedWait.advance(Math.max(snap.metadata.index, this.store.consistentIndex));
    for (const l of this.snapshotListeners) l();
  }

  private async loadAlarms(): Promise<void> {
    const alarms: Alarm[] = [];
    for await (const [k] of this.store.backend.bucket(ALARM_BUCKET).iterate()) alarms.push(decodeAlarmKey(k.subarray(k.length - 9)));
    this.alarms.restore(alarms);
  }

  /** Lessor and membership state after the backend was replaced. */
  private async reloadFromBackend(): Promise<void> {
    await this.loadAlarms();
    const records: LeaseRecord[] = [];
    for await (const [, v] of this.store.backend.bucket(LEASE_BUCKET).iterate()) records.push(decodeLease(v));
    this.lessor.restore(records);
    for (const kv of this.store.rangeCurrent(Buffer.from([0]), Buffer.from([0]), {}).kvs) {
      if (kv.lease !== 0n) this.lessor.attach(kv.lease, kv.key.toString('latin1'));
    }
    if (this.raft.isLeader) this.lessor.promote(this.cfg.electionTimeoutMs);
    const members: Member[] = [];
    for await (const [, v] of this.store.backend.bucket(MEMBERS_BUCKET).iterate()) members.push(decodeMember(v));
    this.membership.restore(members, await readRemovedIds(this.store.backend.bucket(MEMBERS_REMOVED_BUCKET)));
    for (const m of members) if (m.id !== this.memberId) this.transport?.addPeer(m.id, m.peerUrls);
    for (const id of this.transport?.peerIds() ?? []) if (!this.membership.get(id)) this.transport?.removePeer(id);
  }

  /**
   * Log compaction (etcd's snapshot-count): once enough entries were applied since the last
   * snapshot, record a snapshot at the applied index and drop the log below it, keeping
   * --snapshot-catchup-entries so slow followers can catch up from the log. The backend is fsynced
   * first, because once the log is gone the backend is the only copy.
   */
  private maybeSnapshot(): void {
    const applied = this.appliedWait.index;
    if (this.snapshotting || applied - this.snapshotIndex <= this.cfg.snapshotCount) return;
    // Entries are applied while the Ready that carries them is still being written, so the applied
    // index can be ahead of the in-memory log for a moment; the snapshot waits for a later apply.
    if (applied > this.storage.lastIndex() || applied < this.storage.firstIndex() - 1) return;
    this.snapshotting = true;
    const confState = this.confState;
    void (async () => {
      try {
        const term = this.storage.term(applied);
        await this.store.forceCommit({ sync: true });
        this.storage.createSnapshot(applied, confState, new Uint8Array());
        await this.wal.saveSnapshot({ index: applied, term, data: encodeConfStateRecord(confState) });
        this.snapshotIndex = applied;
        const compactTo = applied - this.cfg.snapshotCatchupEntries;
        if (compactTo > this.storage.firstIndex()) {
          this.storage.compact(compactTo);
          await this.wal.compact(compactTo - 1);
        }
        this.log.info({ index: applied, 'compacted-to': compactTo }, 'saved snapshot and compacted raft log');
      } catch (e) {
        this.log.error({ err: e instanceof Error ? e.message : String(e) }, 'snapshot failed');
      } finally {
        this.snapshotting = false;
      }
    })();
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
    return this.appliedWait.index;
  }

  /** Subscribes to every committed change, in revision order, right after it becomes readable. */
  onCommit(listener: CommitListener): void {
    this.commitListeners.push(listener);
  }

  // ---------------------------------------------------------------- KV

  async range(r: RangeRequest) {
    if (!r.serializable) await this.linearizableReadNotify();
    this.metrics.rangeTotal.inc();
    return this.applier.range(r, this.header);
  }

  put(r: PutRequest) {
    this.checkQuota(r.key.length + r.value.length);
    return this.proposeFor({ put: r });
  }

  deleteRange(r: DeleteRangeRequest) {
    return this.proposeFor({ delete_range: r });
  }

  async txn(r: TxnRequest) {
    if (isTxnReadOnly(r)) {
      if (!isTxnSerializable(r)) await this.linearizableReadNotify();
      return this.applier.readOnlyTxn(r, this.header);
    }
    this.checkQuota(txnCost(r));
    return this.proposeFor({ txn: r });
  }

  async compact(r: CompactionRequest) {
    const result = await this.propose({ compaction: r });
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
    await this.readIndexer.linearizableRead();
  }

  // ---------------------------------------------------------------- leases

  leaseGrant(r: LeaseGrantRequest) {
    let id = BigInt(r.ID);
    // etcd picks a positive ID from the member-scoped generator when the client leaves it 0.
    if (id === 0n) id = this.ids.nextId() & ((1n << 63n) - 1n);
    this.checkQuota(LEASE_COST_BYTES);
    return this.proposeFor({ lease_grant: { ID: id.toString(), TTL: r.TTL } });
  }

  leaseRevoke(id: bigint) {
    return this.proposeFor({ lease_revoke: { ID: id.toString() } });
  }

  // ---------------------------------------------------------------- alarms and quota

  private applyAlarm(r: AlarmRequest) {
    const memberId = BigInt(r.memberID);
    let alarms: Alarm[] = [];
    switch (r.action) {
      case AlarmAction.GET:
        alarms = this.alarms.get(r.alarm);
        break;
      case AlarmAction.ACTIVATE: {
        if (r.alarm === AlarmType.NONE) break;
        const a = this.alarms.activate(memberId, r.alarm);
        if (a) {
          alarms = [a];
          this.log.warn({ alarm: AlarmType[a.type], member: a.memberId.toString(16) }, 'alarm raised');
        }
        break;
      }
      case AlarmAction.DEACTIVATE: {
        const a = this.alarms.deactivate(memberId, r.alarm);
        if (a) {
          alarms = [a];
          if (a.type === AlarmType.NOSPACE) this.noSpaceRaised = false;
          this.log.info({ alarm: AlarmType[a.type], member: a.memberId.toString(16) }, 'alarm cleared');
        }
        break;
      }
    }
    return { header: this.header(this.store.rev), alarms: alarms.map(AlarmStore.toMsg) };
  }

  /** The Alarm RPC: GET is answered locally after ReadIndex; changes go through the log. */
  async alarm(r: AlarmRequest) {
    if (r.action === AlarmAction.GET) {
      await this.linearizableReadNotify();
      return { header: this.header(this.store.rev), alarms: this.alarms.get(r.alarm).map(AlarmStore.toMsg) };
    }
    return (await this.propose({ alarm: r })).response;
  }

  /**
   * etcd's backend quota: a write that would grow the backend past --quota-backend-bytes raises the
   * NOSPACE alarm (through the log, once) and is refused; while NOSPACE is raised the applier
   * refuses puts, txns with puts and lease grants on every member, so only reads, deletes and
   * compaction get through until `alarm disarm`.
   */
  checkQuota(costBytes: number): void {
    if (this.dbSizeBytes + costBytes < this.cfg.quotaBackendBytes) {
      // Count accepted writes until the next measurement, so a burst cannot overshoot the quota.
      this.dbSizeBytes += costBytes;
      return;
    }
    if (!this.noSpaceRaised) {
      this.noSpaceRaised = true;
      this.propose({ alarm: { action: AlarmAction.ACTIVATE, memberID: this.memberIdStr, alarm: AlarmType.NOSPACE } }).catch(() => {
        this.noSpaceRaised = false;
      });
    }
    throw new ErrNoSpace();
  }

  /** Refresh the cached backend size now (after compaction and defragmentation). */
  async refreshDbSize(): Promise<number> {
    this.dbSizeBytes = await this.store.backend.sizeBytes();
    return this.dbSizeBytes;
  }

  /** Status errors, formatted as etcd does. */
  alarmErrors(): string[] {
    return this.alarms.get(AlarmType.NONE).map((a) => `memberID:${a.memberId} alarm:${AlarmType[a.type]} `);
  }

  // ---------------------------------------------------------------- cluster membership

  get isLearner(): boolean {
    return this.membership.get(this.memberId)?.isLearner ?? false;
  }

  /** MemberAdd: a new member (or learner) with an ID derived from its URLs, the token and the time. */
  async addMember(peerUrls: string[], isLearner: boolean): Promise<{ member: Member; members: Member[] }> {
    for (const u of peerUrls) {
      try {
        const url = new URL(u);
        if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error();
      } catch {
        throw new ErrMemberBadURLs();
      }
    }
    if (peerUrls.length === 0) throw new ErrMemberBadURLs();
    const taken = new Set(this.membership.list().flatMap((m) => m.peerUrls));
    if (peerUrls.some((u) => taken.has(u))) throw new ErrPeerURLExist();
    if (isLearner && this.membership.list().filter((m) => m.isLearner).length >= MAX_LEARNERS) throw new ErrTooManyLearners();
    const id = computeMemberId(peerUrls, this.cfg.initialClusterToken, Math.floor(Date.now() / 1000));
    if (this.membership.get(id) || this.membership.isRemoved(id)) throw new ErrMemberExist();
    const member: Member = { id, name: '', peerUrls, clientUrls: [], isLearner };
    const members = await this.proposeConfChange(isLearner ? ConfChangeType.AddLearnerNode : ConfChangeType.AddNode, id, member);
    return { member, members };
  }

  async removeMember(id: bigint): Promise<Member[]> {
    if (!this.membership.get(id)) throw new ErrMemberNotFound();
    return this.proposeConfChange(ConfChangeType.RemoveNode, id);
  }

  async promoteMember(id: bigint): Promise<Member[]> {
    const m = this.membership.get(id);
    if (!m) throw new ErrMemberNotFound();
    if (!m.isLearner) throw new ErrMemberNotLearner();
    if (this.raft.isLeader && !this.learnerInSync(id)) throw new ErrLearnerNotReady();
    return this.proposeConfChange(ConfChangeType.AddNode, id, { ...m, isLearner: false });
  }

  async updateMember(id: bigint, peerUrls: string[]): Promise<Member[]> {
    const m = this.membership.get(id);
    if (!m) throw new ErrMemberNotFound();
    const taken = new Set(this.membership.list().filter((x) => x.id !== id).flatMap((x) => x.peerUrls));
    if (peerUrls.some((u) => taken.has(u))) throw new ErrPeerURLExist();
    return this.proposeConfChange(ConfChangeType.UpdateNode, id, { ...m, peerUrls });
  }

  /** etcd's isLearnerReady: the learner's log is within 90% of the leader's. */
  private learnerInSync(id: bigint): boolean {
    const st = this.raft.status();
    const pr = st.progress?.get(id);
    if (!pr) return false;
    return pr.match >= st.commit * LEARNER_READY_PERCENT;
  }

  private async proposeConfChange(type: ConfChangeType, nodeId: bigint, member?: Member): Promise<Member[]> {
    if (this.stopped) throw new ErrStopped();
    const requestId = this.ids.nextId().toString();
    const ctx: ConfChangeContext = { requestId, member: member ? memberToJson(member) : undefined };
    const done = this.wait.register(requestId);
    try {
      this.raft.proposeConfChange({ type, nodeId, context: Buffer.from(JSON.stringify(ctx)) });
    } catch (e) {
      this.wait.cancel(requestId);
      if (e instanceof ErrProposalDropped) throw this.raft.leader === 0n ? new ErrNoLeader() : new ErrTimeout();
      throw e;
    }
    let timer: NodeJS.Timeout | undefined;
    const outcome = await Promise.race([
      done,
      new Promise<ApplyOutcome>((resolve) => {
        timer = setTimeout(() => resolve({ err: new ErrTimeout() }), this.requestTimeoutMs);
      }),
    ]);
    clearTimeout(timer);
    if ('err' in outcome) {
      this.wait.cancel(requestId);
      throw outcome.err;
    }
    return this.membership.list();
  }

  /** MoveLeader: only the leader may hand leadership to a voting member (etcd's MoveLeader). */
  async moveLeader(target: bigint): Promise<void> {
    if (!this.raft.isLeader) throw new ErrNotLeader();
    const m = this.membership.get(target);
    if (!m || m.isLearner) throw new ErrBadLeaderTransferee();
    if (target === this.memberId) return;
    this.raft.transferLeader(target);
    const deadline = Date.now() + this.requestTimeoutMs;
    while (this.raft.leader !== target) {
      if (Date.now() > deadline) throw new ErrTimeoutLeaderTransfer();
      await new Promise((r) => setTimeout(r, this.cfg.heartbeatIntervalMs));
    }
  }

  // ---------------------------------------------------------------- leader-only lease requests

  /** KeepAlive: renewed by the leader's lessor; a follower forwards to the leader. */
  async leaseRenew(id: bigint): Promise<{ ttl: number; notFound: boolean }> {
    if (this.raft.isLeader) {
      try {
        return { ttl: this.lessor.renew(id), notFound: false };
      } catch (e) {
        if (e instanceof Error && e.message === 'lease not found') return { ttl: 0, notFound: true };
        throw e;
      }
    }
    const leader = this.raft.leader;
    if (leader === 0n || !this.transport) throw new ErrNoLeader();
    const res = leaseRenewResp.decode(
      await this.transport.forward(leader, '/cairnpb.Peer/LeaseRenew', leaseRenewReq.encode({ cluster_id: this.clusterIdStr, ID: id.toString() })),
    );
    return { ttl: Number(res.TTL), notFound: res.not_found };
  }

  /** TimeToLive is answered by the leader, whose lessor tracks expiry. */
  async leaseTimeToLive(id: bigint, keys: boolean): Promise<{ found: boolean; ttl: number; grantedTtl: number; keys: Buffer[] }> {
    if (this.raft.isLeader) {
      const t = this.lessor.timeToLive(id);
      if (!t) return { found: false, ttl: -1, grantedTtl: 0, keys: [] };
      return { found: true, ttl: t.ttlSeconds, grantedTtl: t.grantedTtlSeconds, keys: keys ? t.keys.map((k) => Buffer.from(k, 'latin1')) : [] };
    }
    const leader = this.raft.leader;
    if (leader === 0n || !this.transport) throw new ErrNoLeader();
    const res = ttlResp.decode(
      await this.transport.forward(leader, '/cairnpb.Peer/LeaseTimeToLive', ttlReq.encode({ cluster_id: this.clusterIdStr, ID: id.toString(), keys })),
    );
    return { found: res.found, ttl: Number(res.TTL), grantedTtl: Number(res.grantedTTL), keys: res.keys };
  }

  // ---------------------------------------------------------------- proposals

  private async proposeFor(req: InternalRaftRequest) {
    return (await this.propose(req)).response;
  }

  /** Proposes a request through Raft and resolves with its apply result (etcd processInternalRaftRequestOnce). */
  async propose(req: InternalRaftRequest): Promise<ApplyResult> {
    if (this.stopped) throw new ErrStopped();
    // Commit running far ahead of apply means the apply loop is overloaded (etcd's check).
    if (this.raft.commitIndex > this.appliedWait.index + MAX_GAP_BETWEEN_APPLY_AND_COMMIT) throw new ErrTooManyRequests();
    const id = this.ids.nextId().toString();
    req.header = { ID: id };
    const data = this.requestCodec.encode(req);
    if (data.length > this.cfg.maxRequestBytes) throw new ErrRequestTooLarge();
    const done = this.wait.register(id, Date.now() + this.requestTimeoutMs);
    try {
      this.raft.propose(data);
    } catch (e) {
      this.wait.cancel(id);
      this.metrics.proposalsFailed.inc();
      if (e instanceof ErrProposalDropped) throw this.raft.leader === 0n ? new ErrNoLeader() : new ErrTimeout();
      throw e;
    }
    // The leader applies the very entry object it proposed: no need to decode it again.
    this.proposed.set(data, req);
    this.metrics.proposalsPending.inc();
    const outcome = await done;
    this.metrics.proposalsPending.dec();
    if ('err' in outcome) throw outcome.err;
    return outcome.ok;
  }

  // ---------------------------------------------------------------- the apply loop

  /** Applies committed entries in log order; entries already in the store (replay) are skipped. */
  private applyEntries(entries: Entry[]): void | Promise<void> {
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i];
      if (e.index <= this.store.consistentIndex) {
        // The backend already holds this entry: a restart replays the WAL from the last snapshot,
        // and a received snapshot's data is newer than its index. Raft's configuration lives
        // outside the backend and must still follow every conf change, or a member that joined
        // by snapshot never finds itself among the voters and never campaigns.
        if (e.type !== EntryType.Normal) this.applyConfChangeEntry(e);
        this.appliedWait.advance(e.index);
        continue;
      }
      const pending = this.applyEntry(e);
      if (pending) {
        // A txn reading past revisions yields once; the rest of the batch continues after it.
        return pending.then(() => this.applyEntries(entries.slice(i + 1)));
      }
    }
  }

  private applyEntry(e: Entry): Promise<void> | undefined {
    if (e.type !== EntryType.Normal) {
      this.applyConfChangeEntry(e);
      this.finishApply(e.index);
      return undefined;
    }
    if (e.data.length === 0) {
      // The empty entry a new leader commits in its term: from now on it owns lease expiry.
      this.store.write().end({ consistentIndex: e.index });
      if (this.raft.isLeader) this.lessor.promote(this.cfg.electionTimeoutMs);
      this.finishApply(e.index);
      return undefined;
    }
    const req = this.proposed.get(e.data) ?? this.requestCodec.decode(e.data);
    if (req.alarm) {
      const response = this.applyAlarm(req.alarm);
      this.store.write().end({ consistentIndex: e.index });
      if (req.header?.ID) this.wait.trigger(req.header.ID, { ok: { response } });
      this.finishApply(e.index);
      return undefined;
    }
    if (req.member_attributes) {
      const a = req.member_attributes;
      const m = this.membership.get(BigInt(a.ID));
      if (m) {
        this.membership.add({ ...m, name: a.name, clientUrls: a.clientURLs });
        // A dial override keyed by name resolves only now, for a member added after this one started.
        if (m.id !== this.memberId) this.transport?.addPeer(m.id, m.peerUrls);
      }
      this.store.write().end({ consistentIndex: e.index });
      if (req.header?.ID) this.wait.trigger(req.header.ID, { ok: { response: undefined } });
      this.finishApply(e.index);
      return undefined;
    }
    const started = performance.now();
    const outcome = this.applier.apply(e.index, req, this.header);
    const complete = (o: ApplyOutcome): void => {
      this.applyHistogram(opName(req), 'ok' in o).observe((performance.now() - started) / 1000);
      const id = req.header?.ID;
      if (id) this.wait.trigger(id, o);
      this.finishApply(e.index);
    };
    if (outcome instanceof Promise) return outcome.then(complete);
    complete(outcome);
    return undefined;
  }

  private readonly applyHistograms = new Map<string, ReturnType<ServerMetrics['applySeconds']['labels']>>();

  private applyHistogram(op: string, success: boolean): ReturnType<ServerMetrics['applySeconds']['labels']> {
    const key = `${op}:${success}`;
    let h = this.applyHistograms.get(key);
    if (!h) {
      h = this.metrics.applySeconds.labels({ version: 'v3', op, success: String(success) });
      this.applyHistograms.set(key, h);
    }
    return h;
  }

  private finishApply(index: number): void {
    this.appliedWait.advance(index);
    this.metrics.proposalsApplied.set(index);
    this.maybeSnapshot();
  }

  /**
   * A committed membership change: Raft's configuration always follows the log (even for entries
   * the backend already holds after a snapshot), the member list only for entries not yet applied.
   */
  private applyConfChangeEntry(e: Entry): void {
    const cc = decodeConfChange(e.type, e.data);
    this.confState = this.raft.applyConfChange(cc);
    const ctx = cc.context && cc.context.length > 0 ? (JSON.parse(Buffer.from(cc.context).toString()) as ConfChangeContext) : undefined;
    if (e.index <= this.store.consistentIndex) {
      // Already in the backend (a snapshot covered it): the member list is current; answer the proposer.
      if (ctx?.requestId) this.wait.trigger(ctx.requestId, { ok: { response: this.membership.list() } });
      return;
    }
    const single = 'nodeId' in cc ? (cc as ConfChange) : undefined;
    if (single) {
      const id = single.nodeId;
      switch (single.type) {
        case ConfChangeType.AddNode:
        case ConfChangeType.AddLearnerNode: {
          const existing = this.membership.get(id);
          const isLearner = single.type === ConfChangeType.AddLearnerNode;
          if (existing) this.membership.add({ ...existing, isLearner });
          else if (ctx?.member) this.membership.add(memberFromJson(ctx.member));
          const m = this.membership.get(id);
          if (m && id !== this.memberId) this.transport?.addPeer(id, m.peerUrls);
          break;
        }
        case ConfChangeType.RemoveNode:
          this.membership.remove(id);
          this.transport?.removePeer(id);
          if (id === this.memberId) {
            this.removedFromCluster('this member was removed from the cluster; it will stop serving');
          }
          break;
        case ConfChangeType.UpdateNode: {
          const existing = this.membership.get(id);
          if (existing && ctx?.member) {
            this.membership.add({ ...existing, peerUrls: ctx.member.peerUrls });
            this.transport?.removePeer(id);
            if (id !== this.memberId) this.transport?.addPeer(id, ctx.member.peerUrls);
          }
          break;
        }
      }
    }
    this.store.write().end({ consistentIndex: e.index });
    if (ctx?.requestId) this.wait.trigger(ctx.requestId, { ok: { response: this.membership.list() } });
  }

  private onLeaderChange(lead: bigint, term: number): void {
    this.term = term;
    this.metrics.hasLeader.set(lead === 0n ? 0 : 1);
    this.metrics.isLeader.set(lead === this.memberId ? 1 : 0);
    this.metrics.leaderChanges.inc();
    if (lead !== this.memberId) this.lessor.demote();
    this.readIndexer.onLeaderChange();
    this.log.info({ leader: lead.toString(16), term }, lead === 0n ? 'lost leader' : 'elected leader');
  }

  private revokeExpiredLeases(): void {
    if (!this.raft.isLeader) return;
    for (const id of this.lessor.expired(LEASE_REVOKES_PER_CHECK)) {
      this.leaseRevoke(id).catch((e: unknown) => {
        this.log.warn({ lease: id.toString(16), err: toEtcdError(e).message }, 'failed to revoke expired lease');
      });
    }
  }


  private readonly selfRemovedListeners: (() => void)[] = [];

  /** Called once when this member learns it was removed from the cluster and stops (etcd exits then). */
  onSelfRemoved(listener: () => void): void {
    this.selfRemovedListeners.push(listener);
  }

  /** Through the log, or a peer refusing our traffic because we were removed (etcd's ErrMemberRemoved). */
  removedFromCluster(why: string): void {
    if (this.stopped) return;
    this.log.warn({ 'local-member-id': this.memberId.toString(16) }, why);
    // Remember it (stop() syncs the backend): a restart on this data dir then refuses at once,
    // even when we learnt it from a peer's refusal rather than by applying our own removal.
    if (!this.membership.isRemoved(this.memberId)) this.membership.remove(this.memberId);
    setImmediate(() => {
      void this.stop().then(() => {
        for (const l of this.selfRemovedListeners) l();
      });
    });
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.leaseTimer) clearInterval(this.leaseTimer);
    if (this.publishTimer) clearTimeout(this.publishTimer);
    if (this.dbSizeTimer) clearInterval(this.dbSizeTimer);
    if (this.waitSweeper) clearInterval(this.waitSweeper);
    this.wait.triggerAll({ err: new ErrStopped() });
    this.readIndexer.close(new ErrStopped());
    this.transport?.close();
    await this.raft.stop();
    await this.store.close();
    await this.wal.close();
  }

  // ---- watch, lease and recipes (issue 4)

  private leaseCheckpointTimer: NodeJS.Timeout | undefined;
  private leaseCheckpointIntervalMs = DEFAULT_LEASE_CHECKPOINT_INTERVAL_MS;

  /**
   * --experimental-enable-lease-checkpoint: every checkpoint interval (etcd's default 5 min;
   * CAIRN_LEASE_CHECKPOINT_INTERVAL_MS overrides it, for tests) the leader proposes the remaining
   * TTL of every lease longer than the interval through the log, at most 1000 per entry (etcd's
   * maxLeaseCheckpointBatchSize). Applied on every member and persisted with the lease, so a new
   * leader, or this member after a restart, resumes from the checkpointed remaining TTL instead of
   * the full TTL. Does nothing when the flag is off.
   */
  startLeaseCheckpointing(intervalMs = leaseCheckpointIntervalFromEnv()): void {
    if (!this.cfg.enableLeaseCheckpoint || this.leaseCheckpointTimer || this.stopped) return;
    this.leaseCheckpointIntervalMs = intervalMs;
    // etcd lessor.Renew: renewing a lease that carries a checkpointed remaining TTL proposes a
    // checkpoint of 0, so no member (nor this one after a restart) goes on using the stale figure.
    this.lessor.onRenewOfCheckpointed((id) => this.proposeLeaseCheckpoints([{ id, remainingTtlSeconds: 0 }]));
    this.leaseCheckpointTimer = setInterval(() => this.checkpointLeases(), intervalMs);
    this.leaseCheckpointTimer.unref();
  }

  private checkpointLeases(): void {
    if (this.stopped) {
      clearInterval(this.leaseCheckpointTimer);
      return;
    }
    if (!this.raft.isLeader) return;
    const due = this.lessor.remainingForCheckpoint(Math.floor(this.leaseCheckpointIntervalMs / 1000));
    for (let i = 0; i < due.length; i += LEASE_CHECKPOINT_BATCH) this.proposeLeaseCheckpoints(due.slice(i, i + LEASE_CHECKPOINT_BATCH));
  }

  private proposeLeaseCheckpoints(cps: { id: bigint; remainingTtlSeconds: number }[]): void {
    if (cps.length === 0 || this.stopped) return;
    const checkpoints = cps.map((c) => ({ ID: c.id.toString(), remaining_TTL: String(c.remainingTtlSeconds) }));
    this.propose({ lease_checkpoint: { checkpoints } }).catch((e: unknown) => {
      this.log.warn({ leases: cps.length, err: toEtcdError(e).message }, 'failed to checkpoint leases');
    });
  }
}

/** etcd's defaultLeaseCheckpointInterval. */
export const DEFAULT_LEASE_CHECKPOINT_INTERVAL_MS = 5 * 60 * 1000;
/** etcd's maxLeaseCheckpointBatchSize. */
export const LEASE_CHECKPOINT_BATCH = 1000;

function leaseCheckpointIntervalFromEnv(): number {
  return testingSwitches.leaseCheckpointIntervalMs ?? DEFAULT_LEASE_CHECKPOINT_INTERVAL_MS;
}

/** The backend bytes a lease record costs, for the quota check (etcd's leaseOverhead). */
export const LEASE_COST_BYTES = 64;

function txnCost(r: TxnRequest): number {
  let cost = 0;
  for (const op of [...r.success, ...r.failure]) {
    if (op.request_put) cost += op.request_put.key.length + op.request_put.value.length;
    if (op.request_txn) cost += txnCost(op.request_txn);
  }
  return cost;
}

/** etcd allows one learner at a time (maxLearners). */
export const MAX_LEARNERS = 1;
/** A learner may be promoted once its log is within this fraction of the leader's (etcd: 90%). */
export const LEARNER_READY_PERCENT = 0.9;

interface MemberJson {
  id: string;
  name: string;
  peerUrls: string[];
  clientUrls: string[];
  isLearner: boolean;
}

/** Carried in a ConfChange's context: who waits for it, and the member it adds or updates. */
interface ConfChangeContext {
  requestId?: string;
  member?: MemberJson;
}

function memberToJson(m: Member): MemberJson {
  return { id: m.id.toString(), name: m.name, peerUrls: m.peerUrls, clientUrls: m.clientUrls, isLearner: m.isLearner };
}

function memberFromJson(j: MemberJson): Member {
  return { id: BigInt(j.id), name: j.name, peerUrls: j.peerUrls, clientUrls: j.clientUrls, isLearner: j.isLearner };
}

function opName(req: InternalRaftRequest): string {
  if (req.put) return 'Put';
  if (req.delete_range) return 'DeleteRange';
  if (req.txn) return 'Txn';
  if (req.compaction) return 'Compaction';
  if (req.lease_grant) return 'LeaseGrant';
  if (req.lease_revoke) return 'LeaseRevoke';
  return 'Other';
}

function encodeLease(r: LeaseRecord): Buffer {
  const b = Buffer.alloc(24);
  b.writeBigUInt64BE(r.id, 0);
  b.writeBigInt64BE(BigInt(r.ttlSeconds), 8);
  b.writeBigInt64BE(BigInt(r.remainingTtlSeconds), 16);
  return b;
}

function decodeLease(b: Buffer): LeaseRecord {
  return { id: b.readBigUInt64BE(0), ttlSeconds: Number(b.readBigInt64BE(8)), remainingTtlSeconds: Number(b.readBigInt64BE(16)) };
}
