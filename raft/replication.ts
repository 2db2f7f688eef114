import type { Raft } from './raft';
import type { Progress } from './tracker/progress';
import { ProgressState } from './tracker/progress';
import { restoreConfState } from './confchange';
import { switchToConfig } from './conf-switch';
import { releasePendingReadIndexMessages } from './read-index';
import { ErrCompacted, ErrSnapshotTemporarilyUnavailable, ErrUnavailable, assert } from './errors';
import {
  MessageType,
  None,
  StateType,
  confStateEqual,
  newMessage,
  payloadSizeBytes,
  type Entry,
  type Message,
  type NodeId,
  type Snapshot,
} from './types';

/*
 * Log replication (thesis §3.5, §10.2; etcd-io/raft raft.go's maybeSendAppend, bcastAppend,
 * bcastHeartbeat, maybeCommit and the follower's handleAppendEntries / handleHeartbeat /
 * handleSnapshot): what the leader sends to keep followers' logs and commit indexes up to date,
 * how it advances its commit index, and how a follower takes in what it is sent.
 */

// ---------------------------------------------------------------- sending (leader)

/** Sends MsgApp (or MsgSnap) to `to` even if it carries no entries. */
export function sendAppend(r: Raft, to: NodeId): void {
  maybeSendAppend(r, to, true);
}

/**
 * Sends the next MsgApp to `to` if flow control allows (thesis §10.2 pipelining, with etcd's
 * probe/replicate/snapshot states). Returns whether a message was sent.
 */
export function maybeSendAppend(r: Raft, to: NodeId, sendIfEmpty: boolean): boolean {
  const pr = r.trk.progress.get(to);
  if (!pr || to === r.id) return false;
  if (pr.state === ProgressState.Snapshot) return false;
  if (pr.state === ProgressState.Probe && pr.msgAppFlowPaused) return false;
  const prevIndex = pr.next - 1;
  const prevTerm = r.raftLog.termOrUndefined(prevIndex);
  if (prevTerm === undefined) {
    // The entries the follower needs were compacted: it needs a snapshot.
    return maybeSendSnapshot(r, to, pr);
  }
  let ents: Entry[] = [];
  if (pr.state !== ProgressState.Replicate || !pr.inflights.full()) {
    try {
      ents = r.raftLog.entries(pr.next, r.cfg.maxSizePerMsg);
    } catch (e) {
      if (e instanceof ErrCompacted || e instanceof ErrUnavailable) return maybeSendSnapshot(r, to, pr);
      throw e;
    }
  }
  const commit = r.raftLog.committed;
  if (ents.length === 0 && !sendIfEmpty && !pr.canBumpCommit(commit)) return false;
  const m = newMessage(MessageType.MsgApp, to, r.id, 0);
  m.index = prevIndex;
  m.logTerm = prevTerm;
  m.entries = ents;
  m.commit = commit;
  let bytes = 0;
  if (ents.length > 0) bytes = payloadSizeBytes(ents);
  pr.sentEntries(ents.length, bytes, commit);
  r.send(m);
  return true;
}

function maybeSendSnapshot(r: Raft, to: NodeId, pr: Progress): boolean {
  if (!pr.recentActive) {
    // etcd: don't ship a snapshot to a member we have not heard from; it may be down.
    return false;
  }
  let snapshot: Snapshot;
  try {
    snapshot = r.raftLog.snapshot();
  } catch (e) {
    if (e instanceof ErrSnapshotTemporarilyUnavailable) return false;
    throw e;
  }
  assert(snapshot.metadata.index !== 0, 'need non-empty snapshot');
  pr.becomeSnapshot(snapshot.metadata.index);
  const m = newMessage(MessageType.MsgSnap, to, r.id, 0);
  m.snapshot = snapshot;
  r.send(m);
  return true;
}

function sendHeartbeat(r: Raft, to: NodeId, ctx: Uint8Array | undefined): void {
  const pr = r.trk.progress.get(to);
  assert(pr, 'heartbeat to unknown member');
  // Never tell a follower to commit beyond what it is known to hold: its log may not match ours yet.
  // BROKEN ON PURPOSE when heartbeatCommitUnclamped (tests only).
  const commit = r.bugs.heartbeatCommitUnclamped ? r.raftLog.committed : Math.min(pr.match, r.raftLog.committed);
  const m = newMessage(MessageType.MsgHeartbeat, to, r.id, 0);
  m.commit = commit;
  m.context = ctx;
  if (commit > pr.sentCommit) pr.sentCommit = commit;
  r.send(m);
}

/** Sends appends to every follower that can take one (new entries or a commit bump). */
export function bcastAppend(r: Raft): void {
  r.appendPending = false;
  const ids = r.trk.ids();
  for (let i = 0; i < ids.length; i++) {
    if (ids[i] === r.id) continue;
    // Pipeline (thesis §10.2.2): as many size-limited MsgApps as the inflight window allows.
    for (let k = 0; k < r.cfg.maxInflightMsgs && maybeSendAppend(r, ids[i], false); k++) {
      /* bounded by the inflight window */
    }
  }
}

export function bcastHeartbeat(r: Raft): void {
  const ctx = r.readOnly.lastPendingRequestCtx();
  bcastHeartbeatWithCtx(r, ctx);
}

