import type { KvStore } from '../../mvcc/kv-store';
import { AlarmAction, AlarmType, type AlarmMember, type AlarmRequest, type ResponseHeader } from '../../proto/etcd-types';
import { AlarmStore, type Alarm } from './alarms';
import type { Components } from './components';
import { ErrBadLeaderTransferee, ErrFutureRev, ErrNotLeader, ErrTimeoutLeaderTransfer } from './errors';
import type { Membership } from './membership/membership';
import type { ServerMetrics } from './metrics';
import type { RaftNode } from './raft-node';

/** What the Maintenance side of a member works over (built by server.ts from its components). */
export interface MaintenanceDeps {
  memberId: bigint;
  store: KvStore;
  membership: Membership;
  /** requestTimeoutMs: etcd's ReqTimeout, which also bounds a leadership transfer. */
  parts: Pick<Components, 'alarms' | 'quota' | 'proposals' | 'requestTimeoutMs'>;
  metrics: ServerMetrics;
  header(revision: number): ResponseHeader;
  /** The Raft node exists only after the server's start(). */
  raft(): RaftNode;
  linearizableReadNotify(): Promise<void>;
  /** How often MoveLeader looks whether the transferee has taken over. */
  heartbeatIntervalMs: number;
}

/**
 * The server side of etcd's Maintenance API: backend size, Hash and HashKV, Defragment, the backend
 * snapshot, alarms and MoveLeader. etcd keeps these as EtcdServer methods across v3_server.go
 * (Alarm), server.go (MoveLeader) and corrupt.go (HashKV), and as the parts of
 * v3rpc/maintenance.go that reach the backend; they are one module here so that server.ts holds
 * the member's lifecycle only, and the Maintenance front end (v3rpc/maintenance.ts) still never
 * touches the store or the backend itself.
 */
export class Maintenance {
  constructor(private readonly d: MaintenanceDeps) {}

  async backendSize(): Promise<{ dbSize: number; dbSizeInUse: number }> {
    const backend = this.d.store.backend;
    const [dbSize, approxInUse] = await Promise.all([backend.sizeBytes(), backend.sizeInUseBytes()]);
    // LevelDB's estimate covers only compacted tables; data still in its log is in use too.
    return { dbSize, dbSizeInUse: approxInUse > 0 ? Math.min(approxInUse, dbSize) : dbSize };
  }

  hash(): Promise<number> {
    return this.d.store.hash();
  }

  async hashKV(rev: number): Promise<{ hash: number; compactRev: number; hashRev: number }> {
    if (rev > this.d.store.rev) throw new ErrFutureRev();
    return this.d.store.hashKV(rev);
  }

  async defragment(): Promise<void> {
    // A compaction still deleting holds a LevelDB iterator, which pins the files a defragment
    // would drop; wait for it, as etcd's defrag waits for the backend lock.
    await this.d.store.compactionIdle();
    await this.d.store.defragment();
    await this.d.parts.quota.refresh();
  }

  snapshotEntries(): AsyncIterable<[Buffer, Buffer][]> {
    return timedSnapshot(this.d.store.snapshotEntries(), (seconds) => this.d.metrics.backendSnapshotSeconds.observe(seconds));
  }

  /** The Alarm RPC: GET is answered locally after ReadIndex; changes go through the log. */
  async alarm(r: AlarmRequest): Promise<{ header: ResponseHeader; alarms: AlarmMember[] }> {
    if (r.action === AlarmAction.GET) {
      await this.d.linearizableReadNotify();
      return { header: this.d.header(this.d.store.rev), alarms: this.d.parts.alarms.get(r.alarm).map(AlarmStore.toMsg) };
    }
    return (await this.d.parts.proposals.propose({ alarm: r })).response as { header: ResponseHeader; alarms: AlarmMember[] };
  }

  /** Every alarm raised on any member (what /health reports). */
  raisedAlarms(): Alarm[] {
    return this.d.parts.alarms.get(AlarmType.NONE);
  }

  /** Status errors, formatted as etcd does. */
  alarmErrors(): string[] {
    return this.raisedAlarms().map((a) => `memberID:${a.memberId} alarm:${AlarmType[a.type]} `);
  }

  /** Refresh the cached backend size now (after compaction and defragmentation). */
  refreshDbSize(): Promise<number> {
    return this.d.parts.quota.refresh();
  }

  /** MoveLeader: only the leader may hand leadership to a voting member (etcd's MoveLeader). */
  async moveLeader(target: bigint): Promise<void> {
    const raft = this.d.raft();
    if (!raft.isLeader) throw new ErrNotLeader();
    const m = this.d.membership.get(target);
    if (!m || m.isLearner) throw new ErrBadLeaderTransferee();
    if (target === this.d.memberId) return;
    raft.transferLeader(target);
    const deadline = Date.now() + this.d.parts.requestTimeoutMs;
    while (raft.leader !== target) {
      if (Date.now() > deadline) throw new ErrTimeoutLeaderTransfer();
      await new Promise((r) => setTimeout(r, this.d.heartbeatIntervalMs));
    }
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
