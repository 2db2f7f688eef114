import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Logger } from 'pino';
import { MemoryStorage, type ConfState, type Snapshot } from '../../raft';
import { KvStore } from '../../mvcc/kv-store';
import { Lessor } from '../../mvcc/lessor';
import type { ServerConfig } from '../embed/config';
import { PeerTransport } from '../rafthttp/transport';
import { decodeConfStateRecord, encodeConfStateRecord } from '../storage/wal/conf-state-record';
import { Wal } from '../storage/wal/wal';
import { leasePersistence, membershipPersistence, readMembers, restoreLessor } from './backend-schema';
import { computeClusterId, computeMemberId } from './membership/member-id';
import { Membership, chooseMemberList, type Member } from './membership/membership';
import type { ServerMetrics } from './metrics';
import { logTestingSwitches, testingSwitches } from './testing-switches';
import { failStop } from './fatal';
import { forceNewCluster } from './force-new-cluster';

/**
 * Opening a data dir (etcd's etcdserver/bootstrap.go): the WAL and the backend, this member's
 * identity, the member list and Raft's storage, for each of the three ways a member starts:
 *   - a new cluster (`--initial-cluster-state new`, empty data dir): IDs from --initial-cluster;
 *   - joining a running cluster (`existing`, empty data dir): the member list from a peer;
 *   - a restart: everything from the data dir, the --initial-* flags ignored.
 */

/** A joining member retries fetching the member list this many times (its MemberAdd may still be in flight). */
export const JOIN_FETCH_ATTEMPTS = 5;
export const JOIN_FETCH_RETRY_MS = 1_000;

export interface Identity {
  memberId: bigint;
  clusterId: bigint;
}

