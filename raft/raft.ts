import { RaftLog } from './log';
import { ProgressTracker } from './tracker/tracker';
import { ProgressState, type Progress } from './tracker/progress';
import { ReadOnly, MAX_PENDING_READ_INDEX } from './read-only';
import { Changer, confChangeToV2, decodeConfChange, enterJoint, leaveJoint, restoreConfState } from './confchange';
import { VoteResult, majorityVoteResult } from './quorum';
import { resolveConfig, type Config, type Logger, type ResolvedConfig, type TestingBugs } from './config';
import { ErrCompacted, ErrProposalDropped, ErrSnapshotTemporarilyUnavailable, ErrUnavailable, assert } from './errors';
import type { TrackerConfig, ProgressMap } from './tracker/tracker';
import {
  EMPTY_BYTES,
  EntryType,
  MessageType,
  None,
  StateType,
  confStateEqual,
  isEmptyHardState,
  newMessage,
  payloadSizeBytes,
  voteRespMsgType,
  type ConfChange,
  type ConfChangeV2,
  type ConfState,
  type Entry,
  type HardState,
  type Message,
  type NodeId,
  type ReadState,
  type Snapshot,
  type SoftState,
} from './types';

/** Context of a MsgVote sent on a leadership transfer: voters must not ignore it for stickiness. */
export const CAMPAIGN_TRANSFER_CTX: Uint8Array = new Uint8Array(Buffer.from('CampaignTransfer'));

/** Bound on ReadIndex requests a new leader holds until it commits an entry of its term. */
export const MAX_PENDING_READ_INDEX_MESSAGES = 4096;

enum CampaignType {
  PreElection,
  Election,
  Transfer,
}

function isCampaignTransfer(ctx: Uint8Array | undefined): boolean {
  if (!ctx || ctx.byteLength !== CAMPAIGN_TRANSFER_CTX.byteLength) return false;
  for (let i = 0; i < ctx.byteLength; i++) if (ctx[i] !== CAMPAIGN_TRANSFER_CTX[i]) return false;
  return true;
}

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

/**
 * The Raft state machine (thesis chapter 3, etcd-io/raft raft.go): roles, elections, replication,
 * commitment, ReadIndex, leadership transfer and membership. It does no I/O: inputs are step() and
 * tick(); outputs accumulate in `msgs`, the log's unstable part, `readStates`, and `msgsAfterAppend`
 * (responses to ourselves that only count once the caller has persisted our state: our own vote).
 */
export class Raft {
  readonly id: NodeId;
  term = 0;
  vote: NodeId = None;
  readStates: ReadState[] = [];
  readonly raftLog: RaftLog;
  readonly trk: ProgressTracker;
  state: StateType = StateType.Follower;
  /** This node is a learner in the current config. */
  isLearner = false;
  msgs: Message[] = [];
  /** Self-addressed messages to step only after the current Ready is persisted (RawNode.advance). */
  msgsAfterAppend: Message[] = [];
  lead: NodeId = None;
  /** The member leadership is being transferred to, or None. */
  leadTransferee: NodeId = None;
  /** Index of the latest configuration entry proposed in this term; at most one may be unapplied. */
  pendingConfIndex = 0;
  /** Payload bytes of uncommitted entries in the leader's log (only tracked on the leader). */
  uncommittedSize = 0;
  readOnly: ReadOnly;
  /** Set by a proposal; the MsgApp broadcast is deferred to the next Ready so proposals batch. */
  appendPending = false;

  private electionElapsed = 0;
  private heartbeatElapsed = 0;
  private randomizedElectionTimeout = 0;
  private pendingReadIndexMessages: Message[] = [];
  private readonly cfg: ResolvedConfig;
  private readonly logger: Logger | undefined;
  private readonly bugs: TestingBugs;

  constructor(config: Config) {
    this.cfg = resolveConfig(config);
    this.id = this.cfg.id;
    this.logger = this.cfg.logger;
    this.bugs = this.cfg.testingBugs;
    this.raftLog = new RaftLog(this.cfg.storage, this.cfg.maxCommittedSizePerReady);
    this.readOnly = new ReadOnly(this.cfg.readOnlyOption);
    const { hardState, confState } = this.cfg.storage.initialState();
    this.trk = new ProgressTracker(this.cfg.maxInflightMsgs, this.cfg.maxInflightBytes);
    const [cfg, prs] = restoreConfState(this.trk, this.raftLog.lastIndex(), confState);
    const cs = this.switchToConfig(cfg, prs);
    assert(confStateEqual(cs, confState), 'restored conf state differs from storage');
    if (!isEmptyHardState(hardState)) this.loadState(hardState);
    if (this.cfg.applied > 0) this.raftLog.appliedTo(this.cfg.applied);
    this.becomeFollower(this.term, None);
  }

  get electionTimeout(): number {
    return this.cfg.electionTick;
  }

  get checkQuorum(): boolean {
    return this.cfg.checkQuorum;
  }

  softState(): SoftState {
    return { lead: this.lead, raftState: this.state };
  }

  hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.raftLog.committed };
  }

  private loadState(hs: HardState): void {
    assert(
      hs.commit >= this.raftLog.committed && hs.commit <= this.raftLog.lastIndex(),
      'hard state commit out of range [committed, lastIndex]',
    );
    this.raftLog.committed = hs.commit;
    this.term = hs.term;
    this.vote = hs.vote;
  }

  // ---------------------------------------------------------------- sending

  /** Queues a message; stamps `from` and, except for local-forwarded types, the current term. */
  private send(m: Message): void {
    // A forwarded MsgTransferLeader keeps its `from` (the transferee), as in etcd-io/raft.
    if (m.from === None) m.from = this.id;
    const t = m.type;
    if (t === MessageType.MsgVote || t === MessageType.MsgVoteResp || t === MessageType.MsgPreVote || t === MessageType.MsgPreVoteResp) {
      // Vote messages carry the term of the election, which may not be ours (pre-vote).
      assert(m.term !== 0, 'vote message without term');
    } else {
      assert(m.term === 0, 'term set on a non-vote message');
      // Proposals and read requests forwarded to the leader keep term 0 (they are "local" there).
      if (t !== MessageType.MsgProp && t !== MessageType.MsgReadIndex) m.term = this.term;
    }
    if (m.to === this.id) {
      // Only our own (pre-)vote goes to ourselves; it counts once our state is persisted.
      assert(t === MessageType.MsgVoteResp || t === MessageType.MsgPreVoteResp, 'self-addressed message must be a vote response');
      this.msgsAfterAppend.push(m);
      return;
    }
    this.msgs.push(m);
  }

  /** Sends MsgApp (or MsgSnap) to `to` even if it carries no entries. */
  sendAppend(to: NodeId): void {
    this.maybeSendAppend(to, true);
  }

  /**
   * Sends the next MsgApp to `to` if flow control allows (thesis §10.2 pipelining, with etcd's
   * probe/replicate/snapshot states). Returns whether a message was sent.
   */
  maybeSendAppend(to: NodeId, sendIfEmpty: boolean): boolean {
    const pr = this.trk.progress.get(to);
    if (!pr || to === this.id) return false;
    if (pr.state === ProgressState.Snapshot) return false;
    if (pr.state === ProgressState.Probe && pr.msgAppFlowPaused) return false;
    const prevIndex = pr.next - 1;
    const prevTerm = this.raftLog.termOrUndefined(prevIndex);
    if (prevTerm === undefined) {
      // The entries the follower needs were compacted: it needs a snapshot.
      return this.maybeSendSnapshot(to, pr);
    }
    let ents: Entry[] = [];
    if (pr.state !== ProgressState.Replicate || !pr.inflights.full()) {
      try {
        ents = this.raftLog.entries(pr.next, this.cfg.maxSizePerMsg);
      } catch (e) {
        if (e instanceof ErrCompacted || e instanceof ErrUnavailable) return this.maybeSendSnapshot(to, pr);
        throw e;
      }
    }
    const commit = this.raftLog.committed;
    if (ents.length === 0 && !sendIfEmpty && !pr.canBumpCommit(commit)) return false;
    const m = newMessage(MessageType.MsgApp, to, this.id, 0);
    m.index = prevIndex;
    m.logTerm = prevTerm;
    m.entries = ents;
    m.commit = commit;
    let bytes = 0;
    if (ents.length > 0) bytes = payloadSizeBytes(ents);
    pr.sentEntries(ents.length, bytes, commit);
    this.send(m);
    return true;
  }

  private maybeSendSnapshot(to: NodeId, pr: Progress): boolean {
    if (!pr.recentActive) {
      // etcd: don't ship a snapshot to a member we have not heard from; it may be down.
      return false;
    }
    let snapshot: Snapshot;
    try {
      snapshot = this.raftLog.snapshot();
    } catch (e) {
      if (e instanceof ErrSnapshotTemporarilyUnavailable) return false;
      throw e;
    }
    assert(snapshot.metadata.index !== 0, 'need non-empty snapshot');
    pr.becomeSnapshot(snapshot.metadata.index);
    const m = newMessage(MessageType.MsgSnap, to, this.id, 0);
    m.snapshot = snapshot;
    this.send(m);
    return true;
  }

  private sendHeartbeat(to: NodeId, ctx: Uint8Array | undefined): void {
    const pr = this.trk.progress.get(to);
    assert(pr, 'heartbeat to unknown member');
    // Never tell a follower to commit beyond what it is known to hold: its log may not match ours yet.
    // BROKEN ON PURPOSE when heartbeatCommitUnclamped (tests only).
    const commit = this.bugs.heartbeatCommitUnclamped ? this.raftLog.committed : Math.min(pr.match, this.raftLog.committed);
    const m = newMessage(MessageType.MsgHeartbeat, to, this.id, 0);
    m.commit = commit;
    m.context = ctx;
    if (commit > pr.sentCommit) pr.sentCommit = commit;
    this.send(m);
  }

  /** Sends appends to every follower that can take one (new entries or a commit bump). */
  bcastAppend(): void {
    this.appendPending = false;
    const ids = this.trk.ids();
    for (let i = 0; i < ids.length; i++) {
      if (ids[i] === this.id) continue;
      // Pipeline (thesis §10.2.2): as many size-limited MsgApps as the inflight window allows.
      for (let k = 0; k < this.cfg.maxInflightMsgs && this.maybeSendAppend(ids[i], false); k++) {
        /* bounded by the inflight window */
      }
    }
  }

  private bcastHeartbeat(): void {
    const ctx = this.readOnly.lastPendingRequestCtx();
    this.bcastHeartbeatWithCtx(ctx);
  }

  private bcastHeartbeatWithCtx(ctx: Uint8Array | undefined): void {
    for (const id of this.trk.ids()) {
      if (id !== this.id) this.sendHeartbeat(id, ctx);
    }
  }

  // ---------------------------------------------------------------- commitment

  /** Advances the commit index to what a quorum holds (thesis §3.6.2). Returns whether it moved. */
  maybeCommit(): boolean {
    const mci = this.trk.committed();
    if (this.bugs.commitPriorTermByCount) {
      // BROKEN ON PURPOSE (tests only): commits by replica count regardless of the entry's term.
      if (mci > this.raftLog.committed && mci <= this.raftLog.lastIndex()) {
        this.raftLog.commitTo(mci);
        return true;
      }
      return false;
    }
    return this.raftLog.maybeCommit(mci, this.term);
  }

  /**
   * The caller persisted everything up to the log's stable last index. The leader now counts its
   * own log in the commit quorum (the persistence contract: a write is acknowledged only once a
   * quorum has it durably, including the leader — etcd's self MsgAppResp after storage append).
   */
  onPersisted(): void {
    if (this.state !== StateType.Leader) return;
    const pr = this.trk.progress.get(this.id);
    if (!pr) return; // removed from the config; still leading until it steps down
    // BROKEN ON PURPOSE when leaderSelfAckUnpersisted (tests only): entries proposed since the
    // persisted Ready was taken are still in flight or not even handed out.
    const durable = this.bugs.leaderSelfAckUnpersisted ? this.raftLog.lastIndex() : this.raftLog.stableLastIndex();
    if (pr.maybeUpdate(durable) && this.maybeCommit()) {
      this.releasePendingReadIndexMessages();
      this.bcastAppend();
    }
  }

  // ---------------------------------------------------------------- role changes

  private reset(term: number): void {
    if (this.term !== term) {
      this.term = term;
      this.vote = None;
    }
    this.lead = None;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.resetRandomizedElectionTimeout();
    this.abortLeaderTransfer();
    this.trk.resetVotes();
    const lastIndex = this.raftLog.lastIndex();
    this.trk.visit((id, pr) => {
      pr.match = 0;
      pr.next = lastIndex + 1;
      pr.sentCommit = 0;
      pr.state = ProgressState.Probe;
      pr.pendingSnapshot = 0;
      pr.msgAppFlowPaused = false;
      pr.recentActive = false;
      pr.inflights.reset();
      // Our own log counts only as far as it is durable.
      if (id === this.id) pr.match = this.raftLog.stableLastIndex();
    });
    this.pendingConfIndex = 0;
    this.uncommittedSize = 0;
    this.appendPending = false;
    this.readOnly = new ReadOnly(this.cfg.readOnlyOption);
    this.pendingReadIndexMessages = [];
  }

  private resetRandomizedElectionTimeout(): void {
    // Thesis §3.4: a timeout drawn from [T, 2T) makes split votes rare.
    const r = this.cfg.random();
    assert(r >= 0 && r < 1, 'random() must return a number in [0, 1)');
    this.randomizedElectionTimeout = this.cfg.electionTick + Math.floor(r * this.cfg.electionTick);
  }

  becomeFollower(term: number, lead: NodeId): void {
    this.reset(term);
    this.lead = lead;
    this.state = StateType.Follower;
  }

  becomeCandidate(): void {
    assert(this.state !== StateType.Leader, 'invalid transition [leader -> candidate]');
    const carried = this.bugs.countVotesFromWrongTerm ? this.trk.votes : undefined;
    this.reset(this.term + 1);
    // BROKEN ON PURPOSE (tests only): keep the previous (pre-)election's votes.
    if (carried) this.trk.votes = carried;
    this.vote = this.id;
    this.state = StateType.Candidate;
  }

  becomePreCandidate(): void {
    assert(this.state !== StateType.Leader, 'invalid transition [leader -> pre-candidate]');
    // Pre-vote (thesis §9.6) changes neither term nor vote: a partitioned member that keeps
    // pre-campaigning cannot inflate the term and disrupt the cluster when it returns.
    this.trk.resetVotes();
    this.lead = None;
    this.state = StateType.PreCandidate;
  }

  becomeLeader(): void {
    assert(this.state !== StateType.Follower, 'invalid transition [follower -> leader]');
    this.reset(this.term);
    this.lead = this.id;
    this.state = StateType.Leader;
    const self = this.trk.progress.get(this.id);
    if (self) {
      self.becomeReplicate();
      self.recentActive = true;
      // becomeReplicate moved next; our own match stays the durable last index.
      self.match = this.raftLog.stableLastIndex();
      self.next = this.raftLog.lastIndex() + 1;
    }
    // Conservatively, any configuration entry in the uncommitted log may be pending.
    this.pendingConfIndex = this.raftLog.lastIndex();
    // Thesis §6.4 / §3.6.2: an entry of the new term commits the log before it and lets ReadIndex
    // serve reads. It does not count against the uncommitted size cap.
    const empty: Entry = { term: 0, index: 0, type: EntryType.Normal, data: EMPTY_BYTES };
    const ok = this.appendEntry([empty]);
    assert(ok, 'empty entry was dropped');
    this.uncommittedSize = 0;
    this.logger?.info(`${this.id.toString(16)} became leader at term ${this.term}`);
  }

  private promotable(): boolean {
    const pr = this.trk.progress.get(this.id);
    return pr !== undefined && !pr.isLearner && !this.raftLog.hasNextOrInProgressSnapshot();
  }

  private hup(t: CampaignType): void {
    if (this.state === StateType.Leader) return;
    if (!this.promotable()) {
      this.logger?.warn(`${this.id.toString(16)} is unpromotable and can not campaign`);
      return;
    }
    if (this.hasUnappliedConfChanges()) {
      // A configuration change we have not applied could change who may vote (etcd-io/raft).
      this.logger?.warn(`${this.id.toString(16)} cannot campaign: pending configuration changes to apply`);
      return;
    }
    this.campaign(t);
  }

  private hasUnappliedConfChanges(): boolean {
    if (this.raftLog.applied >= this.raftLog.committed) return false;
    const lo = this.raftLog.applied + 1;
    const hi = this.raftLog.committed + 1;
    const pageSizeBytes = this.cfg.maxSizePerMsg;
    for (let i = lo; i < hi; ) {
      let ents: Entry[];
      try {
        ents = this.raftLog.slice(i, hi, pageSizeBytes);
      } catch (e) {
        if (e instanceof ErrCompacted) return false;
        throw e;
      }
      for (const e of ents) if (e.type !== EntryType.Normal) return true;
      i += ents.length;
    }
    return false;
  }

  private campaign(t: CampaignType): void {
    let term: number;
    let voteMsg: MessageType;
    if (t === CampaignType.PreElection) {
      this.becomePreCandidate();
      voteMsg = MessageType.MsgPreVote;
      // Pre-vote asks "would you vote for me at term+1?" without incrementing our term.
      term = this.term + 1;
    } else {
      this.becomeCandidate();
      voteMsg = MessageType.MsgVote;
      term = this.term;
    }
    const lastIndex = this.raftLog.lastIndex();
    const lastTerm = this.raftLog.lastTerm();
    for (const id of this.trk.voterIds()) {
      if (id === this.id) {
        // Our own vote is a message to ourselves, stepped after the Ready that persists it.
        const m = newMessage(voteRespMsgType(voteMsg), id, this.id, term);
        this.send(m);
        continue;
      }
      const m = newMessage(voteMsg, id, this.id, term);
      m.index = lastIndex;
      m.logTerm = lastTerm;
      if (t === CampaignType.Transfer) m.context = CAMPAIGN_TRANSFER_CTX;
      this.send(m);
    }
  }

  private poll(id: NodeId, granted: boolean): VoteResult {
    this.trk.recordVote(id, granted);
    return this.trk.tallyVotes().result;
  }

  // ---------------------------------------------------------------- tick

  tick(): void {
    if (this.state === StateType.Leader) this.tickHeartbeat();
    else this.tickElection();
  }

  private tickElection(): void {
    this.electionElapsed++;
    if (this.promotable() && this.electionElapsed >= this.randomizedElectionTimeout) {
      this.electionElapsed = 0;
      this.step(this.localMessage(MessageType.MsgHup));
    }
  }

  private tickHeartbeat(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    if (this.electionElapsed >= this.cfg.electionTick) {
      this.electionElapsed = 0;
      if (this.cfg.checkQuorum) this.step(this.localMessage(MessageType.MsgCheckQuorum));
      // A transfer that did not finish within an election timeout is abandoned (thesis §3.10).
      if (this.state === StateType.Leader && this.leadTransferee !== None) this.abortLeaderTransfer();
    }
    if (this.state !== StateType.Leader) return;
    if (this.heartbeatElapsed >= this.cfg.heartbeatTick) {
      this.heartbeatElapsed = 0;
      this.step(this.localMessage(MessageType.MsgBeat));
    }
  }

  private localMessage(type: MessageType): Message {
    return newMessage(type, None, this.id, 0);
  }

  // ---------------------------------------------------------------- step

  step(m: Message): void {
    if (m.term === 0) {
      // local message
    } else if (m.term > this.term) {
      if (m.type === MessageType.MsgVote || m.type === MessageType.MsgPreVote) {
        const force = isCampaignTransfer(m.context);
        const inLease = this.cfg.checkQuorum && this.lead !== None && this.electionElapsed < this.cfg.electionTick;
        if (!force && inLease) {
          // Leader stickiness (thesis §4.2.3): we heard from a live leader within the minimum
          // election timeout, so this candidate is disruptive. Ignore it, term and all.
          return;
        }
      }
      if (m.type === MessageType.MsgPreVote) {
        // Never change our term in response to a pre-vote.
      } else if (m.type === MessageType.MsgPreVoteResp && !m.reject) {
        // A granted pre-vote carries the future term; we bump it when the pre-election is won.
      } else if (m.type === MessageType.MsgApp || m.type === MessageType.MsgHeartbeat || m.type === MessageType.MsgSnap) {
        this.becomeFollower(m.term, m.from);
      } else {
        this.becomeFollower(m.term, None);
      }
    } else if (m.term < this.term) {
      const staleVoteBug =
        this.bugs.countVotesFromWrongTerm && m.type === MessageType.MsgVoteResp && this.state === StateType.Candidate;
      if (!staleVoteBug) {
        this.stepStale(m);
        return;
      }
      // BROKEN ON PURPOSE (tests only): fall through and count a vote from an earlier term.
    }

    switch (m.type) {
      case MessageType.MsgHup:
        this.hup(this.cfg.preVote ? CampaignType.PreElection : CampaignType.Election);
        return;
      case MessageType.MsgVote:
      case MessageType.MsgPreVote:
        this.handleVoteRequest(m);
        return;
      default:
        break;
    }
    switch (this.state) {
      case StateType.Leader:
        this.stepLeader(m);
        return;
      case StateType.Candidate:
      case StateType.PreCandidate:
        this.stepCandidate(m);
        return;
      case StateType.Follower:
        this.stepFollower(m);
        return;
    }
  }

  /** A message from an earlier term. */
  private stepStale(m: Message): void {
    if ((this.cfg.checkQuorum || this.cfg.preVote) && (m.type === MessageType.MsgHeartbeat || m.type === MessageType.MsgApp)) {
      // A deposed leader that cannot see the higher term (its higher-term votes were ignored for
      // stickiness, or pre-vote never raised terms) learns it from this response and steps down.
      this.send(newMessage(MessageType.MsgAppResp, m.from, this.id, 0));
    } else if (m.type === MessageType.MsgPreVote) {
      // Reject explicitly so the pre-candidate does not wait (etcd-io/raft #8501).
      const r = newMessage(MessageType.MsgPreVoteResp, m.from, this.id, this.term);
      r.reject = true;
      this.send(r);
    }
  }

  private handleVoteRequest(m: Message): void {
    // We can vote if we already voted for this candidate (a duplicate), or have voted for no one
    // and know no leader in this term, or this is a pre-vote for a future term.
    const canVote =
      this.vote === m.from ||
      (this.vote === None && this.lead === None) ||
      (m.type === MessageType.MsgPreVote && m.term > this.term);
    const upToDate = this.bugs.grantVoteWithoutLogCheck || this.raftLog.isUpToDate(m.index, m.logTerm);
    if (canVote && upToDate) {
      // For a pre-vote the response carries the future term so the pre-candidate counts it; for a
      // vote it is our (now equal) term. The vote is in the hard state of the Ready carrying this
      // message, so it is durable before it leaves (persistence contract).
      const r = newMessage(voteRespMsgType(m.type), m.from, this.id, m.term);
      this.send(r);
      if (m.type === MessageType.MsgVote) {
        this.electionElapsed = 0;
        this.vote = m.from;
      }
    } else {
      const r = newMessage(voteRespMsgType(m.type), m.from, this.id, this.term);
      r.reject = true;
      this.send(r);
    }
  }

  private stepLeader(m: Message): void {
    switch (m.type) {
      case MessageType.MsgBeat:
        this.bcastHeartbeat();
        return;
      case MessageType.MsgCheckQuorum:
        // Check-quorum (thesis §6.2): a leader that has not heard from a quorum within an
        // election timeout steps down, so clients can find the real leader.
        if (!this.trk.quorumActive()) {
          this.logger?.warn(`${this.id.toString(16)} stepped down to follower since quorum is not active`);
          this.becomeFollower(this.term, None);
        }
        this.trk.visit((id, pr) => {
          if (id !== this.id) pr.recentActive = false;
        });
        return;
      case MessageType.MsgProp:
        this.handleProposal(m);
        return;
      case MessageType.MsgReadIndex:
        this.handleReadIndexAsLeader(m);
        return;
      default:
        break;
    }
    const pr = this.trk.progress.get(m.from);
    if (!pr) return;
    switch (m.type) {
      case MessageType.MsgAppResp:
        this.handleAppendResponse(m, pr);
        return;
      case MessageType.MsgHeartbeatResp:
        this.handleHeartbeatResponse(m, pr);
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
        this.handleTransferLeader(m, pr);
        return;
      default:
        return;
    }
  }

  private handleProposal(m: Message): void {
    assert(m.entries.length > 0, 'stepped empty MsgProp');
    if (!this.trk.progress.has(this.id)) {
      // We were removed from the configuration while leader: refuse new work.
      throw new ErrProposalDropped('leader was removed from the configuration');
    }
    if (this.leadTransferee !== None) {
      // Thesis §3.10: stop accepting proposals while transferring, so the target can catch up.
      throw new ErrProposalDropped('leadership transfer in progress');
    }
    for (let i = 0; i < m.entries.length; i++) {
      const e = m.entries[i];
      if (e.type === EntryType.Normal) continue;
      const refused = this.refuseConfChange(e);
      if (refused !== undefined) {
        this.logger?.info(`${this.id.toString(16)} ignoring conf change: ${refused}`);
        m.entries[i] = { term: 0, index: 0, type: EntryType.Normal, data: EMPTY_BYTES };
      } else {
        this.pendingConfIndex = this.raftLog.lastIndex() + i + 1;
      }
    }
    if (!this.appendEntry(m.entries)) throw new ErrProposalDropped('uncommitted entries size limit exceeded');
    // Defer the broadcast to the next Ready: every proposal until then rides in one MsgApp.
    this.appendPending = true;
  }

  /** Why a configuration change cannot be proposed now, or undefined if it can. */
  private refuseConfChange(e: Entry): string | undefined {
    let cc: ConfChangeV2;
    try {
      cc = confChangeToV2(decodeConfChange(e.type, e.data));
    } catch {
      return 'undecodable configuration change';
    }
    const alreadyPending = this.pendingConfIndex > this.raftLog.applied;
    const alreadyJoint = this.trk.isJoint();
    const wantsLeaveJoint = leaveJoint(cc);
    if (alreadyPending) return `possible unapplied conf change at index ${this.pendingConfIndex} (applied to ${this.raftLog.applied})`;
    if (alreadyJoint && !wantsLeaveJoint) return 'must transition out of joint config first';
    if (!alreadyJoint && wantsLeaveJoint) return 'not in joint state; refusing empty conf change';
    // The config the change will apply to is the current one (nothing else is pending), so a
    // dry run tells whether applying it would be valid; refuse it now rather than fail later.
    try {
      this.computeConfChange(cc);
    } catch (err) {
      return err instanceof Error ? err.message : 'invalid conf change';
    }
    return undefined;
  }

  /** Appends entries as the leader. Returns false when the uncommitted size cap refuses them. */
  appendEntry(es: Entry[]): boolean {
    let li = this.raftLog.lastIndex();
    for (let i = 0; i < es.length; i++) {
      es[i].term = this.term;
      es[i].index = ++li;
    }
    if (!this.increaseUncommittedSize(es)) return false;
    this.raftLog.append(es);
    return true;
  }

  /**
   * The cap on uncommitted log size (thesis §10.2.3 / etcd MaxUncommittedEntriesSize): beyond it,
   * proposals are refused rather than buffered without bound. One proposal always fits into an
   * empty budget so oversized entries cannot wedge the leader.
   */
  private increaseUncommittedSize(es: readonly Entry[]): boolean {
    const s = payloadSizeBytes(es);
    const max = this.cfg.maxUncommittedEntriesSize;
    if (max > 0 && this.uncommittedSize > 0 && s > 0 && this.uncommittedSize + s > max) return false;
    this.uncommittedSize += s;
    return true;
  }

  reduceUncommittedSize(sizeBytes: number): void {
    if (this.state !== StateType.Leader) return;
    // Entries from earlier terms were never counted; clamp at zero.
    this.uncommittedSize = sizeBytes >= this.uncommittedSize ? 0 : this.uncommittedSize - sizeBytes;
  }

  private handleAppendResponse(m: Message, pr: Progress): void {
    pr.recentActive = true;
    if (m.reject) {
      // Fast backtracking (thesis §5.3 end): the follower's hint is (index, term) of its last
      // entry at or below our probe index with term ≤ our probe's term. Skip to the last index of
      // ours with term ≤ that term; everything between cannot match.
      let nextProbeIdx = m.rejectHint;
      if (m.logTerm > 0) nextProbeIdx = this.raftLog.findConflictByTerm(m.rejectHint, m.logTerm)[0];
      if (pr.maybeDecrTo(m.index, nextProbeIdx)) {
        if (pr.state === ProgressState.Replicate) pr.becomeProbe();
        this.sendAppend(m.from);
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
        if (pr.match + 1 >= this.raftLog.firstIndex()) {
          pr.becomeProbe();
          pr.becomeReplicate();
        }
        break;
      case ProgressState.Replicate:
        pr.inflights.freeLE(m.index);
        break;
    }
    if (this.maybeCommit()) {
      this.releasePendingReadIndexMessages();
      this.bcastAppend();
    } else if (oldPaused && pr.state === ProgressState.Probe) {
      this.sendAppend(m.from);
    }
    // Keep the pipeline full: send as many MsgApps as flow control allows (this also sends an
    // empty MsgApp when only the commit index can advance on the follower).
    for (let i = 0; i < this.cfg.maxInflightMsgs && this.maybeSendAppend(m.from, false); i++) {
      /* bounded by the inflight window */
    }
    if (m.from === this.leadTransferee && pr.match === this.raftLog.lastIndex()) {
      // The transferee caught up: tell it to campaign now (thesis §3.10).
      this.sendTimeoutNow(m.from);
    }
  }

  private handleHeartbeatResponse(m: Message, pr: Progress): void {
    pr.recentActive = true;
    pr.msgAppFlowPaused = false;
    if (pr.match < this.raftLog.lastIndex() || pr.state === ProgressState.Probe) this.sendAppend(m.from);
    if (this.readOnly.option !== 'safe' || !m.context || m.context.byteLength === 0) return;
    const acks = this.readOnly.recvAck(m.from, m.context);
    if (!acks) return;
    const votes = new Map<NodeId, boolean>();
    for (const id of acks) votes.set(id, true);
    const inc = majorityVoteResult(this.trk.config.incoming, votes);
    const out = majorityVoteResult(this.trk.config.outgoing, votes);
    if (inc !== VoteResult.Won || out !== VoteResult.Won) return;
    for (const rs of this.readOnly.advance(m.context)) this.respondToReadIndex(rs.req, rs.index);
  }

  private handleTransferLeader(m: Message, pr: Progress): void {
    if (pr.isLearner) return; // a learner cannot lead
    const transferee = m.from;
    const last = this.leadTransferee;
    if (last !== None) {
      if (last === transferee) return; // already transferring there
      this.abortLeaderTransfer();
    }
    if (transferee === this.id) return; // already leader
    // The transfer must finish within an election timeout or it is aborted (tickHeartbeat).
    this.electionElapsed = 0;
    this.leadTransferee = transferee;
    if (pr.match === this.raftLog.lastIndex()) this.sendTimeoutNow(transferee);
    else this.sendAppend(transferee);
  }

  private sendTimeoutNow(to: NodeId): void {
    this.send(newMessage(MessageType.MsgTimeoutNow, to, this.id, 0));
  }

  abortLeaderTransfer(): void {
    this.leadTransferee = None;
  }

  // ---------------------------------------------------------------- ReadIndex

  private committedEntryInCurrentTerm(): boolean {
    // BROKEN ON PURPOSE when readIndexBeforeCommitInTerm (tests only).
    if (this.bugs.readIndexBeforeCommitInTerm) return true;
    return this.raftLog.termOrUndefined(this.raftLog.committed) === this.term;
  }

  private handleReadIndexAsLeader(m: Message): void {
    if (this.trk.isSingleton()) {
      // A single voter is its own quorum, but still only once it committed in its term.
      if (!this.committedEntryInCurrentTerm()) {
        this.deferReadIndex(m);
        return;
      }
      this.respondToReadIndex(m, this.raftLog.committed);
      return;
    }
    if (!this.committedEntryInCurrentTerm()) {
      // Thesis §6.4 step 1: a new leader does not know the commit index until it commits an entry
      // of its term; reads wait until then.
      this.deferReadIndex(m);
      return;
    }
    this.sendReadIndexResponse(m);
  }

  private deferReadIndex(m: Message): void {
    if (this.pendingReadIndexMessages.length >= MAX_PENDING_READ_INDEX_MESSAGES) {
      if (m.from === this.id || m.from === None) throw new ErrProposalDropped('too many pending read index requests');
      return;
    }
    this.pendingReadIndexMessages.push(m);
  }

  private sendReadIndexResponse(m: Message): void {
    if (this.cfg.readOnlyOption === 'safe') {
      if (this.readOnly.size >= MAX_PENDING_READ_INDEX) {
        if (m.from === this.id || m.from === None) throw new ErrProposalDropped('too many pending read index requests');
        return;
      }
      // Thesis §6.4 steps 2-3: record the commit index, then confirm leadership with a heartbeat
      // round that carries the request's context.
      if (this.bugs.readIndexWithoutQuorum) {
        // BROKEN ON PURPOSE (tests only): no heartbeat round, so a deposed leader answers.
        this.respondToReadIndex(m, this.raftLog.committed);
        return;
      }
      this.readOnly.addRequest(this.raftLog.committed, m);
      const acks = this.readOnly.recvAck(this.id, m.entries[0].data);
      assert(acks, 'read request vanished');
      if (this.trk.isSingleton()) {
        for (const rs of this.readOnly.advance(m.entries[0].data)) this.respondToReadIndex(rs.req, rs.index);
        return;
      }
      this.bcastHeartbeatWithCtx(m.entries[0].data);
      return;
    }
    // Lease-based (thesis §6.4.1): trust check-quorum and bounded clock drift instead of a round.
    this.respondToReadIndex(m, this.raftLog.committed);
  }

  private releasePendingReadIndexMessages(): void {
    if (this.pendingReadIndexMessages.length === 0) return;
    if (!this.committedEntryInCurrentTerm()) return;
    const msgs = this.pendingReadIndexMessages;
    this.pendingReadIndexMessages = [];
    for (const m of msgs) {
      if (this.trk.isSingleton()) this.respondToReadIndex(m, this.raftLog.committed);
      else this.sendReadIndexResponse(m);
    }
  }

  private respondToReadIndex(req: Message, readIndex: number): void {
    if (req.from === None || req.from === this.id) {
      this.readStates.push({ index: readIndex, requestCtx: req.entries[0].data });
      return;
    }
    const r = newMessage(MessageType.MsgReadIndexResp, req.from, this.id, 0);
    r.index = readIndex;
    r.entries = req.entries;
    this.send(r);
  }

  // ---------------------------------------------------------------- candidate & follower

  private stepCandidate(m: Message): void {
    const myVoteRespType = this.state === StateType.PreCandidate ? MessageType.MsgPreVoteResp : MessageType.MsgVoteResp;
    switch (m.type) {
      case MessageType.MsgProp:
        throw new ErrProposalDropped('no leader');
      case MessageType.MsgReadIndex:
        if (m.from === this.id || m.from === None) throw new ErrProposalDropped('no leader');
        return;
      case MessageType.MsgApp:
        this.becomeFollower(m.term, m.from);
        this.handleAppendEntries(m);
        return;
      case MessageType.MsgHeartbeat:
        this.becomeFollower(m.term, m.from);
        this.handleHeartbeat(m);
        return;
      case MessageType.MsgSnap:
        this.becomeFollower(m.term, m.from);
        this.handleSnapshot(m);
        return;
      case MessageType.MsgTimeoutNow:
        return;
      default:
        break;
    }
    if (m.type !== myVoteRespType) return;
    // A granted pre-vote must be for the election we are running (term + 1); an older pre-vote
    // round's grant would otherwise count.
    if (m.type === MessageType.MsgPreVoteResp && !m.reject && m.term !== this.term + 1) return;
    const res = this.poll(m.from, !m.reject);
    if (res === VoteResult.Won) {
      if (this.state === StateType.PreCandidate) {
        this.campaign(CampaignType.Election);
      } else {
        this.becomeLeader();
        this.bcastAppend();
      }
    } else if (res === VoteResult.Lost) {
      // A rejection with a higher term already made us a follower in step(); here the term is ours.
      this.becomeFollower(this.term, None);
    }
  }

  private stepFollower(m: Message): void {
    switch (m.type) {
      case MessageType.MsgProp:
        if (this.lead === None) throw new ErrProposalDropped('no leader');
        if (this.cfg.disableProposalForwarding) throw new ErrProposalDropped('proposal forwarding disabled');
        m.to = this.lead;
        this.send(m);
        return;
      case MessageType.MsgApp:
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleAppendEntries(m);
        return;
      case MessageType.MsgHeartbeat:
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleHeartbeat(m);
        return;
      case MessageType.MsgSnap:
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleSnapshot(m);
        return;
      case MessageType.MsgTransferLeader:
        if (this.lead === None) return;
        m.to = this.lead;
        m.term = 0;
        this.send(m);
        return;
      case MessageType.MsgTimeoutNow:
        // Leadership transfer: campaign at once, skipping pre-vote, with the transfer context so
        // voters set stickiness aside (thesis §3.10).
        this.hup(CampaignType.Transfer);
        return;
      case MessageType.MsgReadIndex:
        if (this.lead === None) {
          if (m.from === this.id || m.from === None) throw new ErrProposalDropped('no leader');
          return;
        }
        m.to = this.lead;
        this.send(m);
        return;
      case MessageType.MsgReadIndexResp:
        if (m.entries.length !== 1) return;
        this.readStates.push({ index: m.index, requestCtx: m.entries[0].data });
        return;
      default:
        return;
    }
  }

  private handleAppendEntries(m: Message): void {
    if (m.index < this.raftLog.committed) {
      // Everything up to our commit index matches the leader's log already.
      const r = newMessage(MessageType.MsgAppResp, m.from, this.id, 0);
      r.index = this.raftLog.committed;
      this.send(r);
      return;
    }
    const lastNew = this.raftLog.maybeAppend(m.index, m.logTerm, m.commit, m.entries, this.bugs.followerCommitPastLastNew === true);
    if (lastNew !== undefined) {
      // The acknowledgement leaves in the same Ready as the entries, i.e. after they are durable.
      const r = newMessage(MessageType.MsgAppResp, m.from, this.id, 0);
      r.index = lastNew;
      this.send(r);
      return;
    }
    // Reject with a hint (thesis §5.3): our last entry at or below m.index whose term is ≤ the
    // leader's term there. The leader can skip every index in between.
    const hintIndex = Math.min(m.index, this.raftLog.lastIndex());
    const [idx, term] = this.raftLog.findConflictByTerm(hintIndex, m.logTerm);
    const r = newMessage(MessageType.MsgAppResp, m.from, this.id, 0);
    r.index = m.index;
    r.reject = true;
    r.rejectHint = idx;
    r.logTerm = term;
    this.send(r);
  }

  private handleHeartbeat(m: Message): void {
    // The leader sends min(our match, its commit), so this never commits beyond what matches. A
    // commit beyond our last index means our log lost entries we acknowledged (or the leader is
    // broken): commitTo asserts, as etcd-io/raft panics, and the server fail-stops.
    this.raftLog.commitTo(m.commit);
    const r = newMessage(MessageType.MsgHeartbeatResp, m.from, this.id, 0);
    r.context = m.context;
    this.send(r);
  }

  private handleSnapshot(m: Message): void {
    const s = m.snapshot;
    assert(s, 'MsgSnap without snapshot');
    const r = newMessage(MessageType.MsgAppResp, m.from, this.id, 0);
    r.index = this.restore(s) ? this.raftLog.lastIndex() : this.raftLog.committed;
    this.send(r);
  }

  /** Installs a leader's snapshot (thesis §5.1, InstallSnapshot). Returns whether it was used. */
  restore(s: Snapshot): boolean {
    if (s.metadata.index <= this.raftLog.committed) return false;
    if (this.state !== StateType.Follower) {
      // Defense in depth (etcd): only followers install snapshots.
      this.becomeFollower(this.term + 1, None);
      return false;
    }
    if (this.raftLog.matchTerm(s.metadata.index, s.metadata.term)) {
      // We already have the snapshot's last entry: fast-forward the commit index instead.
      this.raftLog.commitTo(s.metadata.index);
      return false;
    }
    // Unlike etcd we accept a snapshot whose ConfState does not list us: a member added after the
    // leader's latest snapshot was taken learns its own addition from the entries that follow.
    // Without a progress for ourselves we are not promotable, so this cannot elect us.
    this.raftLog.restore(s);
    const [cfg, prs] = restoreConfState(this.trk, this.raftLog.lastIndex(), s.metadata.confState);
    const cs = this.switchToConfig(cfg, prs);
    assert(confStateEqual(cs, s.metadata.confState), 'snapshot conf state not restored');
    return true;
  }

  // ---------------------------------------------------------------- membership

  computeConfChange(cc: ConfChangeV2): [TrackerConfig, ProgressMap] {
    const changer = new Changer(this.trk, this.raftLog.lastIndex());
    if (leaveJoint(cc)) return changer.leaveJoint();
    const [autoLeave, joint] = enterJoint(cc);
    if (joint) return changer.enterJoint(autoLeave, cc.changes);
    return changer.simple(cc.changes);
  }

  applyConfChange(cc: ConfChange | ConfChangeV2): ConfState {
    const [cfg, prs] = this.computeConfChange(confChangeToV2(cc));
    return this.switchToConfig(cfg, prs);
  }

  /** Installs a new configuration and reacts to it: step down if removed, commit, catch up. */
  switchToConfig(cfg: TrackerConfig, prs: ProgressMap): ConfState {
    this.trk.install(cfg, prs);
    const cs = this.trk.confState();
    const pr = prs.get(this.id);
    this.isLearner = pr !== undefined && pr.isLearner;
    if ((pr === undefined || this.isLearner) && this.state === StateType.Leader) {
      // Removed or demoted while leading (possible once the joint config is left): step down so
      // the remaining voters elect a leader among themselves (etcd's StepDownOnRemoval).
      this.becomeFollower(this.term, None);
      return cs;
    }
    if (this.state !== StateType.Leader && this.lead !== None && !this.trk.isVoter(this.lead)) this.onLeaderRemoved();
    if (this.state !== StateType.Leader || cs.voters.length === 0) return cs;
    // The quorum may have shrunk: maybe more entries are now committed.
    if (this.maybeCommit()) {
      this.releasePendingReadIndexMessages();
      this.bcastAppend();
    } else {
      // New members need their first probe.
      this.trk.visit((id) => {
        if (id !== this.id) this.maybeSendAppend(id, false);
      });
    }
    if (this.leadTransferee !== None && !this.trk.isVoter(this.leadTransferee)) this.abortLeaderTransfer();
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
  private onLeaderRemoved(): void {
    this.lead = None;
    const voters = this.trk.confState().voters;
    const first = voters.reduce<NodeId | undefined>((min, id) => (min === undefined || id < min ? id : min), undefined);
    if (first === this.id && this.promotable()) this.electionElapsed = Math.max(this.electionElapsed, this.randomizedElectionTimeout - 1);
  }

  /**
   * The application applied entries up to `index` (RawNode.advance). A leader in an auto-leave
   * joint config proposes leaving it once the entering change is applied.
   */
  onApplied(index: number): void {
    if (this.state !== StateType.Leader) return;
    if (this.trk.config.autoLeave && index >= this.pendingConfIndex) {
      // An empty ConfChangeV2 leaves the joint config (thesis §4.3: C_old,new then C_new).
      const e: Entry = { term: 0, index: 0, type: EntryType.ConfChangeV2, data: EMPTY_BYTES };
      if (this.leadTransferee !== None) return; // retried on a later apply
      const m = newMessage(MessageType.MsgProp, None, this.id, 0);
      m.entries = [e];
      try {
        this.step(m);
      } catch (err) {
        if (!(err instanceof ErrProposalDropped)) throw err;
        return;
      }
      this.pendingConfIndex = this.raftLog.lastIndex();
    }
  }

  status(): Status {
    const s: Status = {
      id: this.id,
      term: this.term,
      vote: this.vote,
      commit: this.raftLog.committed,
      applied: this.raftLog.applied,
      lead: this.lead,
      raftState: this.state,
      leadTransferee: this.leadTransferee,
      config: this.trk.confState(),
    };
    if (this.state === StateType.Leader) {
      const progress = new Map<NodeId, ProgressStatus>();
      this.trk.visit((id, pr) => {
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
}