export function bcastHeartbeatWithCtx(r: Raft, ctx: Uint8Array | undefined): void {
  for (const id of r.trk.ids()) {
    if (id !== r.id) sendHeartbeat(r, id, ctx);
  }
}

/** Advances the commit index to what a quorum holds (thesis §3.6.2). Returns whether it moved. */
export function maybeCommit(r: Raft): boolean {
  const mci = r.trk.committed();
  if (r.bugs.commitPriorTermByCount) {
    // BROKEN ON PURPOSE (tests only): commits by replica count regardless of the entry's term.
    if (mci > r.raftLog.committed && mci <= r.raftLog.lastIndex()) {
      r.raftLog.commitTo(mci);
      return true;
    }
    return false;
  }
  return r.raftLog.maybeCommit(mci, r.term);
}

/**
 * The caller persisted everything up to the log's stable last index. The leader now counts its
 * own log in the commit quorum (the persistence contract: a write is acknowledged only once a
 * quorum has it durably, including the leader — etcd's self MsgAppResp after storage append).
 */
export function onPersisted(r: Raft): void {
  if (r.state !== StateType.Leader) return;
  const pr = r.trk.progress.get(r.id);
  if (!pr) return; // removed from the config; still leading until it steps down
  // BROKEN ON PURPOSE when leaderSelfAckUnpersisted (tests only): entries proposed since the
  // persisted Ready was taken are still in flight or not even handed out.
  const durable = r.bugs.leaderSelfAckUnpersisted ? r.raftLog.lastIndex() : r.raftLog.stableLastIndex();
  if (pr.maybeUpdate(durable) && maybeCommit(r)) {
    releasePendingReadIndexMessages(r);
    bcastAppend(r);
  }
}

export function handleAppendEntries(r: Raft, m: Message): void {
  if (m.index < r.raftLog.committed) {
    // Everything up to our commit index matches the leader's log already.
    const resp = newMessage(MessageType.MsgAppResp, m.from, r.id, 0);
    resp.index = r.raftLog.committed;
    r.send(resp);
    return;
  }
  const lastNew = r.raftLog.maybeAppend(m.index, m.logTerm, m.commit, m.entries, r.bugs.followerCommitPastLastNew === true);
  if (lastNew !== undefined) {
    // The acknowledgement leaves in the same Ready as the entries, i.e. after they are durable.
    const resp = newMessage(MessageType.MsgAppResp, m.from, r.id, 0);
    resp.index = lastNew;
    r.send(resp);
    return;
  }
  // Reject with a hint (thesis §5.3): our last entry at or below m.index whose term is ≤ the
  // leader's term there. The leader can skip every index in between.
  const hintIndex = Math.min(m.index, r.raftLog.lastIndex());
  const [idx, term] = r.raftLog.findConflictByTerm(hintIndex, m.logTerm);
  const resp = newMessage(MessageType.MsgAppResp, m.from, r.id, 0);
  resp.index = m.index;
  resp.reject = true;
  resp.rejectHint = idx;
  resp.logTerm = term;
  r.send(resp);
}

export function handleHeartbeat(r: Raft, m: Message): void {
  // The leader sends min(our match, its commit), so this never commits beyond what matches. A
  // commit beyond our last index means our log lost entries we acknowledged (or the leader is
  // broken): commitTo asserts, as etcd-io/raft panics, and the server fail-stops.
  r.raftLog.commitTo(m.commit);
  const resp = newMessage(MessageType.MsgHeartbeatResp, m.from, r.id, 0);
  resp.context = m.context;
  r.send(resp);
}

export function handleSnapshot(r: Raft, m: Message): void {
  const s = m.snapshot;
  assert(s, 'MsgSnap without snapshot');
  const resp = newMessage(MessageType.MsgAppResp, m.from, r.id, 0);
  resp.index = restore(r, s) ? r.raftLog.lastIndex() : r.raftLog.committed;
  r.send(resp);
}

/** Installs a leader's snapshot (thesis §5.1, InstallSnapshot). Returns whether it was used. */
export function restore(r: Raft, s: Snapshot): boolean {
  if (s.metadata.index <= r.raftLog.committed) return false;
  if (r.state !== StateType.Follower) {
    // Defense in depth (etcd): only followers install snapshots.
    r.becomeFollower(r.term + 1, None);
    return false;
  }
  if (r.raftLog.matchTerm(s.metadata.index, s.metadata.term)) {
    // We already have the snapshot's last entry: fast-forward the commit index instead.
    r.raftLog.commitTo(s.metadata.index);
    return false;
  }
  // Unlike etcd we accept a snapshot whose ConfState does not list us: a member added after the
  // leader's latest snapshot was taken learns its own addition from the entries that follow.
  // Without a progress for ourselves we are not promotable, so this cannot elect us.
  r.raftLog.restore(s);
  const [cfg, prs] = restoreConfState(r.trk, r.raftLog.lastIndex(), s.metadata.confState);
  const cs = switchToConfig(r, cfg, prs);
  assert(confStateEqual(cs, s.metadata.confState), 'snapshot conf state not restored');
  return true;
}
