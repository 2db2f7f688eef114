import type { Logger } from 'pino';
import type { Lessor } from '../../mvcc/lessor';
import { ErrNotPrimary } from '../../mvcc/lessor';
import type { InternalRaftRequest } from '../../proto/etcd-types';
import { leaseRenewReq, leaseRenewResp, ttlReq, ttlResp, type PeerTransport } from '../rafthttp/transport';
import { toEtcdError } from './error-translation';
import { ErrNoLeader } from './errors';
import { testingSwitches } from './testing-switches';

/** How often the leader looks for expired leases (etcd's revokeExpiredLeases ticker). */
export const LEASE_EXPIRY_CHECK_MS = 500;
/** How many expired leases are revoked per check: leaseRevokeRate (1000/s) over the interval. */
export const LEASE_REVOKES_PER_CHECK = 500;
/** etcd's defaultLeaseCheckpointInterval. */
export const DEFAULT_LEASE_CHECKPOINT_INTERVAL_MS = 5 * 60 * 1000;
/** etcd's maxLeaseCheckpointBatchSize. */
export const LEASE_CHECKPOINT_BATCH = 1000;

export interface LeaseLoopDeps {
  log: Logger;
  lessor: Lessor;
  clusterId: bigint;
  enableLeaseCheckpoint: boolean;
  raft(): { readonly isLeader: boolean; readonly leader: bigint };
  transport(): PeerTransport | undefined;
  propose(req: InternalRaftRequest): Promise<unknown>;
  /** A ReadIndex round: resolves only if a quorum still follows this member's term (etcd's linearizableReadNotify). */
  confirmLeadership(): Promise<void>;
  /** Resolves once everything committed before now is applied (etcd's waitAppliedIndex). */
  waitApplied(): Promise<void>;
}

/**
 * The leader's side of leases (etcd's server.go revokeExpiredLeases, v3_server.go LeaseRenew and
 * LeaseTimeToLive, lease checkpointing). Expiry and renewal are decided by the primary lessor
 * alone, outside the log, so they must only ever run on a member that is still the leader.
 *
 * `isLeader` is what this member last learnt from Raft, and it can be stale: a leader blocked in a
 * slow fsync has not processed the messages that deposed it (etcd #15247). So before revoking and
 * before renewing, leadership is confirmed by a ReadIndex round, as etcd does since #16822
 * (ensureLeadership); if that fails, nothing is revoked and the keepalive fails with "not
 * leader", so the client moves to another member instead of renewing on a deposed one.
 */
export class LeaseLoop {
  private expiryTimer: NodeJS.Timeout | undefined;
  private checkpointTimer: NodeJS.Timeout | undefined;
  private checkpointIntervalMs = DEFAULT_LEASE_CHECKPOINT_INTERVAL_MS;
  private revoking = false;
  private stopped = false;

  constructor(private readonly d: LeaseLoopDeps) {}

  start(revoke: (id: bigint) => Promise<unknown>): void {
    this.expiryTimer = setInterval(() => this.revokeExpired(revoke), LEASE_EXPIRY_CHECK_MS);
    this.startCheckpointing();
  }

  /** Leadership moved away from this member (or is in doubt): stop acting as the primary lessor. */
  demote(): void {
    this.d.lessor.demote();
  }

  /**
   * etcd's ensureLeadership: only reports; the lessor is demoted when Raft reports the leader
   * change (onLeaderChange), so a leader whose confirmation merely timed out keeps its leases.
   */
  private async ensureLeadership(): Promise<boolean> {
    if (this.stopped || !this.d.raft().isLeader) return false;
    try {
      await this.d.confirmLeadership();
    } catch {
      return false;
    }
    return this.d.raft().isLeader;
  }

  private revokeExpired(revoke: (id: bigint) => Promise<unknown>): void {
    if (this.stopped || this.revoking || !this.d.raft().isLeader) return;
    const due = this.d.lessor.expired(LEASE_REVOKES_PER_CHECK);
    if (due.length === 0) return;
    this.revoking = true;
    void this.ensureLeadership()
      .then((leader) => {
        if (!leader) {
          this.d.log.warn({ leases: due.length }, 'not revoking expired leases: this member could not confirm it is still the leader');
          return;
        }
        for (const id of due) {
          revoke(id).catch((e: unknown) => {
            this.d.log.warn({ lease: id.toString(16), err: toEtcdError(e).message }, 'failed to revoke expired lease');
          });
        }
      })
      .finally(() => {
        this.revoking = false;
      });
  }

