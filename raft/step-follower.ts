import type { Raft } from './raft';
import { VoteResult } from './quorum';
import { CampaignType, campaign, hup, poll } from './election';
import { bcastAppend, handleAppendEntries, handleHeartbeat, handleSnapshot } from './replication';
import { ErrProposalDropped } from './errors';
import { MessageType, None, StateType, type Message } from './types';

/*
 * The step functions of the follower and the (pre-)candidate (etcd-io/raft raft.go's
 * stepFollower and stepCandidate): what a member that is not leader does with each message,
 * after Raft.step has handled terms, votes and MsgHup.
 */

export function stepCandidate(r: Raft, m: Message): void {
  const myVoteRespType = r.state === StateType.PreCandidate ? MessageType.MsgPreVoteResp : MessageType.MsgVoteResp;
  switch (m.type) {
    case MessageType.MsgProp:
      throw new ErrProposalDropped('no leader');
    case MessageType.MsgReadIndex:
      if (m.from === r.id || m.from === None) throw new ErrProposalDropped('no leader');
      return;
    case MessageType.MsgApp:
      r.becomeFollower(m.term, m.from);
      handleAppendEntries(r, m);
      return;
    case MessageType.MsgHeartbeat:
      r.becomeFollower(m.term, m.from);
      handleHeartbeat(r, m);
      return;
    case MessageType.MsgSnap:
      r.becomeFollower(m.term, m.from);
      handleSnapshot(r, m);
      return;
    case MessageType.MsgTimeoutNow:
      return;
    default:
      break;
  }
  if (m.type !== myVoteRespType) return;
  // A granted pre-vote must be for the election we are running (term + 1); an older pre-vote
  // round's grant would otherwise count.
  if (m.type === MessageType.MsgPreVoteResp && !m.reject && m.term !== r.term + 1) return;
  const res = poll(r, m.from, !m.reject);
  if (res === VoteResult.Won) {
    if (r.state === StateType.PreCandidate) {
      campaign(r, CampaignType.Election);
    } else {
      r.becomeLeader();
      bcastAppend(r);
    }
  } else if (res === VoteResult.Lost) {
    // A rejection with a higher term already made us a follower in step(); here the term is ours.
    r.becomeFollower(r.term, None);
  }
}

export function stepFollower(r: Raft, m: Message): void {
  switch (m.type) {
    case MessageType.MsgProp:
      if (r.lead === None) throw new ErrProposalDropped('no leader');
      if (r.cfg.disableProposalForwarding) throw new ErrProposalDropped('proposal forwarding disabled');
      m.to = r.lead;
      r.send(m);
      return;
    case MessageType.MsgApp:
      r.electionElapsed = 0;
      r.lead = m.from;
      handleAppendEntries(r, m);
      return;
    case MessageType.MsgHeartbeat:
      r.electionElapsed = 0;
      r.lead = m.from;
      handleHeartbeat(r, m);
      return;
    case MessageType.MsgSnap:
      r.electionElapsed = 0;
      r.lead = m.from;
      handleSnapshot(r, m);
      return;
    case MessageType.MsgTransferLeader:
      if (r.lead === None) return;
      m.to = r.lead;
      m.term = 0;
      r.send(m);
      return;
    case MessageType.MsgTimeoutNow:
      // Leadership transfer: campaign at once, skipping pre-vote, with the transfer context so
      // voters set stickiness aside (thesis §3.10).
      hup(r, CampaignType.Transfer);
      return;
    case MessageType.MsgReadIndex:
      if (r.lead === None) {
        if (m.from === r.id || m.from === None) throw new ErrProposalDropped('no leader');
        return;
      }
      m.to = r.lead;
      r.send(m);
      return;
    case MessageType.MsgReadIndexResp:
      if (m.entries.length !== 1) return;
      r.readStates.push({ index: m.index, requestCtx: m.entries[0].data });
      return;
    default:
      return;
  }
}
