import type { Raft } from './raft';
import { VoteResult } from './quorum';
import { ErrCompacted } from './errors';
import { EntryType, MessageType, None, StateType, newMessage, voteRespMsgType, type Entry, type Message, type NodeId } from './types';

/*
 * Elections (thesis §3.4, pre-vote §9.6; etcd-io/raft raft.go's hup, campaign, poll and the vote
 * handling in Step): starting a (pre-)election, counting votes, and granting or refusing ours.
 * Leader stickiness and the term checks that come before a vote request is handled are in
 * Raft.step, as in etcd.
 */

/** Context of a MsgVote sent on a leadership transfer: voters must not ignore it for stickiness. */
export const CAMPAIGN_TRANSFER_CTX: Uint8Array = new Uint8Array(Buffer.from('CampaignTransfer'));

export enum CampaignType {
  PreElection,
  Election,
  Transfer,
}

export function isCampaignTransfer(ctx: Uint8Array | undefined): boolean {
  if (!ctx || ctx.byteLength !== CAMPAIGN_TRANSFER_CTX.byteLength) return false;
  for (let i = 0; i < ctx.byteLength; i++) if (ctx[i] !== CAMPAIGN_TRANSFER_CTX[i]) return false;
  return true;
}

export function hup(r: Raft, t: CampaignType): void {
  if (r.state === StateType.Leader) return;
  if (!r.promotable()) {
    r.logger?.warn(`${r.id.toString(16)} is unpromotable and can not campaign`);
    return;
  }
  if (hasUnappliedConfChanges(r)) {
    // A configuration change we have not applied could change who may vote (etcd-io/raft).
    r.logger?.warn(`${r.id.toString(16)} cannot campaign: pending configuration changes to apply`);
    return;
  }
  campaign(r, t);
}

function hasUnappliedConfChanges(r: Raft): boolean {
  if (r.raftLog.applied >= r.raftLog.committed) return false;
  const lo = r.raftLog.applied + 1;
  const hi = r.raftLog.committed + 1;
  const pageSizeBytes = r.cfg.maxSizePerMsg;
  for (let i = lo; i < hi; ) {
    let ents: Entry[];
    try {
      ents = r.raftLog.slice(i, hi, pageSizeBytes);
    } catch (e) {
      if (e instanceof ErrCompacted) return false;
      throw e;
    }
    for (const e of ents) if (e.type !== EntryType.Normal) return true;
    i += ents.length;
  }
  return false;
}

export function campaign(r: Raft, t: CampaignType): void {
  let term: number;
  let voteMsg: MessageType;
  if (t === CampaignType.PreElection) {
    r.becomePreCandidate();
    voteMsg = MessageType.MsgPreVote;
    // Pre-vote asks "would you vote for me at term+1?" without incrementing our term.
    term = r.term + 1;
  } else {
    r.becomeCandidate();
    voteMsg = MessageType.MsgVote;
    term = r.term;
  }
  const lastIndex = r.raftLog.lastIndex();
  const lastTerm = r.raftLog.lastTerm();
  for (const id of r.trk.voterIds()) {
    if (id === r.id) {
      // Our own vote is a message to ourselves, stepped after the Ready that persists it.
      const m = newMessage(voteRespMsgType(voteMsg), id, r.id, term);
      r.send(m);
      continue;
    }
    const m = newMessage(voteMsg, id, r.id, term);
    m.index = lastIndex;
    m.logTerm = lastTerm;
    if (t === CampaignType.Transfer) m.context = CAMPAIGN_TRANSFER_CTX;
    r.send(m);
  }
}

export function poll(r: Raft, id: NodeId, granted: boolean): VoteResult {
  r.trk.recordVote(id, granted);
  return r.trk.tallyVotes().result;
}

export function handleVoteRequest(r: Raft, m: Message): void {
  // We can vote if we already voted for this candidate (a duplicate), or have voted for no one
  // and know no leader in this term, or this is a pre-vote for a future term.
  const canVote =
    r.vote === m.from ||
    (r.vote === None && r.lead === None) ||
    (m.type === MessageType.MsgPreVote && m.term > r.term);
  const upToDate = r.bugs.grantVoteWithoutLogCheck || r.raftLog.isUpToDate(m.index, m.logTerm);
  if (canVote && upToDate) {
    // For a pre-vote the response carries the future term so the pre-candidate counts it; for a
    // vote it is our (now equal) term. The vote is in the hard state of the Ready carrying this
    // message, so it is durable before it leaves (persistence contract).
    const resp = newMessage(voteRespMsgType(m.type), m.from, r.id, m.term);
    r.send(resp);
    if (m.type === MessageType.MsgVote) {
      r.electionElapsed = 0;
      r.vote = m.from;
    }
  } else {
    const resp = newMessage(voteRespMsgType(m.type), m.from, r.id, r.term);
    resp.reject = true;
    r.send(resp);
  }
}