  /** KeepAlive: renewed by the leader's lessor once it has confirmed its leadership; a follower forwards. */
  async renew(id: bigint): Promise<{ ttl: number; notFound: boolean }> {
    if (this.d.raft().isLeader) {
      if (!(await this.ensureLeadership())) throw new ErrNotPrimary();
      // A lease granted through another member may be committed but not yet applied here.
      await this.d.waitApplied();
      try {
        return { ttl: this.d.lessor.renew(id), notFound: false };
      } catch (e) {
        if (e instanceof Error && e.message === 'lease not found') return { ttl: 0, notFound: true };
        throw e;
      }
    }
    const res = leaseRenewResp.decode(await this.forward('/cairnpb.Peer/LeaseRenew', leaseRenewReq.encode({ cluster_id: this.d.clusterId.toString(), ID: id.toString() })));
    return { ttl: Number(res.TTL), notFound: res.not_found };
  }

  /** TimeToLive is answered by the leader, whose lessor tracks expiry. */
  async timeToLive(id: bigint, keys: boolean): Promise<{ found: boolean; ttl: number; grantedTtl: number; keys: Buffer[] }> {
    if (this.d.raft().isLeader) {
      await this.d.waitApplied();
      const t = this.d.lessor.timeToLive(id);
      if (!t) return { found: false, ttl: -1, grantedTtl: 0, keys: [] };
      return { found: true, ttl: t.ttlSeconds, grantedTtl: t.grantedTtlSeconds, keys: keys ? t.keys.map((k) => Buffer.from(k, 'latin1')) : [] };
    }
    const res = ttlResp.decode(await this.forward('/cairnpb.Peer/LeaseTimeToLive', ttlReq.encode({ cluster_id: this.d.clusterId.toString(), ID: id.toString(), keys })));
    return { found: res.found, ttl: Number(res.TTL), grantedTtl: Number(res.grantedTTL), keys: res.keys };
  }

  private forward(path: string, body: Uint8Array): Promise<Buffer> {
    const leader = this.d.raft().leader;
    const transport = this.d.transport();
    if (leader === 0n || !transport) throw new ErrNoLeader();
    return transport.forward(leader, path, body);
  }

  /**
   * --experimental-enable-lease-checkpoint: every checkpoint interval (etcd's default 5 min;
   * CAIRN_LEASE_CHECKPOINT_INTERVAL_MS shortens it, for tests) the leader proposes the remaining
   * TTL of every lease longer than the interval through the log, at most LEASE_CHECKPOINT_BATCH per
   * entry. Applied on every member and persisted with the lease, so a new leader, or this member
   * after a restart, resumes from the checkpointed remaining TTL instead of the full TTL.
   */
  private startCheckpointing(): void {
    if (!this.d.enableLeaseCheckpoint) return;
    this.checkpointIntervalMs = testingSwitches.leaseCheckpointIntervalMs ?? DEFAULT_LEASE_CHECKPOINT_INTERVAL_MS;
    // etcd lessor.Renew: renewing a lease that carries a checkpointed remaining TTL proposes a
    // checkpoint of 0, so no member (nor this one after a restart) goes on using the stale figure.
    this.d.lessor.onRenewOfCheckpointed((id) => this.proposeCheckpoints([{ id, remainingTtlSeconds: 0 }]));
    this.checkpointTimer = setInterval(() => this.checkpoint(), this.checkpointIntervalMs);
    this.checkpointTimer.unref();
  }

  private checkpoint(): void {
    if (this.stopped || !this.d.raft().isLeader) return;
    const due = this.d.lessor.remainingForCheckpoint(Math.floor(this.checkpointIntervalMs / 1000));
    for (let i = 0; i < due.length; i += LEASE_CHECKPOINT_BATCH) this.proposeCheckpoints(due.slice(i, i + LEASE_CHECKPOINT_BATCH));
  }

  private proposeCheckpoints(cps: { id: bigint; remainingTtlSeconds: number }[]): void {
    if (cps.length === 0 || this.stopped) return;
    const checkpoints = cps.map((c) => ({ ID: c.id.toString(), remaining_TTL: String(c.remainingTtlSeconds) }));
    this.d.propose({ lease_checkpoint: { checkpoints } }).catch((e: unknown) => {
      this.d.log.warn({ leases: cps.length, err: toEtcdError(e).message }, 'failed to checkpoint leases');
    });
  }

  stop(): void {
    this.stopped = true;
    if (this.expiryTimer) clearInterval(this.expiryTimer);
    if (this.checkpointTimer) clearInterval(this.checkpointTimer);
  }
}
