import type { Raft } from './raft';
import { Changer, confChangeToV2, enterJoint, leaveJoint } from './confchange';
import { bcastAppend, maybeCommit, maybeSendAppend } from './replication';
import { releasePendingReadIndexMessages } from './read-index';
import { ErrProposalDropped } from './errors';
import type { TrackerConfig, ProgressMap } from './tracker/tracker';
import {
  EMPTY_BYTES,
  EntryType,
  MessageType,
  None,
  StateType,
  newMessage,
  type ConfChange,
  type ConfChangeV2,
  type ConfState,
  type Entry,
  type NodeId,
} from './types';

/*
 * Membership (thesis §4; etcd-io/raft raft.go's applyConfChange and switchToConfig): computing a
 * configuration change, installing the new configuration and reacting to it, and leaving an
 * auto-leave joint configuration once the change that entered it is applied.
 */

export function computeConfChange(r: Raft, cc: ConfChangeV2): [TrackerConfig, ProgressMap] {
  const changer = new Changer(r.trk, r.raftLog.lastIndex());
  if (leaveJoint(cc)) return changer.leaveJoint();
  const [autoLeave, joint] = enterJoint(cc);
  if (joint) return changer.enterJoint(autoLeave, cc.changes);
  return changer.simple(cc.changes);
}

export function applyConfChange(r: Raft, cc: ConfChange | ConfChangeV2): ConfState {
  const [cfg, prs] = computeConfChange(r, confChangeToV2(cc));
  return switchToConfig(r, cfg, prs);
}

/** Installs a new configuration and reacts to it: step down if removed, commit, catch up. */
export function switchToConfig(r: Raft, cfg: TrackerConfig, prs: ProgressMap): ConfState {
  r.trk.install(cfg, prs);
  const cs = r.trk.confState();
  const pr = prs.get(r.id);
  r.isLearner = pr !== undefined && pr.isLearner;
  if ((pr === undefined || r.isLearner) && r.state === StateType.Leader) {
    // Removed or demoted while leading (possible once the joint config is left): step down so
    // the remaining voters elect a leader among themselves (etcd's StepDownOnRemoval).
    r.becomeFollower(r.term, None);
    return cs;
  }
  if (r.state !== StateType.Leader && r.lead !== None && !r.trk.isVoter(r.lead)) onLeaderRemoved(r);
  if (r.state !== StateType.Leader || cs.voters.length === 0) return cs;
  // The quorum may have shrunk: maybe more entries are now committed.
  if (maybeCommit(r)) {
    releasePendingReadIndexMessages(r);
    bcastAppend(r);
  } else {
    // New members need their first probe.
    r.trk.visit((id) => {
      if (id !== r.id) maybeSendAppend(r, id, false);
    });
  }
  if (r.leadTransferee !== None && !r.trk.isVoter(r.leadTransferee)) r.abortLeaderTransfer();
  return cs;
}

/**
 * A configuration without our leader was applied: the leader removed itself (member replace,
 * `etcdctl member remove <leader>`) and steps down once it applies the same entry. Waiting out
 * an election timeout for a leader that is gone only lengthens the leaderless window (finding 11
 * in docs/verification.md), and worse, its lease would make us ignore the other survivors'
 * pre-votes (thesis §4.2.3 stickiness protects a live leader of our configuration, which it no
 * longer is) until our own timer ran out. So: forget the leader, and let the lowest-ID voter of
 * the new configuration campaign on its next tick, so that the survivors do not split the vote by
 * all campaigning at once. The others keep their timers as the fallback (say the lowest-ID voter
 * is behind and loses). etcd-io/raft leaves this to the election timeout; campaigning is always
 * safe in Raft, only its timing changes. The campaign waits for the next tick because the entry
 * being applied still counts as an unapplied configuration change in `hup`.
 */
function onLeaderRemoved(r: Raft): void {
  r.lead = None;
  const voters = r.trk.confState().voters;
  const first = voters.reduce<NodeId | undefined>((min, id) => (min === undefined || id < min ? id : min), undefined);
  if (first === r.id && r.promotable()) r.electionElapsed = Math.max(r.electionElapsed, r.randomizedElectionTimeout - 1);
}

/**
 * The application applied entries up to `index` (RawNode.advance). A leader in an auto-leave
 * joint config proposes leaving it once the entering change is applied.
 */
export function onApplied(r: Raft, index: number): void {
  if (r.state !== StateType.Leader) return;
  if (r.trk.config.autoLeave && index >= r.pendingConfIndex) {
    // An empty ConfChangeV2 leaves the joint config (thesis §4.3: C_old,new then C_new).
    const e: Entry = { term: 0, index: 0, type: EntryType.ConfChangeV2, data: EMPTY_BYTES };
    if (r.leadTransferee !== None) return; // retried on a later apply
    const m = newMessage(MessageType.MsgProp, None, r.id, 0);
    m.entries = [e];
    try {
      r.step(m);
    } catch (err) {
      if (!(err instanceof ErrProposalDropped)) throw err;
      return;
    }
    r.pendingConfIndex = r.raftLog.lastIndex();
  }
}
