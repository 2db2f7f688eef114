import type { ReadState } from '../../raft';
import { ErrLeaderChanged, ErrTimeout, type EtcdError } from './errors';

/**
 * How long a ReadIndex round waits for its answer before the same request is sent again: etcd's
 * readIndexRetryTime (server/etcdserver/v3_server.go). A MsgReadIndex forwarded to the leader, the
 * heartbeat round confirming it, or the MsgReadIndexResp coming back can each be lost (a dropped
 * peer message, a full send queue, a follower that had no leader yet); without a re-send every
 * linearizable read queued on this member would wait for the full request timeout.
 */
export const READ_INDEX_RETRY_MS = 500;

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
  /** Re-send interval for an unanswered round; READ_INDEX_RETRY_MS (etcd's value) unless set. */
  retryMs?: number;
  /**
   * Called before each re-send, for the server's log and metrics: etcd warns "waiting for
   * ReadIndex response took too long, retrying" and counts etcd_server_slow_read_indexes_total.
   */
  onRetry?(ctx: Uint8Array): void;
  /** A round failed (timed out, leader changed, could not be sent), for the server's metrics. */
  onFailed?(err: EtcdError): void;
  /**
   * A request context unique across the cluster (etcd uses its member-scoped request ID generator):
   * the leader's ReadOnly drops a second request with a context it already has pending, so two
   * members counting 1, 2, 3... would leave one of them waiting for the full timeout.
   */
  nextCtx(): bigint;
}

interface Round {
  ctx: Buffer;
  readers: Reader[];
  timer: NodeJS.Timeout;
  retry: NodeJS.Timeout;
}

export class ReadIndexer {
  private queued: Reader[] = [];
  private inflight: Round | undefined;

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
    // etcd's requestCurrentIndex re-sends the same request ID on every retryTimer tick until it is
    // answered, the leader changes or the request times out. Re-sending the same context is safe:
    // if the leader still has it pending, raft's ReadOnly.addRequest keeps the earlier entry (and
    // its index) and the leader broadcasts another heartbeat carrying that context, which also
    // recovers a lost heartbeat round; if the first request never arrived, or its answer was lost
    // after the leader dequeued it, the re-send starts a fresh round under the same context.
    const retry = setInterval(() => {
      this.deps.onRetry?.(ctx);
      this.send(ctx);
    }, this.deps.retryMs ?? READ_INDEX_RETRY_MS);
    this.inflight = { ctx, readers, timer, retry };
    this.send(ctx);
  }

  private send(ctx: Buffer): void {
    if (!this.inflight || !this.inflight.ctx.equals(ctx)) return;
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
      // A ReadState for an earlier round (answered twice because it was re-sent) is out of date.
      if (!cur.ctx.equals(rs.requestCtx)) continue;
      this.stopTimers(cur);
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

  private stopTimers(round: Round): void {
    clearTimeout(round.timer);
    clearInterval(round.retry);
  }

  private fail(ctx: Buffer, err: EtcdError): void {
    const cur = this.inflight;
    if (!cur || !cur.ctx.equals(ctx)) return;
    this.stopTimers(cur);
    this.inflight = undefined;
    this.deps.onFailed?.(err);
    for (const r of cur.readers) r.reject(err);
    this.startRound();
  }

  close(err: EtcdError): void {
    if (this.inflight) this.fail(this.inflight.ctx, err);
    for (const r of this.queued) r.reject(err);
    this.queued = [];
  }
}
