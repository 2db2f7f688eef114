import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Logger } from 'pino';
import { MemoryStorage, EntryType, ErrProposalDropped, type Entry, type Message, type Snapshot, type ConfState } from '../raft';
import { KvStore } from '../mvcc/kv-store';
import { Lessor, type LeaseRecord } from '../mvcc/lessor';
import { messageCodec, type MessageCodec } from '../proto';
import type {
  CompactionRequest,
  DeleteRangeRequest,
  InternalRaftRequest,
  LeaseGrantRequest,
  PutRequest,
  RangeRequest,
  ResponseHeader,
  TxnRequest,
} from '../proto/etcd-types';
import { Applier, type ApplyOutcome, type ApplyResult, type CommitListener } from './apply';
import type { ServerConfig } from './config';
import { ErrNoLeader, ErrRequestTooLarge, ErrStopped, ErrTimeout, ErrTooManyRequests } from './errors';
import { toEtcdError } from './grpc-errors';
import { IdGenerator } from './id-generator';
import { computeClusterId, computeMemberId } from './member-id';
import { Membership, decodeMember, encodeMember, type Member } from './membership';
import type { ServerMetrics } from './metrics';
import { RaftNode } from './raft-node';
import { ReadIndexer } from './read-index';
import { isTxnReadOnly, isTxnSerializable } from './txn-check';
import { AppliedIndexWait, Wait } from './wait';
import { Wal } from './wal';
import { mulberry32 } from './random';

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

function encodeConfState(cs: ConfState): Buffer {
  return Buffer.from(JSON.stringify({ voters: cs.voters.map(String), learners: cs.learners.map(String) }));
}

function decodeConfState(b: Uint8Array): ConfState {
  const o = JSON.parse(Buffer.from(b).toString()) as { voters: string[]; learners: string[] };
  return { voters: o.voters.map(BigInt), learners: o.learners.map(BigInt), votersOutgoing: [], learnersNext: [], autoLeave: false };
}

