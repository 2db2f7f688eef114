/**
 * Leases (etcd lease/lessor.go). State changes (grant, revoke, attach, checkpoint) happen only in
 * the apply loop, in log order, so every member holds the same leases. Time is only consulted on
 * the primary (the Raft leader): it alone tracks expiry, renews on keepalive, and reports expired
 * leases, which the server then revokes *through the log*. Followers hold leases forever.
 */

/** etcd's MaxLeaseTTL: 9,000,000,000 seconds. */
export const MAX_LEASE_TTL_SECONDS = 9_000_000_000;
/** After an expired lease is reported, it is reported again only after this long (etcd: 3 s). */
export const EXPIRED_LEASE_RETRY_INTERVAL_MS = 3_000;
/** etcd's leaseRevokeRate: at most this many expired leases are reported per second. */
export const LEASE_REVOKE_RATE_PER_SECOND = 1000;

export class ErrLeaseNotFound extends Error {
  constructor() {
    super('lease not found');
  }
}
export class ErrLeaseExists extends Error {
  constructor() {
    super('lease already exists');
  }
}
export class ErrLeaseTTLTooLarge extends Error {
  constructor() {
    super('too large lease TTL');
  }
}
export class ErrNotPrimary extends Error {
  constructor() {
    super('not a primary lessor');
  }
}

export interface LeaseRecord {
  id: bigint;
  ttlSeconds: number;
  /** Checkpointed remaining TTL (0 = none), so a new leader does not reset a long lease. */
  remainingTtlSeconds: number;
}

/** Where lease records are kept durably: the backend's "lease" bucket, written in apply order. */
export interface LeasePersistence {
  putLease(record: LeaseRecord): void;
  deleteLease(id: bigint): void;
}

export interface Clock {
  nowMs(): number;
}

export const systemClock: Clock = { nowMs: () => performance.timeOrigin + performance.now() };

class Lease {
  readonly keys = new Set<string>();
  expiryMs = Number.POSITIVE_INFINITY;
  constructor(
    readonly id: bigint,
    public ttlSeconds: number,
    public remainingTtlSeconds: number,
  ) {}

  record(): LeaseRecord {
    return { id: this.id, ttlSeconds: this.ttlSeconds, remainingTtlSeconds: this.remainingTtlSeconds };
  }
}

export class Lessor {
  private readonly leases = new Map<bigint, Lease>();
  private primary = false;
  /** Leases reported expired and not yet revoked: id → when they may be reported again. */
  private readonly reported = new Map<bigint, number>();
  private renewHook: ((id: bigint) => void) | undefined;

  constructor(
    private readonly persistence: LeasePersistence,
    private readonly minTtlSeconds: number,
    private readonly clock: Clock = systemClock,
  ) {}

  /** Rebuild from persisted records (on start); keys are re-attached by the caller. */
  restore(records: Iterable<LeaseRecord>): void {
    this.leases.clear();
    for (const r of records) this.leases.set(r.id, new Lease(r.id, r.ttlSeconds, r.remainingTtlSeconds));
  }

  get isPrimary(): boolean {
    return this.primary;
  }

  grant(id: bigint, ttlSeconds: number): LeaseRecord {
    if (ttlSeconds > MAX_LEASE_TTL_SECONDS) throw new ErrLeaseTTLTooLarge();
    if (this.leases.has(id)) throw new ErrLeaseExists();
    const lease = new Lease(id, Math.max(ttlSeconds, this.minTtlSeconds), 0);
    if (this.primary) lease.expiryMs = this.clock.nowMs() + lease.ttlSeconds * 1000;
    this.leases.set(id, lease);
    this.persistence.putLease(lease.record());
    return lease.record();
  }

  /** Removes the lease and returns its keys (latin1), sorted, for the caller to delete in one txn. */
  revoke(id: bigint): string[] {
    const lease = this.leases.get(id);
    if (!lease) throw new ErrLeaseNotFound();
    this.leases.delete(id);
    this.reported.delete(id);
    this.persistence.deleteLease(id);
    return [...lease.keys].sort();
  }

  has(id: bigint): boolean {
    return this.leases.has(id);
  }

  attach(id: bigint, key: string): void {
    this.leases.get(id)?.keys.add(key);
  }

  detach(id: bigint, key: string): void {
    this.leases.get(id)?.keys.delete(key);
  }

