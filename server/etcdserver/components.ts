import type { Logger } from 'pino';
import { WatchableStore } from '../../mvcc/watchable-store';
import type { ResponseHeader } from '../../proto/etcd-types';
import type { ServerConfig } from '../embed/config';
import { learnerReadyReq, learnerReadyResp, type PeerTransport } from '../rafthttp/transport';
import { AlarmStore } from './alarms';
import { AuthStore, BCRYPT_DEFAULT_COST, BCRYPT_MAX_COST, BCRYPT_MIN_COST } from '../auth/store';
import { newTokenProvider } from '../auth/new-token-provider';
import { AuthApplier } from './apply/auth';
import { AuthFrontend } from './auth-server';
import { ApplyChain } from './apply/apply-chain';
import { Applier } from './apply/applier';
import { CappedApplier } from './apply/capped';
import { alarmPersistence } from './backend-schema';
import type { Bootstrapped } from './bootstrap';
import { IdGenerator } from './id-generator';
import { LeaseLoop } from './lease-loop';
import { Reconfig } from './membership/reconfig';
import type { ServerMetrics } from './metrics';
import { Proposer } from './proposals';
import { BackendQuota } from './quota';
import type { RaftNode } from './raft-node';
import { ReadIndexer } from './read-index';
import { Snapshotter } from './snapshot';
import { AppliedIndexWait } from './wait';
import { ErrTimeout } from './errors';

/** etcd's applyAll: `go s.stopWithDelay(10*100*time.Millisecond, ...)` after applying its own removal. */
export const REMOVED_MEMBER_STOP_DELAY_MS = 1_000;

/** What the components reach back into the server for: the Raft node and transport exist only after start(). */
export interface ComponentHost {
  raft(): RaftNode;
  transport(): PeerTransport | undefined;
  header(revision: number): ResponseHeader;
  removedFromCluster(why: string, stopDelayMs?: number): void;
  forwardToLeader(path: string, body: Uint8Array): Promise<Buffer>;
}

/** The parts of one member, wired to each other (etcd's NewServer does this inline). */
export interface Components {
  ids: IdGenerator;
  alarms: AlarmStore;
  watchable: WatchableStore;
  /** Reads served from this member's state (Range, read-only Txn), by the same rules as apply. */
  applier: Applier;
  requestTimeoutMs: number;
  appliedWait: AppliedIndexWait;
  readIndexer: ReadIndexer;
  proposals: Proposer;
  snapshots: Snapshotter;
  applyChain: ApplyChain;
  leases: LeaseLoop;
  quota: BackendQuota;
  reconfig: Reconfig;
  auth: AuthFrontend;
}

/**
 * Builds every component of a member over what bootstrap opened. Each gets only what it uses;
 * the Raft node and the transport are reached lazily through the host, as they start later.
 */
