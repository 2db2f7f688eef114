import { ErrProposalDropped, type ConfChangeType, type Entry } from '../../raft';
import { messageCodec, type MessageCodec } from '../../proto';
import type { InternalRaftRequest } from '../../proto/etcd-types';
import type { ApplyOutcome, ApplyResult } from './apply/applier';
import { ErrNoLeader, ErrRequestTooLarge, ErrStopped, ErrTimeout, ErrTooManyRequests } from './errors';
import type { IdGenerator } from './id-generator';
import { encodeConfChangeContext } from './membership/conf-change-context';
import type { Member } from './membership/membership';
import type { ServerMetrics } from './metrics';
import type { RaftNode } from './raft-node';
import { decodePutRaftRequest } from './raft-request-decoder';
import { encodePutRaftRequest } from './raft-request-encoder';
import { Wait } from './wait';

/** etcd refuses new proposals when apply lags commit by more than this many entries (maxGapBetweenApplyAndCommitIndex). */
export const MAX_GAP_BETWEEN_APPLY_AND_COMMIT = 5000;
/** How often pending proposals are checked against their deadline. */
export const WAIT_SWEEP_MS = 100;

export interface ProposerDeps {
  raft(): RaftNode;
  ids: IdGenerator;
  metrics: ServerMetrics;
  maxRequestBytes: number;
  requestTimeoutMs: number;
  appliedIndex(): number;
}

/**
 * Proposals through Raft and their answers (etcd's processInternalRaftRequestOnce and pkg/wait):
 * each request gets a cluster-unique ID, is encoded once, proposed, and answered when the apply
 * chain triggers that ID with the entry's outcome — or with ErrTimeout once the request timeout
 * passes (the entry may still be applied later; clients treat the timeout as "unknown").
 */
export class Proposer {
  private readonly requestCodec: MessageCodec<InternalRaftRequest> = messageCodec<InternalRaftRequest>('cairnpb.InternalRaftRequest');
  private readonly wait = new Wait<ApplyOutcome>();
  /** Requests this member proposed, by their entry's bytes (the same object arrives in the committed entry). */
  private readonly proposed = new WeakMap<Uint8Array, InternalRaftRequest>();
  private sweeper: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(private readonly deps: ProposerDeps) {}

  start(): void {
    this.sweeper = setInterval(() => this.wait.expire(Date.now(), () => ({ err: new ErrTimeout() })), WAIT_SWEEP_MS);
  }

  async propose(req: InternalRaftRequest): Promise<ApplyResult> {
    if (this.stopped) throw new ErrStopped();
    const raft = this.deps.raft();
    // Commit running far ahead of apply means the apply chain is overloaded (etcd's check).
    if (raft.commitIndex > this.deps.appliedIndex() + MAX_GAP_BETWEEN_APPLY_AND_COMMIT) throw new ErrTooManyRequests();
    const id = this.deps.ids.nextId().toString();
    req.header = { ...req.header, ID: id };
    const data = encodePutRaftRequest(req) ?? this.requestCodec.encode(req);
    if (data.length > this.deps.maxRequestBytes) throw new ErrRequestTooLarge();
    const done = this.wait.register(id, Date.now() + this.deps.requestTimeoutMs);
    let entryData: Uint8Array;
    try {
      entryData = raft.propose(data);
    } catch (e) {
      this.wait.cancel(id);
      this.deps.metrics.proposalsFailed.inc();
      throw dropped(e, raft);
    }
    // Keyed by the bytes the entry holds: the same object arrives in the committed entry.
    this.proposed.set(entryData, req);
    this.deps.metrics.proposalsPending.inc();
    const outcome = await done;
    this.deps.metrics.proposalsPending.dec();
    if ('err' in outcome) throw outcome.err;
    return outcome.ok;
  }

  /** A membership change; resolves once it is applied on this member. */
  async proposeConfChange(type: ConfChangeType, nodeId: bigint, member?: Member): Promise<void> {
    if (this.stopped) throw new ErrStopped();
    const raft = this.deps.raft();
    const requestId = this.deps.ids.nextId().toString();
    const done = this.wait.register(requestId, Date.now() + this.deps.requestTimeoutMs);
    try {
      raft.proposeConfChange({ type, nodeId, context: encodeConfChangeContext(requestId, member) });
    } catch (e) {
      this.wait.cancel(requestId);
      throw dropped(e, raft);
    }
    const outcome = await done;
    if ('err' in outcome) throw outcome.err;
  }

  /**
   * The request in a committed normal entry: the proposer's own object, or decoded from the entry.
   * Each entry is applied once on this member, so the object is forgotten here: the WeakMap holds
   * it as long as the entry's bytes live, and MemoryStorage keeps those until the next snapshot
   * (up to --snapshot-count entries), which kept every decoded request, and the gRPC buffers its
   * key and value are views into, alive with them (issue 12: ~170 MB at 100k puts of 1 KiB).
   */
  request(e: Entry): InternalRaftRequest {
    const mine = this.proposed.get(e.data);
    if (mine === undefined) return decodePutRaftRequest(e.data) ?? this.requestCodec.decode(e.data);
    this.proposed.delete(e.data);
    return mine;
  }

  /** Answers the request with this ID, if this member proposed it and still waits. */
  trigger(id: string | undefined, outcome: ApplyOutcome): void {
    if (id) this.wait.trigger(id, outcome);
  }

  stop(): void {
    this.stopped = true;
    if (this.sweeper) clearInterval(this.sweeper);
    this.wait.triggerAll({ err: new ErrStopped() });
  }
}

/** Raft refused the proposal: no leader to forward to, or it cannot take more right now. */
function dropped(e: unknown, raft: RaftNode): unknown {
  if (e instanceof ErrProposalDropped) return raft.leader === 0n ? new ErrNoLeader() : new ErrTimeout();
  return e;
}
