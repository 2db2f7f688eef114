import { RaftLog } from './log';
import { ProgressTracker } from './tracker/tracker';
import { ProgressState } from './tracker/progress';
import { ReadOnly } from './read-only';
import { restoreConfState } from './confchange';
import { resolveConfig, type Config, type Logger, type ResolvedConfig, type TestingBugs } from './config';
import { assert } from './errors';
import type { TrackerConfig, ProgressMap } from './tracker/tracker';
import { CampaignType, handleVoteRequest, hup, isCampaignTransfer } from './election';
import { bcastAppend, maybeCommit, maybeSendAppend, onPersisted, restore, sendAppend } from './replication';
import { appendEntry, reduceUncommittedSize, stepLeader } from './step-leader';
import { stepCandidate, stepFollower } from './step-follower';
import { applyConfChange, computeConfChange, onApplied, switchToConfig } from './conf-switch';
import { getStatus, type Status } from './status';
import {
  EMPTY_BYTES,
  EntryType,
  MessageType,
  None,
  StateType,
  confStateEqual,
  isEmptyHardState,
  newMessage,
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

  // Internal to raft/: read and written by the free functions of the modules the algorithm is
  // split into (election.ts, replication.ts, step-leader.ts, …), as etcd-io/raft's functions use
  // the unexported fields of its raft struct. Not part of raft/index.ts's API.
  /** @internal */
  electionElapsed = 0;
  private heartbeatElapsed = 0;
  /** @internal */
  randomizedElectionTimeout = 0;
  /** @internal ReadIndex requests held until the leader commits an entry of its term. */
  pendingReadIndexMessages: Message[] = [];
  /** @internal */
  readonly cfg: ResolvedConfig;
  /** @internal */
  readonly logger: Logger | undefined;
  /** @internal Test-only bug injection (config.ts testingBugs); the simulator's broken tests set it. */
  readonly bugs: TestingBugs;

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
    const cs = switchToConfig(this, cfg, prs);
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

  /**
   * @internal Queues a message; stamps `from` and, except for local-forwarded types, the current
   * term. Every module sends through here.
   */
  send(m: Message): void {
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
    const ok = appendEntry(this, [empty]);
    assert(ok, 'empty entry was dropped');
    this.uncommittedSize = 0;
    this.logger?.info(`${this.id.toString(16)} became leader at term ${this.term}`);
  }

  /** @internal Whether we may campaign: a voter with no snapshot pending. */
  promotable(): boolean {
    const pr = this.trk.progress.get(this.id);
    return pr !== undefined && !pr.isLearner && !this.raftLog.hasNextOrInProgressSnapshot();
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
        hup(this, this.cfg.preVote ? CampaignType.PreElection : CampaignType.Election);
        return;
      case MessageType.MsgVote:
      case MessageType.MsgPreVote:
        handleVoteRequest(this, m);
        return;
      default:
        break;
    }
    switch (this.state) {
      case StateType.Leader:
        stepLeader(this, m);
        return;
      case StateType.Candidate:
      case StateType.PreCandidate:
        stepCandidate(this, m);
        return;
      case StateType.Follower:
        stepFollower(this, m);
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

  abortLeaderTransfer(): void {
    this.leadTransferee = None;
  }

  // ---------------------------------------------------------------- entry points into the modules
  // The algorithm lives in free functions over this instance, as in etcd-io/raft: election.ts,
  // replication.ts (sending, commitment, the follower's append/heartbeat/snapshot handling),
  // step-leader.ts, step-follower.ts (follower and candidate), read-index.ts, conf-switch.ts and
  // status.ts. These methods are the ones RawNode and the tests call.

  /** Sends MsgApp (or MsgSnap) to `to` even if it carries no entries. */
  sendAppend(to: NodeId): void {
    sendAppend(this, to);
  }

  /** Sends the next MsgApp to `to` if flow control allows. Returns whether a message was sent. */
  maybeSendAppend(to: NodeId, sendIfEmpty: boolean): boolean {
    return maybeSendAppend(this, to, sendIfEmpty);
  }

  /** Sends appends to every follower that can take one (new entries or a commit bump). */
  bcastAppend(): void {
    bcastAppend(this);
  }

  /** Advances the commit index to what a quorum holds (thesis §3.6.2). Returns whether it moved. */
  maybeCommit(): boolean {
    return maybeCommit(this);
  }

  /** The caller persisted everything up to the log's stable last index (see replication.ts). */
  onPersisted(): void {
    onPersisted(this);
  }

  /** Appends entries as the leader. Returns false when the uncommitted size cap refuses them. */
  appendEntry(es: Entry[]): boolean {
    return appendEntry(this, es);
  }

  reduceUncommittedSize(sizeBytes: number): void {
    reduceUncommittedSize(this, sizeBytes);
  }

  /** Installs a leader's snapshot (thesis §5.1, InstallSnapshot). Returns whether it was used. */
  restore(s: Snapshot): boolean {
    return restore(this, s);
  }

  computeConfChange(cc: ConfChangeV2): [TrackerConfig, ProgressMap] {
    return computeConfChange(this, cc);
  }

  applyConfChange(cc: ConfChange | ConfChangeV2): ConfState {
    return applyConfChange(this, cc);
  }

  /** Installs a new configuration and reacts to it: step down if removed, commit, catch up. */
  switchToConfig(cfg: TrackerConfig, prs: ProgressMap): ConfState {
    return switchToConfig(this, cfg, prs);
  }

  /** The application applied entries up to `index` (RawNode.advance); see conf-switch.ts. */
  onApplied(index: number): void {
    onApplied(this, index);
  }

  status(): Status {
    return getStatus(this);
  }
}

