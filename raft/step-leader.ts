import type { Raft } from './raft';
import { ProgressState, type Progress } from './tracker/progress';
import { confChangeToV2, decodeConfChange, leaveJoint } from './confchange';
import { computeConfChange } from './conf-switch';
import { VoteResult, majorityVoteResult } from './quorum';
import { bcastAppend, bcastHeartbeat, maybeCommit, maybeSendAppend, sendAppend } from './replication';
import { handleReadIndexAsLeader, releasePendingReadIndexMessages, respondToReadIndex } from './read-index';
import { ErrProposalDropped, assert } from './errors';
import {
  EMPTY_BYTES,
  EntryType,
  MessageType,
  None,
  StateType,
  newMessage,
  payloadSizeBytes,
  type ConfChangeV2,
  type Entry,
  type Message,
  type NodeId,
} from './types';

/*
 * The leader's step function (etcd-io/raft raft.go's stepLeader): heartbeats and check-quorum,
 * proposals and the uncommitted size cap, followers' append and heartbeat responses (flow control,
 * fast backtracking, commitment), snapshot status, and leadership transfer (thesis §3.10).
 */

export function stepLeader(r: Raft, m: Message): void {
  switch (m.type) {
    case MessageType.MsgBeat:
      bcastHeartbeat(r);
      return;
    case MessageType.MsgCheckQuorum:
      // Check-quorum (thesis §6.2): a leader that has not heard from a quorum within an
      // election timeout steps down, so clients can find the real leader.
      if (!r.trk.quorumActive()) {
        r.logger?.warn(`${r.id.toString(16)} stepped down to follower since quorum is not active`);
        r.becomeFollower(r.term, None);
      }
      r.trk.visit((id, pr) => {
        if (id !== r.id) pr.recentActive = false;
      });
      return;
    case MessageType.MsgProp:
      handleProposal(r, m);
      return;
    case MessageType.MsgReadIndex:
      handleReadIndexAsLeader(r, m);
      return;
    default:
      break;
  }
  const pr = r.trk.progress.get(m.from);
  if (!pr) return;
  switch (m.type) {
    case MessageType.MsgAppResp:
      handleAppendResponse(r, m, pr);
      return;
    case MessageType.MsgHeartbeatResp:
      handleHeartbeatResponse(r, m, pr);
      return;
    case MessageType.MsgSnapStatus:
      if (pr.state !== ProgressState.Snapshot) return;
      if (m.reject) pr.pendingSnapshot = 0;
      pr.becomeProbe();
      // Wait for a heartbeat response before probing: the follower may be down.
      pr.msgAppFlowPaused = true;
      return;
    case MessageType.MsgUnreachable:
      // An unreachable follower probably lost messages: stop pipelining, probe again.
      if (pr.state === ProgressState.Replicate) pr.becomeProbe();
      return;
    case MessageType.MsgTransferLeader:
      handleTransferLeader(r, m, pr);
      return;
    default:
      return;
  }
}

function handleProposal(r: Raft, m: Message): void {
  assert(m.entries.length > 0, 'stepped empty MsgProp');
  if (!r.trk.progress.has(r.id)) {
    // We were removed from the configuration while leader: refuse new work.
    throw new ErrProposalDropped('leader was removed from the configuration');
  }
  if (r.leadTransferee !== None) {
    // Thesis §3.10: stop accepting proposals while transferring, so the target can catch up.
    throw new ErrProposalDropped('leadership transfer in progress');
  }
  for (let i = 0; i < m.entries.length; i++) {
    const e = m.entries[i];
    if (e.type === EntryType.Normal) continue;
    const refused = refuseConfChange(r, e);
    if (refused !== undefined) {
      r.logger?.info(`${r.id.toString(16)} ignoring conf change: ${refused}`);
      m.entries[i] = { term: 0, index: 0, type: EntryType.Normal, data: EMPTY_BYTES };
    } else {
      r.pendingConfIndex = r.raftLog.lastIndex() + i + 1;
    }
  }
  if (!appendEntry(r, m.entries)) throw new ErrProposalDropped('uncommitted entries size limit exceeded');
  // Defer the broadcast to the next Ready: every proposal until then rides in one MsgApp.
  r.appendPending = true;
}

/** Why a configuration change cannot be proposed now, or undefined if it can. */
function refuseConfChange(r: Raft, e: Entry): string | undefined {
  let cc: ConfChangeV2;
  try {
    cc = confChangeToV2(decodeConfChange(e.type, e.data));
  } catch {
    return 'undecodable configuration change';
  }
  const alreadyPending = r.pendingConfIndex > r.raftLog.applied;
  const alreadyJoint = r.trk.isJoint();
  const wantsLeaveJoint = leaveJoint(cc);
  if (alreadyPending) return `possible unapplied conf change at index ${r.pendingConfIndex} (applied to ${r.raftLog.applied})`;
  if (alreadyJoint && !wantsLeaveJoint) return 'must transition out of joint config first';
  if (!alreadyJoint && wantsLeaveJoint) return 'not in joint state; refusing empty conf change';
  // The config the change will apply to is the current one (nothing else is pending), so a
  // dry run tells whether applying it would be valid; refuse it now rather than fail later.
  try {
    computeConfChange(r, cc);
  } catch (err) {
    return err instanceof Error ? err.message : 'invalid conf change';
  }
  return undefined;
}

