import { Inflights } from '../inflights';
import { assert } from '../errors';

/** How the leader replicates to one follower (etcd-io/raft tracker/state.go, thesis §3.5). */
export enum ProgressState {
  /** We do not know the follower's last index: send one MsgApp per heartbeat until it matches. */
  Probe = 0,
  /** The follower is in sync: pipeline MsgApps optimistically, bounded by Inflights. */
  Replicate = 1,
  /** The follower needs a snapshot; nothing is sent until it is applied or fails. */
  Snapshot = 2,
}

/**
 * The leader's view of one follower (etcd-io/raft tracker/progress.go): entries [1, match] are
 * known to be on the follower; `next` is the first index to send.
 */
export class Progress {
  match: number;
  next: number;
  /** The highest commit index sent to the follower (to decide whether an empty MsgApp is useful). */
  sentCommit = 0;
  state: ProgressState = ProgressState.Probe;
  /** In StateSnapshot: the index of the snapshot being sent. */
  pendingSnapshot = 0;
  /** Heard from the follower since the last check-quorum round. */
  recentActive: boolean;
  /** In StateProbe: one MsgApp is outstanding; wait for its answer or a heartbeat response. */
  msgAppFlowPaused = false;
  inflights: Inflights;
  isLearner: boolean;

  constructor(match: number, next: number, inflights: Inflights, isLearner: boolean, recentActive: boolean) {
    this.match = match;
    this.next = next;
    this.inflights = inflights;
    this.isLearner = isLearner;
    this.recentActive = recentActive;
  }

  clone(): Progress {
    const p = new Progress(this.match, this.next, this.inflights.clone(), this.isLearner, this.recentActive);
    p.sentCommit = this.sentCommit;
    p.state = this.state;
    p.pendingSnapshot = this.pendingSnapshot;
    p.msgAppFlowPaused = this.msgAppFlowPaused;
    return p;
  }

  private resetState(state: ProgressState): void {
    this.msgAppFlowPaused = false;
    this.pendingSnapshot = 0;
    this.state = state;
    this.inflights.reset();
  }

  becomeProbe(): void {
    // Coming back from a snapshot: the follower has at least the snapshot's index.
    if (this.state === ProgressState.Snapshot) {
      const pending = this.pendingSnapshot;
      this.resetState(ProgressState.Probe);
      this.next = Math.max(this.match + 1, pending + 1);
    } else {
      this.resetState(ProgressState.Probe);
      this.next = this.match + 1;
    }
    this.sentCommit = Math.min(this.sentCommit, this.next - 1);
  }

  becomeReplicate(): void {
    this.resetState(ProgressState.Replicate);
    this.next = this.match + 1;
  }

  becomeSnapshot(snapshotIndex: number): void {
    this.resetState(ProgressState.Snapshot);
    this.pendingSnapshot = snapshotIndex;
    this.next = snapshotIndex + 1;
    this.sentCommit = snapshotIndex;
  }

  /** Account for a MsgApp with `entries` entries (total `bytes`) and commit index `commit`. */
  sentEntries(entries: number, bytes: number, commit: number): void {
    if (this.state === ProgressState.Replicate) {
      if (entries > 0) {
        // Optimistic: assume they arrive, and pipeline the next batch (thesis §10.2.2).
        this.next += entries;
        this.inflights.add(this.next - 1, bytes);
      }
      this.msgAppFlowPaused = this.inflights.full();
    } else if (this.state === ProgressState.Probe) {
      if (entries > 0) this.msgAppFlowPaused = true;
    } else {
      assert(false, `sending append in unhandled state ${ProgressState[this.state]}`);
    }
    if (commit > this.sentCommit) this.sentCommit = commit;
  }

  /** Sending `commit` may advance the follower's commit index only if it has entries beyond sentCommit. */
  canBumpCommit(commit: number): boolean {
    return commit > this.sentCommit && this.sentCommit < this.next - 1;
  }

  /** An acknowledgement up to n arrived. Returns false if it was stale. */
  maybeUpdate(n: number): boolean {
    if (n <= this.match) return false;
    this.match = n;
    if (this.next < n + 1) this.next = n + 1;
    this.msgAppFlowPaused = false;
    return true;
  }

  /**
   * A rejection of the MsgApp whose previous index was `rejected` arrived, with the follower's hint
   * `matchHint` (an index that may match). Returns false if the rejection is stale.
   */
  maybeDecrTo(rejected: number, matchHint: number): boolean {
    if (this.state === ProgressState.Replicate) {
      // Stale if it refers to an index we know matches.
      if (rejected <= this.match) return false;
      // Optimistic sends went wrong: resume right after the known match.
      this.next = this.match + 1;
      this.sentCommit = Math.min(this.sentCommit, this.next - 1);
      return true;
    }
    // In Probe only the latest probe (at next-1) counts.
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(Math.min(rejected, matchHint + 1), this.match + 1);
    this.sentCommit = Math.min(this.sentCommit, this.next - 1);
    this.msgAppFlowPaused = false;
    return true;
  }

  /** Whether the leader must hold off sending MsgApp to this follower. */
  isPaused(): boolean {
    switch (this.state) {
      case ProgressState.Probe:
        return this.msgAppFlowPaused;
      case ProgressState.Replicate:
        return this.msgAppFlowPaused;
      case ProgressState.Snapshot:
        return true;
    }
  }

  toString(): string {
    return `${ProgressState[this.state]} match=${this.match} next=${this.next}${this.isLearner ? ' learner' : ''}`;
  }
}
