import type { Raft } from './raft';
import type { ProgressState } from './tracker/progress';
import { StateType, type ConfState, type NodeId } from './types';

/* A snapshot of a member's Raft state for callers (etcd-io/raft status.go, getStatus). */

export interface ProgressStatus {
  match: number;
  next: number;
  state: ProgressState;
  isLearner: boolean;
  recentActive: boolean;
  inflight: number;
}

export interface Status {
  id: NodeId;
  term: number;
  vote: NodeId;
  commit: number;
  applied: number;
  lead: NodeId;
  raftState: StateType;
  leadTransferee: NodeId;
  config: ConfState;
  /** Only on the leader. */
  progress?: Map<NodeId, ProgressStatus>;
}

export function getStatus(r: Raft): Status {
  const s: Status = {
    id: r.id,
    term: r.term,
    vote: r.vote,
    commit: r.raftLog.committed,
    applied: r.raftLog.applied,
    lead: r.lead,
    raftState: r.state,
    leadTransferee: r.leadTransferee,
    config: r.trk.confState(),
  };
  if (r.state === StateType.Leader) {
    const progress = new Map<NodeId, ProgressStatus>();
    r.trk.visit((id, pr) => {
      progress.set(id, {
        match: pr.match,
        next: pr.next,
        state: pr.state,
        isLearner: pr.isLearner,
        recentActive: pr.recentActive,
        inflight: pr.inflights.length,
      });
    });
    s.progress = progress;
  }
  return s;
}
