import type { ReadState } from '../../raft';
import { ErrLeaderChanged, ErrTimeout, type EtcdError } from './errors';

/**
 * Linearizable reads by ReadIndex (etcd's linearizableReadLoop): readers queue up; one ReadIndex
 * round (one heartbeat round on the leader) serves every reader queued before it started, once the
 * applied index reaches the index it returns. Readers that arrive during a round wait for the next
 * one, because the index must be taken after they arrived.
 */
interface Reader {
  resolve: () => void;
  reject: (e: EtcdError) => void;
}

export interface ReadIndexDeps {
  requestReadIndex(ctx: Uint8Array): void;
  waitApplied(index: number): Promise<void>;
  timeoutMs: number;
  /**
   * A request context unique across the cluster (etcd uses its member-scoped request ID generator):
   * the leader's ReadOnly drops a second request with a context it already has pending, so two
   * members counting 1, 2, 3... would leave one of them waiting for the full timeout.
   */
  nextCtx(): bigint;
}

export class ReadIndexer {
  private queued: Reader[] = [];
  private inflight: { ctx: Buffer; readers: Reader[]; timer: NodeJS.Timeout } | undefined;

  constructor(private readonly deps: ReadIndexDeps) {}

  linearizableRead(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.queued.push({ resolve, reject });
      this.startRound();
    });
  }

  private startRound(): void {
    if (this.inflight || this.queued.length === 0) return;
    const ctx = Buffer.allocUnsafe(8);
    ctx.writeBigUInt64BE(this.deps.nextCtx());
    const readers = this.queued;
    this.queued = [];
    const timer = setTimeout(() => this.fail(ctx, new ErrTimeout()), this.deps.timeoutMs);
    this.inflight = { ctx, readers, timer };
    try {
      this.deps.requestReadIndex(ctx);
    } catch {
      this.fail(ctx, new ErrLeaderChanged());
    }
  }

  onReadStates(states: readonly ReadState[]): void {
    const cur = this.inflight;
    if (!cur) return;
    for (const rs of states) {
      if (!cur.ctx.equals(rs.requestCtx)) continue;
      clearTimeout(cur.timer);
      this.inflight = undefined;
      void this.deps.waitApplied(rs.index).then(() => {
        for (const r of cur.readers) r.resolve();
      });
      this.startRound();
      return;
    }
  }

  /** Leadership moved: a pending round may never be answered, so its readers retry or fail now. */
  onLeaderChange(): void {
    if (this.inflight) this.fail(this.inflight.ctx, new ErrLeaderChanged());
  }

  private fail(ctx: Buffer, err: EtcdError): void {
    const cur = this.inflight;
    if (!cur || !cur.ctx.equals(ctx)) return;
    clearTimeout(cur.timer);
    this.inflight = undefined;
    for (const r of cur.readers) r.reject(err);
    this.startRound();
  }

  close(err: EtcdError): void {
    if (this.inflight) this.fail(this.inflight.ctx, err);
    for (const r of this.queued) r.reject(err);
    this.queued = [];
  }
}