const LEASE_BUCKET = 'lease';
const MEMBERS_BUCKET = 'members';

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
  private commitIndex = 0;
  private leaseTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  private readonly requestTimeoutMs: number;
  private leaderSince = 0;
  private readonly commitListeners: CommitListener[] = [];

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
    this.applier = new Applier(store, lessor, (events, rev) => {
      for (const l of this.commitListeners) l(events, rev);
    });
    // etcd's ReqTimeout: 5 s plus two election timeouts.
    this.requestTimeoutMs = 5000 + 2 * cfg.electionTimeoutMs;
    this.readIndexer = new ReadIndexer({
      requestReadIndex: (ctx) => this.raft.readIndex(ctx),
      waitApplied: (index) => this.appliedWait.wait(index),
      timeoutMs: this.requestTimeoutMs,
    });
  }

  /** Opens (or bootstraps) the data directory and replays the WAL into the store. */
  static async open(cfg: ServerConfig, log: Logger, metrics: ServerMetrics): Promise<EtcdServer> {
    const memberDir = path.join(cfg.dataDir, 'member');
    fs.mkdirSync(path.join(memberDir, 'snap'), { recursive: true, mode: 0o700 });
    const wal = await Wal.open(path.join(memberDir, 'wal'), (s) => metrics.walFsyncSeconds.observe(s));
    const contents = await wal.readAll();
    const store = await KvStore.open(path.join(memberDir, 'snap', 'db'));
    const backend = store.backend;
    const leaseBucket = backend.bucket(LEASE_BUCKET);
    const membersBucket = backend.bucket(MEMBERS_BUCKET);
    const membershipPersistence = {
      putMember: (m: Member) => membersBucket.put(leaseKey(m.id), encodeMember(m)),
      deleteMember: (id: bigint) => membersBucket.del(leaseKey(id)),
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
    if (!contents.metadata) {
      if (cfg.initialClusterState !== 'new') {
        throw new Error('--initial-cluster-state=existing is not supported yet: start members as a new cluster');
      }
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
      const confState: ConfState = { voters: members.map((m) => m.id), learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false };
      const snapshot: Snapshot = { data: new Uint8Array(), metadata: { index: 1, term: 1, confState } };
      await wal.save({
        entries: [],
        hardState: { term: 1, vote: 0n, commit: 1 },
        snapshot: { index: 1, term: 1, data: encodeConfState(confState) },
        previousLastIndex: 0,
        sync: true,
      });
      await wal.saveMetadata(encodeIdentity(identity));
      storage.applySnapshot(snapshot);
      storage.setHardState({ term: 1, vote: 0n, commit: 1 });
      log.info({ 'local-member-id': identity.memberId.toString(16), 'cluster-id': identity.clusterId.toString(16) }, 'bootstrapped a new cluster');
    } else {
      identity = decodeIdentity(contents.metadata);
      membership = new Membership(identity.clusterId, membershipPersistence);
      const members: Member[] = [];
      for await (const [, v] of membersBucket.iterate()) members.push(decodeMember(v));
      membership.restore(members);
      const self = membership.get(identity.memberId);
      if (self) self.clientUrls = cfg.advertiseClientUrls;
      if (contents.snapshot) {
        storage.applySnapshot({
          data: new Uint8Array(),
          metadata: { index: contents.snapshot.index, term: contents.snapshot.term, confState: decodeConfState(contents.snapshot.data) },
        });
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

    const snapIndex = contents.snapshot?.index ?? 1;
    const applied = Math.max(snapIndex, Math.min(store.consistentIndex, storage.initialState().hardState.commit));
    return new EtcdServer(cfg, log, metrics, wal, store, lessor, membership, identity, storage, applied);
  }

  /** Starts the Raft node; a single voter elects itself at once. */
  start(send: (messages: Message[]) => void): void {
    const tickMs = this.cfg.heartbeatIntervalMs;
    this.raft = new RaftNode({
      id: this.memberId,
      storage: this.storage,
      wal: this.wal,
      applied: this.appliedWait.index,
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
      random: mulberry32(Number(this.memberId & 0xffffffffn) ^ Date.now()),
      log: this.log,
      metrics: this.metrics,
    });
    this.metrics.serverId.set({ server_id: this.memberId.toString(16) }, 1);
    this.raft.start();
    if (this.membership.voters().length === 1 && this.membership.voters()[0] === this.memberId) this.raft.campaign();
    this.leaseTimer = setInterval(() => this.revokeExpiredLeases(), LEASE_EXPIRY_CHECK_MS);
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
    return this.commitIndex;
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
    await this.readIndexer.linearizableRead();
  }

  // ---------------------------------------------------------------- leases

  leaseGrant(r: LeaseGrantRequest) {
    let id = BigInt(r.ID);
    // etcd picks a positive ID from the member-scoped generator when the client leaves it 0.
    if (id === 0n) id = this.ids.nextId() & ((1n << 63n) - 1n);
    return this.proposeFor({ lease_grant: { ID: id.toString(), TTL: r.TTL } });
  }

  leaseRevoke(id: bigint) {
    return this.proposeFor({ lease_revoke: { ID: id.toString() } });
  }

  // ---------------------------------------------------------------- proposals

  private async proposeFor(req: InternalRaftRequest) {
    return (await this.propose(req)).response;
  }

  /** Proposes a request through Raft and resolves with its apply result (etcd processInternalRaftRequestOnce). */
  async propose(req: InternalRaftRequest): Promise<ApplyResult> {
    if (this.stopped) throw new ErrStopped();
    if (this.commitIndex > this.appliedWait.index + MAX_GAP_BETWEEN_APPLY_AND_COMMIT) throw new ErrTooManyRequests();
    const id = this.ids.nextId().toString();
    req.header = { ID: id };
    const data = this.requestCodec.encode(req);
    if (data.length > this.cfg.maxRequestBytes) throw new ErrRequestTooLarge();
    const done = this.wait.register(id);
    try {
      this.raft.propose(data);
    } catch (e) {
      this.wait.cancel(id);
      this.metrics.proposalsFailed.inc();
      if (e instanceof ErrProposalDropped) throw this.raft.leader === 0n ? new ErrNoLeader() : new ErrTimeout();
      throw e;
    }
    this.metrics.proposalsPending.inc();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<ApplyOutcome>((resolve) => {
      timer = setTimeout(() => resolve({ err: new ErrTimeout() }), this.requestTimeoutMs);
    });
    const outcome = await Promise.race([done, timeout]);
    clearTimeout(timer);
    this.metrics.proposalsPending.dec();
    if ('err' in outcome) {
      this.wait.cancel(id);
      throw outcome.err;
    }
    return outcome.ok;
  }

  // ---------------------------------------------------------------- the apply loop

  /** Applies committed entries in log order; entries already in the store (replay) are skipped. */
  private applyEntries(entries: Entry[]): void | Promise<void> {
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i];
      this.commitIndex = Math.max(this.commitIndex, e.index);
      if (e.index <= this.store.consistentIndex) {
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
    const req = this.requestCodec.decode(e.data);
    const started = performance.now();
    const outcome = this.applier.apply(e.index, req, this.header);
    const complete = (o: ApplyOutcome): void => {
      this.metrics.applySeconds.observe({ version: 'v3', op: opName(req), success: String('ok' in o) }, (performance.now() - started) / 1000);
      const id = req.header?.ID;
      if (id) this.wait.trigger(id, o);
      this.finishApply(e.index);
    };
    if (outcome instanceof Promise) return outcome.then(complete);
    complete(outcome);
    return undefined;
  }

  private finishApply(index: number): void {
    this.appliedWait.advance(index);
    this.metrics.proposalsApplied.set(index);
  }

  private applyConfChangeEntry(e: Entry): void {
    // Membership changes arrive with the multi-member cluster; record progress so replay skips it.
    this.store.write().end({ consistentIndex: e.index });
  }

  private onLeaderChange(lead: bigint, term: number): void {
    this.term = term;
    this.metrics.hasLeader.set(lead === 0n ? 0 : 1);
    this.metrics.isLeader.set(lead === this.memberId ? 1 : 0);
    this.metrics.leaderChanges.inc();
    if (lead !== this.memberId) this.lessor.demote();
    else this.leaderSince = Date.now();
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

  get leaderForMs(): number {
    return this.raft.isLeader ? Date.now() - this.leaderSince : 0;
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.leaseTimer) clearInterval(this.leaseTimer);
    this.readIndexer.close(new ErrStopped());
    await this.raft.stop();
    await this.store.close();
    await this.wal.close();
  }
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