/** Appends entries as the leader. Returns false when the uncommitted size cap refuses them. */
export function appendEntry(r: Raft, es: Entry[]): boolean {
  let li = r.raftLog.lastIndex();
  for (let i = 0; i < es.length; i++) {
    es[i].term = r.term;
    es[i].index = ++li;
  }
  if (!increaseUncommittedSize(r, es)) return false;
  r.raftLog.append(es);
  return true;
}

/**
 * The cap on uncommitted log size (thesis §10.2.3 / etcd MaxUncommittedEntriesSize): beyond it,
 * proposals are refused rather than buffered without bound. One proposal always fits into an
 * empty budget so oversized entries cannot wedge the leader.
 */
function increaseUncommittedSize(r: Raft, es: readonly Entry[]): boolean {
  const s = payloadSizeBytes(es);
  const max = r.cfg.maxUncommittedEntriesSize;
  if (max > 0 && r.uncommittedSize > 0 && s > 0 && r.uncommittedSize + s > max) return false;
  r.uncommittedSize += s;
  return true;
}

export function reduceUncommittedSize(r: Raft, sizeBytes: number): void {
  if (r.state !== StateType.Leader) return;
  // Entries from earlier terms were never counted; clamp at zero.
  r.uncommittedSize = sizeBytes >= r.uncommittedSize ? 0 : r.uncommittedSize - sizeBytes;
}

function handleAppendResponse(r: Raft, m: Message, pr: Progress): void {
  pr.recentActive = true;
  if (m.reject) {
    // Fast backtracking (thesis §5.3 end): the follower's hint is (index, term) of its last
    // entry at or below our probe index with term ≤ our probe's term. Skip to the last index of
    // ours with term ≤ that term; everything between cannot match.
    let nextProbeIdx = m.rejectHint;
    if (m.logTerm > 0) nextProbeIdx = r.raftLog.findConflictByTerm(m.rejectHint, m.logTerm)[0];
    if (pr.maybeDecrTo(m.index, nextProbeIdx)) {
      if (pr.state === ProgressState.Replicate) pr.becomeProbe();
      sendAppend(r, m.from);
    }
    return;
  }
  const oldPaused = pr.isPaused();
  if (!pr.maybeUpdate(m.index) && !(pr.match === m.index && pr.state === ProgressState.Probe)) {
    return;
  }
  switch (pr.state) {
    case ProgressState.Probe:
      pr.becomeReplicate();
      break;
    case ProgressState.Snapshot:
      // The snapshot (or a later append) landed: resume replication if the log covers the rest.
      if (pr.match + 1 >= r.raftLog.firstIndex()) {
        pr.becomeProbe();
        pr.becomeReplicate();
      }
      break;
    case ProgressState.Replicate:
      pr.inflights.freeLE(m.index);
      break;
  }
  if (maybeCommit(r)) {
    releasePendingReadIndexMessages(r);
    bcastAppend(r);
  } else if (oldPaused && pr.state === ProgressState.Probe) {
    sendAppend(r, m.from);
  }
  // Keep the pipeline full: send as many MsgApps as flow control allows (this also sends an
  // empty MsgApp when only the commit index can advance on the follower).
  for (let i = 0; i < r.cfg.maxInflightMsgs && maybeSendAppend(r, m.from, false); i++) {
    /* bounded by the inflight window */
  }
  if (m.from === r.leadTransferee && pr.match === r.raftLog.lastIndex()) {
    // The transferee caught up: tell it to campaign now (thesis §3.10).
    sendTimeoutNow(r, m.from);
  }
}

function handleHeartbeatResponse(r: Raft, m: Message, pr: Progress): void {
  pr.recentActive = true;
  pr.msgAppFlowPaused = false;
  if (pr.match < r.raftLog.lastIndex() || pr.state === ProgressState.Probe) sendAppend(r, m.from);
  if (r.readOnly.option !== 'safe' || !m.context || m.context.byteLength === 0) return;
  const acks = r.readOnly.recvAck(m.from, m.context);
  if (!acks) return;
  const votes = new Map<NodeId, boolean>();
  for (const id of acks) votes.set(id, true);
  const inc = majorityVoteResult(r.trk.config.incoming, votes);
  const out = majorityVoteResult(r.trk.config.outgoing, votes);
  if (inc !== VoteResult.Won || out !== VoteResult.Won) return;
  for (const rs of r.readOnly.advance(m.context)) respondToReadIndex(r, rs.req, rs.index);
}

function handleTransferLeader(r: Raft, m: Message, pr: Progress): void {
  if (pr.isLearner) return; // a learner cannot lead
  const transferee = m.from;
  const last = r.leadTransferee;
  if (last !== None) {
    if (last === transferee) return; // already transferring there
    r.abortLeaderTransfer();
  }
  if (transferee === r.id) return; // already leader
  // The transfer must finish within an election timeout or it is aborted (tickHeartbeat).
  r.electionElapsed = 0;
  r.leadTransferee = transferee;
  if (pr.match === r.raftLog.lastIndex()) sendTimeoutNow(r, transferee);
  else sendAppend(r, transferee);
}

function sendTimeoutNow(r: Raft, to: NodeId): void {
  r.send(newMessage(MessageType.MsgTimeoutNow, to, r.id, 0));
}
