import type { KvStore } from '../../mvcc/kv-store';
import { AlarmAction, AlarmType, type InternalRaftRequest, type TxnRequest } from '../../proto/etcd-types';
import type { AlarmStore } from './alarms';
import { ErrNoSpace } from './errors';
import type { ServerMetrics } from './metrics';

/**
 * How often the cached backend size (for the quota check and etcd_mvcc_db_total_size_in_bytes) is
 * refreshed. Between refreshes check() adds every accepted write's cost, so a burst cannot overshoot
 * the quota; at 250 ms the directory listing and stats were ~2% of each member's main thread at 100
 * clients putting on 3 members (BENCHMARKS.md), at 1 s a quarter of that.
 */
export const DB_SIZE_REFRESH_MS = 1_000;
/** The backend bytes a lease record costs, for the quota check (etcd's leaseOverhead). */
export const LEASE_COST_BYTES = 64;

export interface QuotaDeps {
  store: KvStore;
  alarms: AlarmStore;
  metrics: ServerMetrics;
  quotaBackendBytes: number;
  memberId: bigint;
  propose(req: InternalRaftRequest): Promise<unknown>;
}

/**
 * etcd's backend quota (etcdserver/quota.go and the NOSPACE alarm): a write that would grow the
 * backend past --quota-backend-bytes raises the NOSPACE alarm, through the log and once, and is
 * refused; while the alarm is raised, the capped applier (apply/capped.ts) refuses writes that grow
 * the backend on every member, until `etcdctl alarm disarm`.
 */
export class BackendQuota {
  private dbSizeBytes = 0;
  private timer: NodeJS.Timeout | undefined;
  private activating = false;

  constructor(private readonly d: QuotaDeps) {}

  start(): void {
    this.timer = setInterval(() => {
      this.refresh().catch(() => undefined);
    }, DB_SIZE_REFRESH_MS);
  }

  /** Refuses a write of `costBytes` that would exceed the quota (and raises NOSPACE). */
  check(costBytes: number): void {
    if (this.dbSizeBytes + costBytes < this.d.quotaBackendBytes) {
      // Count accepted writes until the next measurement, so a burst cannot overshoot the quota.
      this.dbSizeBytes += costBytes;
      return;
    }
    if (!this.activating && !this.d.alarms.has(AlarmType.NOSPACE)) {
      this.activating = true;
      this.d
        .propose({ alarm: { action: AlarmAction.ACTIVATE, memberID: this.d.memberId.toString(), alarm: AlarmType.NOSPACE } })
        .catch(() => undefined)
        .finally(() => {
          this.activating = false;
        });
    }
    throw new ErrNoSpace();
  }

  /** Refresh the cached backend size now (after compaction and defragmentation). */
  async refresh(): Promise<number> {
    this.dbSizeBytes = await this.d.store.backend.sizeBytes();
    this.d.metrics.dbTotalSizeBytes.set(this.dbSizeBytes);
    return this.dbSizeBytes;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }
}

/** The bytes a txn's puts would add (etcd's quota.go cost of a txn). */
export function txnCost(r: TxnRequest): number {
  let cost = 0;
  for (const op of [...r.success, ...r.failure]) {
    if (op.request_put) cost += op.request_put.key.length + op.request_put.value.length;
    if (op.request_txn) cost += txnCost(op.request_txn);
  }
  return cost;
}