export function buildComponents(cfg: ServerConfig, log: Logger, metrics: ServerMetrics, boot: Bootstrapped, host: ComponentHost): Components {
  const { identity, store, lessor, membership, storage } = boot;
  const ids = new IdGenerator(identity.memberId);
  const alarms = new AlarmStore(alarmPersistence(store));
  const watchable = new WatchableStore(store);
  const applier = new Applier(store, lessor);
  // etcd's ReqTimeout: 5 s plus two election timeouts.
  const requestTimeoutMs = 5000 + 2 * cfg.electionTimeoutMs;
  const appliedWait = new AppliedIndexWait(Math.max(boot.snapshotIndex, Math.min(store.consistentIndex, storage.initialState().hardState.commit)));
  const readIndexer = new ReadIndexer({
    requestReadIndex: (ctx) => host.raft().readIndex(ctx),
    waitApplied: (index) => appliedWait.wait(index),
    timeoutMs: requestTimeoutMs,
    nextCtx: () => ids.nextId(),
    // etcd's linearizableReadLoop logs and counts every re-send (slow_read_indexes_total).
    onRetry: (ctx) => {
      metrics.slowReadIndexes.inc();
      log.warn({ 'sent-request-id': Buffer.from(ctx).readBigUInt64BE().toString() }, 'waiting for ReadIndex response took too long, retrying');
    },
    // etcd's linearizableReadLoop: a timed-out round is a slow read index, any other failure
    // (not sent, leader changed) a failed one.
    onFailed: (err) => (err instanceof ErrTimeout ? metrics.slowReadIndexes : metrics.readIndexFailed).inc(),
  });
  const authStore = new AuthStore(store.backend, newTokenProvider({
    authToken: cfg.authToken,
    authTokenTtlSeconds: cfg.authTokenTtlSeconds,
    // A simple token names the entry that assigned it; one beyond our commit index is forged.
    waitApplied: async (index) => {
      if (index > Math.max(appliedWait.index, host.raft().commitIndex)) return false;
      await appliedWait.wait(index);
      return true;
    },
    log,
  }), bcryptCost(cfg.bcryptCost, log), log, (rev) => metrics.authRevision.set(rev));
  const proposals = new Proposer({
    raft: host.raft,
    ids: ids,
    metrics,
    maxRequestBytes: cfg.maxRequestBytes,
    requestTimeoutMs: requestTimeoutMs,
    appliedIndex: () => appliedWait.index,
  });
  const snapshots = new Snapshotter(
    {
      cfg,
      log,
      memberId: identity.memberId,
      store,
      wal: boot.wal,
      storage,
      lessor,
      membership,
      alarms: alarms,
      auth: authStore,
      appliedWait: appliedWait,
      isLeader: () => host.raft().isLeader,
      peers: host.transport,
      metrics,
    },
    { confState: boot.confState, snapshotIndex: boot.snapshotIndex },
  );
  const applyChain = new ApplyChain({
    memberId: identity.memberId,
    electionTimeoutMs: cfg.electionTimeoutMs,
    store,
    lessor,
    membership,
    alarms: alarms,
    // etcd's order: auth outermost, then the quota/NOSPACE cap, then the backend.
    applier: new AuthApplier(new CappedApplier(applier, alarms), applier, authStore, lessor, () => store.rev),
    proposals: proposals,
    appliedWait: appliedWait,
    metrics,
    log,
    header: host.header,
    raft: host.raft,
    peers: host.transport,
    onConfState: (cs) => {
      snapshots.confState = cs;
    },
    // etcd keeps a member that applied its own removal running for 1 s (stopWithDelay) so that, when
    // it leads, the commit of its removal reaches the others: stopping at once can leave them unsure
    // whether the removal committed, electing their next leader under the old configuration.
    onSelfRemoved: () => host.removedFromCluster('this member was removed from the cluster; it will stop serving', REMOVED_MEMBER_STOP_DELAY_MS),
  });
  const leases = new LeaseLoop({
    log,
    lessor,
    clusterId: identity.clusterId,
    enableLeaseCheckpoint: cfg.enableLeaseCheckpoint,
    raft: host.raft,
    transport: host.transport,
    propose: (req) => proposals.propose(req),
    confirmLeadership: () => readIndexer.linearizableRead(),
    waitApplied: () => appliedWait.wait(host.raft().commitIndex),
  });
  const quota = new BackendQuota({
    store,
    alarms: alarms,
    metrics,
    quotaBackendBytes: cfg.quotaBackendBytes,
    memberId: identity.memberId,
    propose: (req) => proposals.propose(req),
  });
  const reconfig = new Reconfig({
    memberId: identity.memberId,
    strictReconfigCheck: cfg.strictReconfigCheck,
    membership,
    raftStatus: () => host.raft().status(),
    activeSince: (id) => host.transport()?.activeSince(id),
    proposeConfChange: (type, nodeId, member) => proposals.proposeConfChange(type, nodeId, member),
    askLeaderLearnerReady: async (id) => {
      const res = await host.forwardToLeader('/cairnpb.Peer/LearnerReady', learnerReadyReq.encode({ cluster_id: identity.clusterId.toString(), ID: id.toString() }));
      return learnerReadyResp.decode(res).ready;
    },
  });
  const auth = new AuthFrontend({
    store: authStore,
    propose: (req) => proposals.propose(req),
    linearizableReadNotify: () => readIndexer.linearizableRead(),
    header: host.header,
    kvRevision: () => store.rev,
    log,
  });
  return { ids, alarms, watchable, applier, requestTimeoutMs, appliedWait, readIndexer, proposals, snapshots, applyChain, leases, quota, reconfig, auth };
}

/** etcd's NewAuthStore: a --bcrypt-cost outside bcrypt's range falls back to the default, with a warning. */
function bcryptCost(cost: number, log: Logger): number {
  if (cost >= BCRYPT_MIN_COST && cost <= BCRYPT_MAX_COST) return cost;
  log.warn({ 'min-cost': BCRYPT_MIN_COST, 'max-cost': BCRYPT_MAX_COST, 'default-cost': BCRYPT_DEFAULT_COST, 'given-cost': cost }, 'use default bcrypt cost instead of the invalid given cost');
  return BCRYPT_DEFAULT_COST;
}
