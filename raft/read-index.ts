import type { Raft } from './raft';
import { MAX_PENDING_READ_INDEX } from './read-only';
import { bcastHeartbeatWithCtx } from './replication';
import { ErrProposalDropped, assert } from './errors';
import { MessageType, None, newMessage, type Message } from './types';

/*
 * ReadIndex on the leader (thesis §6.4; etcd-io/raft raft.go's MsgReadIndex case of stepLeader,
 * sendMsgReadIndexResponse and releasePendingReadIndexMessages): a read is answered with the
 * commit index once leadership is confirmed — by a heartbeat round ('safe') or by the lease.
 */

/** Bound on ReadIndex requests a new leader holds until it commits an entry of its term. */
export const MAX_PENDING_READ_INDEX_MESSAGES = 4096;

function committedEntryInCurrentTerm(r: Raft): boolean {
  // BROKEN ON PURPOSE when readIndexBeforeCommitInTerm (tests only).
  if (r.bugs.readIndexBeforeCommitInTerm) return true;
  return r.raftLog.termOrUndefined(r.raftLog.committed) === r.term;
}

export function handleReadIndexAsLeader(r: Raft, m: Message): void {
  if (r.trk.isSingleton()) {
    // A single voter is its own quorum, but still only once it committed in its term.
    if (!committedEntryInCurrentTerm(r)) {
      deferReadIndex(r, m);
      return;
    }
    respondToReadIndex(r, m, r.raftLog.committed);
    return;
  }
  if (!committedEntryInCurrentTerm(r)) {
    // Thesis §6.4 step 1: a new leader does not know the commit index until it commits an entry
    // of its term; reads wait until then.
    deferReadIndex(r, m);
    return;
  }
  sendReadIndexResponse(r, m);
}

function deferReadIndex(r: Raft, m: Message): void {
  if (r.pendingReadIndexMessages.length >= MAX_PENDING_READ_INDEX_MESSAGES) {
    if (m.from === r.id || m.from === None) throw new ErrProposalDropped('too many pending read index requests');
    return;
  }
  r.pendingReadIndexMessages.push(m);
}

function sendReadIndexResponse(r: Raft, m: Message): void {
  if (r.cfg.readOnlyOption === 'safe') {
    if (r.readOnly.size >= MAX_PENDING_READ_INDEX) {
      if (m.from === r.id || m.from === None) throw new ErrProposalDropped('too many pending read index requests');
      return;
    }
    // Thesis §6.4 steps 2-3: record the commit index, then confirm leadership with a heartbeat
    // round that carries the request's context.
    if (r.bugs.readIndexWithoutQuorum) {
      // BROKEN ON PURPOSE (tests only): no heartbeat round, so a deposed leader answers.
      respondToReadIndex(r, m, r.raftLog.committed);
      return;
    }
    r.readOnly.addRequest(r.raftLog.committed, m);
    const acks = r.readOnly.recvAck(r.id, m.entries[0].data);
    assert(acks, 'read request vanished');
    if (r.trk.isSingleton()) {
      for (const rs of r.readOnly.advance(m.entries[0].data)) respondToReadIndex(r, rs.req, rs.index);
      return;
    }
    bcastHeartbeatWithCtx(r, m.entries[0].data);
    return;
  }
  // Lease-based (thesis §6.4.1): trust check-quorum and bounded clock drift instead of a round.
  respondToReadIndex(r, m, r.raftLog.committed);
}

export function releasePendingReadIndexMessages(r: Raft): void {
  if (r.pendingReadIndexMessages.length === 0) return;
  if (!committedEntryInCurrentTerm(r)) return;
  const msgs = r.pendingReadIndexMessages;
  r.pendingReadIndexMessages = [];
  for (const m of msgs) {
    if (r.trk.isSingleton()) respondToReadIndex(r, m, r.raftLog.committed);
    else sendReadIndexResponse(r, m);
  }
}

export function respondToReadIndex(r: Raft, req: Message, readIndex: number): void {
  if (req.from === None || req.from === r.id) {
    r.readStates.push({ index: readIndex, requestCtx: req.entries[0].data });
    return;
  }
  const resp = newMessage(MessageType.MsgReadIndexResp, req.from, r.id, 0);
  resp.index = readIndex;
  resp.entries = req.entries;
  r.send(resp);
}
