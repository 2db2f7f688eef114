import { Progress } from './progress';
import { Inflights } from '../inflights';
import { jointCommittedIndex, jointVoteResult, VoteResult } from '../quorum';
import { compareIds, type ConfState, type NodeId } from '../types';

/**
 * A membership configuration (etcd-io/raft tracker.Config). `outgoing` is non-empty only in a
 * joint configuration C_old,new (thesis §4.3), where it holds C_old.
 */
export interface TrackerConfig {
  incoming: Set<NodeId>;
  outgoing: Set<NodeId>;
  learners: Set<NodeId>;
  /** Voters of `outgoing` that become learners once the joint config is left. */
  learnersNext: Set<NodeId>;
  autoLeave: boolean;
}

export function emptyTrackerConfig(): TrackerConfig {
  return { incoming: new Set(), outgoing: new Set(), learners: new Set(), learnersNext: new Set(), autoLeave: false };
}

export function cloneTrackerConfig(c: TrackerConfig): TrackerConfig {
  return {
    incoming: new Set(c.incoming),
    outgoing: new Set(c.outgoing),
    learners: new Set(c.learners),
    learnersNext: new Set(c.learnersNext),
    autoLeave: c.autoLeave,
  };
}

export type ProgressMap = Map<NodeId, Progress>;

function sorted(s: ReadonlySet<NodeId>): NodeId[] {
  return [...s].sort(compareIds);
}

/**
 * The leader's view of every member plus the vote tally (etcd-io/raft tracker.ProgressTracker).
 * Iteration is in ascending ID order so that runs are deterministic.
 */
export class ProgressTracker {
  config: TrackerConfig = emptyTrackerConfig();
  progress: ProgressMap = new Map();
  votes: Map<NodeId, boolean> = new Map();
  private sortedIds: NodeId[] = [];
  private readonly ackedIndexer = (id: NodeId): number | undefined => this.progress.get(id)?.match;

  constructor(
    readonly maxInflight: number,
    readonly maxInflightBytes: number,
  ) {}

  newInflights(): Inflights {
    return new Inflights(this.maxInflight, this.maxInflightBytes);
  }

  /** Installs a configuration and its progress map (from the Changer). */
  install(config: TrackerConfig, progress: ProgressMap): void {
    this.config = config;
    this.progress = progress;
    this.sortedIds = [...progress.keys()].sort(compareIds);
  }

  confState(): ConfState {
    return {
      voters: sorted(this.config.incoming),
      votersOutgoing: sorted(this.config.outgoing),
      learners: sorted(this.config.learners),
      learnersNext: sorted(this.config.learnersNext),
      autoLeave: this.config.autoLeave,
    };
  }

  isSingleton(): boolean {
    return this.config.incoming.size === 1 && this.config.outgoing.size === 0;
  }

  isJoint(): boolean {
    return this.config.outgoing.size > 0;
  }

  isVoter(id: NodeId): boolean {
    return this.config.incoming.has(id) || this.config.outgoing.has(id);
  }

  /** The largest index acknowledged by a (joint) quorum of voters. */
  committed(): number {
    return jointCommittedIndex(this.config.incoming, this.config.outgoing, this.ackedIndexer);
  }

  /** Every member with a progress, in ascending ID order. */
  ids(): readonly NodeId[] {
    return this.sortedIds;
  }

  visit(f: (id: NodeId, pr: Progress) => void): void {
    for (const id of this.sortedIds) {
      const pr = this.progress.get(id);
      if (pr) f(id, pr);
    }
  }

  /** Check-quorum (thesis §6.2): has a quorum of voters been heard from recently? */
  quorumActive(): boolean {
    const votes = new Map<NodeId, boolean>();
    this.visit((id, pr) => {
      if (!pr.isLearner) votes.set(id, pr.recentActive);
    });
    return jointVoteResult(this.config.incoming, this.config.outgoing, votes) === VoteResult.Won;
  }

  voterIds(): NodeId[] {
    const s = new Set<NodeId>([...this.config.incoming, ...this.config.outgoing]);
    return sorted(s);
  }

  resetVotes(): void {
    this.votes = new Map();
  }

  /** Records a vote; only the first answer from each voter counts. */
  recordVote(id: NodeId, granted: boolean): void {
    if (!this.votes.has(id)) this.votes.set(id, granted);
  }

  tallyVotes(): { granted: number; rejected: number; result: VoteResult } {
    let granted = 0;
    let rejected = 0;
    this.visit((id, pr) => {
      if (pr.isLearner) return;
      const v = this.votes.get(id);
      if (v === undefined) return;
      if (v) granted++;
      else rejected++;
    });
    return { granted, rejected, result: jointVoteResult(this.config.incoming, this.config.outgoing, this.votes) };
  }
}