  checkpoint(id: bigint, remainingTtlSeconds: number): void {
    const lease = this.leases.get(id);
    if (!lease) return;
    lease.remainingTtlSeconds = remainingTtlSeconds;
    this.persistence.putLease(lease.record());
  }

  /** The lease's checkpointed remaining TTL (0 = none or unknown lease). */
  checkpointedRemaining(id: bigint): number {
    return this.leases.get(id)?.remainingTtlSeconds ?? 0;
  }

  /** Called by renew() for a lease that carries a checkpointed remaining TTL (the server proposes a checkpoint of 0). */
  onRenewOfCheckpointed(hook: (id: bigint) => void): void {
    this.renewHook = hook;
  }

  /** KeepAlive on the primary: extends the lease by its full TTL and returns that TTL. */
  renew(id: bigint): number {
    if (!this.primary) throw new ErrNotPrimary();
    const lease = this.leases.get(id);
    if (!lease) throw new ErrLeaseNotFound();
    // An expired lease is being revoked; renewing it would resurrect it on this member only.
    if (lease.expiryMs <= this.clock.nowMs()) throw new ErrLeaseNotFound();
    lease.expiryMs = this.clock.nowMs() + lease.ttlSeconds * 1000;
    if (lease.remainingTtlSeconds > 0) this.renewHook?.(id);
    lease.remainingTtlSeconds = 0;
    return lease.ttlSeconds;
  }

  /** Becoming leader: every lease gets its remaining TTL plus `extendMs` (etcd Promote). */
  promote(extendMs: number): void {
    this.primary = true;
    const now = this.clock.nowMs();
    for (const lease of this.leases.values()) {
      const ttl = lease.remainingTtlSeconds > 0 ? lease.remainingTtlSeconds : lease.ttlSeconds;
      lease.expiryMs = now + ttl * 1000 + extendMs;
    }
    this.reported.clear();
  }

  demote(): void {
    this.primary = false;
    for (const lease of this.leases.values()) lease.expiryMs = Number.POSITIVE_INFINITY;
    this.reported.clear();
  }

  /** Expired leases the primary should revoke now, at most `limit`, each reported once per retry interval. */
  expired(limit: number): bigint[] {
    if (!this.primary) return [];
    const now = this.clock.nowMs();
    const out: bigint[] = [];
    for (const lease of this.leases.values()) {
      if (out.length >= limit) break;
      if (lease.expiryMs > now) continue;
      const again = this.reported.get(lease.id);
      if (again !== undefined && again > now) continue;
      this.reported.set(lease.id, now + EXPIRED_LEASE_RETRY_INTERVAL_MS);
      out.push(lease.id);
    }
    return out;
  }

  /** Remaining whole seconds (truncated), or -1 for an unknown lease, as LeaseTimeToLive reports. */
  timeToLive(id: bigint): { ttlSeconds: number; grantedTtlSeconds: number; keys: string[] } | undefined {
    const lease = this.leases.get(id);
    if (!lease) return undefined;
    const remainingMs = this.primary ? lease.expiryMs - this.clock.nowMs() : lease.ttlSeconds * 1000;
    return {
      ttlSeconds: Math.max(0, Math.trunc(remainingMs / 1000)),
      grantedTtlSeconds: lease.ttlSeconds,
      keys: [...lease.keys].sort(),
    };
  }

  /**
   * Remaining TTLs to checkpoint (primary only), for --experimental-enable-lease-checkpoint (etcd
   * findDueScheduledCheckpoints: ceil of the time left, only when below the granted TTL). etcd only
   * schedules checkpoints for leases whose TTL exceeds the checkpoint interval; pass it as
   * `minTtlSeconds` to skip shorter leases the same way.
   */
  remainingForCheckpoint(minTtlSeconds = 0): { id: bigint; remainingTtlSeconds: number }[] {
    if (!this.primary) return [];
    const now = this.clock.nowMs();
    const out: { id: bigint; remainingTtlSeconds: number }[] = [];
    for (const lease of this.leases.values()) {
      if (lease.ttlSeconds <= minTtlSeconds) continue;
      const remaining = Math.ceil((lease.expiryMs - now) / 1000);
      if (remaining > 0 && remaining < lease.ttlSeconds) out.push({ id: lease.id, remainingTtlSeconds: remaining });
    }
    return out;
  }

  ids(): bigint[] {
    return [...this.leases.keys()];
  }

  get size(): number {
    return this.leases.size;
  }
}