/** What a member starts from. */
export interface Bootstrapped {
  identity: Identity;
  wal: Wal;
  store: KvStore;
  lessor: Lessor;
  membership: Membership;
  /** Raft's log: the last snapshot, hard state and entries after it, as the WAL holds them. */
  storage: MemoryStorage;
  /** The configuration as of the last snapshot (replay brings it up to date). */
  confState: ConfState;
  snapshotIndex: number;
  /** Restarted with --force-new-cluster: a single voter once the forced conf changes are applied. */
  forcedNewCluster?: boolean;
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

const emptyConf = (): ConfState => ({ voters: [], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false });

/** etcd's minimum lease TTL: 1.5 election timeouts, rounded up to whole seconds. */
export function minLeaseTtlSeconds(electionTimeoutMs: number): number {
  return Math.ceil((3 * electionTimeoutMs) / 2 / 1000);
}

export async function bootstrap(cfg: ServerConfig, log: Logger, metrics: ServerMetrics): Promise<Bootstrapped> {
  const memberDir = path.join(cfg.dataDir, 'member');
  fs.mkdirSync(path.join(memberDir, 'snap'), { recursive: true, mode: 0o700 });
  logTestingSwitches(log);
  // The WAL's replay and the backend's open (its index rebuilt from LevelDB, whose reads run on
  // libuv's threads) overlap: neither reads the other, and a restart waits for the longer one only.
  const [walOpened, storeOpened] = await Promise.allSettled([
    Wal.open(path.join(memberDir, 'wal'), {
      observer: { fsyncSeconds: (s) => metrics.walFsyncSeconds.observe(s), writeBytes: (b) => metrics.walWriteBytes.inc(b) },
      faults: { loseUnsyncedWrites: testingSwitches.loseUnsyncedWrites, unsafeNoFsync: testingSwitches.unsafeNoFsync },
      maxWalFiles: cfg.maxWals,
      log,
    }),
    KvStore.open(path.join(memberDir, 'snap', 'db'), {
      loseUnsyncedWrites: testingSwitches.loseUnsyncedWrites,
      cacheBytes: cfg.backendLevelDbCacheBytes,
      onFatal: (e) => failStop('backend write failed', e),
      metrics: metrics.storeHooks(),
    }),
  ]);
  if (walOpened.status === 'rejected' || storeOpened.status === 'rejected') {
    // The WAL's error first (a damaged WAL names its file and offset), after closing what did open.
    if (walOpened.status === 'fulfilled') await walOpened.value.close();
    if (storeOpened.status === 'fulfilled') await storeOpened.value.close();
    throw walOpened.status === 'rejected' ? walOpened.reason : (storeOpened as PromiseRejectedResult).reason;
  }
  const wal = walOpened.value;
  const store = storeOpened.value;
  const contents = await wal.readAll();
  const lessor = new Lessor(leasePersistence(store), minLeaseTtlSeconds(cfg.electionTimeoutMs));
  const storage = new MemoryStorage();
  const parts = { wal, store, lessor, storage };

  let started: Omit<Bootstrapped, keyof typeof parts>;
  if (!contents.metadata && cfg.initialClusterState === 'existing') started = await joinExistingCluster(cfg, log, parts);
  else if (!contents.metadata) started = await bootstrapNewCluster(cfg, log, parts);
  else started = await restartFromDataDir(cfg, log, parts, contents);
  await restoreLessor(store, lessor);
  return { ...parts, ...started };
}

type Parts = Pick<Bootstrapped, 'wal' | 'store' | 'lessor' | 'storage'>;
type Started = Omit<Bootstrapped, keyof Parts>;

/** Joining a running cluster: learn it (and this member's ID, chosen at MemberAdd) from the peers. */
async function joinExistingCluster(cfg: ServerConfig, log: Logger, { wal, store }: Parts): Promise<Started> {
  const others = [...cfg.initialCluster.entries()].filter(([name]) => name !== cfg.name).flatMap(([, urls]) => urls);
  const mine = [...cfg.initialAdvertisePeerUrls].sort().join(',');
  let joined: { clusterId: bigint; members: Member[]; removed: bigint[]; self: Member } | undefined;
  for (let attempt = 1; !joined; attempt++) {
    const { clusterId, members, removed } = chooseMemberList(await PeerTransport.fetchMembers(others, cfg.tls.peer));
    const self = members.find((m) => [...m.peerUrls].sort().join(',') === mine && !removed.includes(m.id));
    if (self) joined = { clusterId, members, removed, self };
    else if (attempt >= JOIN_FETCH_ATTEMPTS) throw new Error(`member with peer URLs ${mine} is not in the cluster: add it with 'etcdctl member add' first`);
    else await new Promise((r) => setTimeout(r, JOIN_FETCH_RETRY_MS));
  }
  const { clusterId, members, removed, self } = joined;
  const identity = { memberId: self.id, clusterId };
  const membership = new Membership(identity.clusterId, membershipPersistence(store));
  self.name = cfg.name;
  self.clientUrls = cfg.advertiseClientUrls;
  membership.restore(members, removed);
  // Durable before the identity is: a member restarted before its first snapshot from the
  // leader must still know its peers, or it could never answer the leader's probes.
  membership.persistAll();
  await store.backend.forceCommit({ sync: true });
  await wal.saveMetadata(encodeIdentity(identity));
  log.info({ 'local-member-id': identity.memberId.toString(16), 'cluster-id': identity.clusterId.toString(16) }, 'joining an existing cluster');
  return { identity, membership, confState: emptyConf(), snapshotIndex: 0 };
}

async function bootstrapNewCluster(cfg: ServerConfig, log: Logger, { wal, store, storage }: Parts): Promise<Started> {
  const myUrls = cfg.initialCluster.get(cfg.name);
  if (!myUrls) throw new Error(`couldn't find local name "${cfg.name}" in the initial cluster configuration`);
  const advertised = [...cfg.initialAdvertisePeerUrls].sort().join(',');
  if ([...myUrls].sort().join(',') !== advertised) {
    throw new Error(`--initial-cluster has ${cfg.name}=${myUrls.join(',')} but missing from --initial-advertise-peer-urls=${cfg.initialAdvertisePeerUrls.join(',')}`);
  }
  const members: Member[] = [...cfg.initialCluster.entries()].map(([name, urls]) => ({
    id: computeMemberId(urls, cfg.initialClusterToken),
    name,
    peerUrls: urls,
    clientUrls: name === cfg.name ? cfg.advertiseClientUrls : [],
    isLearner: false,
  }));
  const identity = { memberId: computeMemberId(myUrls, cfg.initialClusterToken), clusterId: computeClusterId(members.map((m) => m.id)) };
  const membership = new Membership(identity.clusterId, membershipPersistence(store));
  for (const m of members) membership.add(m);
  await store.backend.forceCommit({ sync: true });
  // Every member of a new cluster starts from the same snapshot at index 1, term 1, holding the
  // initial configuration, so their logs agree from the first entry on.
  const confState: ConfState = { ...emptyConf(), voters: members.map((m) => m.id) };
  const snapshot: Snapshot = { data: new Uint8Array(), metadata: { index: 1, term: 1, confState } };
  await wal.save({
    entries: [],
    hardState: { term: 1, vote: 0n, commit: 1 },
    snapshot: { index: 1, term: 1, data: encodeConfStateRecord(confState) },
    sync: true,
  });
  await wal.saveMetadata(encodeIdentity(identity));
  storage.applySnapshot(snapshot);
  storage.setHardState({ term: 1, vote: 0n, commit: 1 });
  log.info({ 'local-member-id': identity.memberId.toString(16), 'cluster-id': identity.clusterId.toString(16) }, 'bootstrapped a new cluster');
  return { identity, membership, confState, snapshotIndex: 1 };
}

async function restartFromDataDir(cfg: ServerConfig, log: Logger, { wal, store, storage }: Parts, contents: Awaited<ReturnType<Wal['readAll']>>): Promise<Started> {
  const identity = decodeIdentity(contents.metadata as Uint8Array);
  const membership = new Membership(identity.clusterId, membershipPersistence(store));
  const { members, removed } = await readMembers(store);
  membership.restore(members, removed);
  const self = membership.get(identity.memberId);
  if (self) self.clientUrls = cfg.advertiseClientUrls;
  if (cfg.forceNewCluster) {
    const me = self ?? { id: identity.memberId, name: cfg.name, peerUrls: cfg.initialAdvertisePeerUrls, clientUrls: cfg.advertiseClientUrls, isLearner: false };
    contents = (await forceNewCluster(wal, contents, me, identity.clusterId, store.consistentIndex, log)).contents;
  }
  let confState = emptyConf();
  let snapshotIndex = 0;
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
    {
      'local-member-id': identity.memberId.toString(16), 'wal-entries': contents.entries.length, 'consistent-index': store.consistentIndex,
      'key-index-from': store.indexRestore.source,
    },
    'restarting member from data directory',
  );
  if (store.indexRestore.checkpointUnusable !== undefined) {
    log.info({ reason: store.indexRestore.checkpointUnusable }, 'key index checkpoint did not match the backend; rebuilt the index by scanning it');
  }
  return { identity, membership, confState, snapshotIndex, forcedNewCluster: cfg.forceNewCluster };
}
