import type { Storage } from './storage';
import type { ReadOnlyOption } from './read-only';
import type { NodeId } from './types';
import { ErrConfigInvalid } from './errors';

/** etcd's defaults (etcd-io/raft Config docs and etcd server's raft.go). */
export const DEFAULT_ELECTION_TICK = 10;
export const DEFAULT_HEARTBEAT_TICK = 1;
export const DEFAULT_MAX_SIZE_PER_MSG_BYTES = 1024 * 1024;
export const DEFAULT_MAX_INFLIGHT_MSGS = 256;
/** 0 = no byte limit on inflight messages. */
export const DEFAULT_MAX_INFLIGHT_BYTES = 0;
/** 0 = no cap on uncommitted entries (the server passes 1 GiB). */
export const DEFAULT_MAX_UNCOMMITTED_ENTRIES_SIZE_BYTES = 0;

export interface Logger {
  info(msg: string): void;
  warn(msg: string): void;
  debug?(msg: string): void;
}

/**
 * Deliberate bugs for proving that the simulator can fail (see raft/sim/broken.test.ts). Never set
 * outside tests: each one breaks safety.
 */
export interface TestingBugs {
  /**
   * Count votes from the wrong term (thesis §3.4: a vote is for one term): vote responses of an
   * earlier term are counted, and the tally is not cleared between a pre-election and the election
   * or between elections, so pre-votes and last term's votes elect a leader.
   */
  countVotesFromWrongTerm?: boolean;
  /** Commit entries of earlier terms by counting replicas (the Figure 8 / thesis Figure 3.7 bug). */
  commitPriorTermByCount?: boolean;
  /** Grant votes without the election restriction (thesis §3.6.1: candidate's log must be up to date). */
  grantVoteWithoutLogCheck?: boolean;
  /**
   * A follower commits past the last new entry it matched: maybeAppend commits
   * min(committed, lastIndex) instead of min(committed, lastNewIndex), so a stale, unverified tail
   * can be committed (etcd-io/raft log.go maybeAppend: `l.commitTo(min(committed, lastnewi))`).
   */
  followerCommitPastLastNew?: boolean;
  /**
   * The leader counts its whole log, unpersisted entries included, toward the quorum once any
   * persist completes (instead of only what is durable: etcd-io/raft's self MsgAppResp carries the
   * index the storage append reached).
   */
  leaderSelfAckUnpersisted?: boolean;
  /**
   * Heartbeats carry the leader's commit index unclamped (etcd-io/raft sendHeartbeat:
   * `commit := min(pr.Match, r.raftLog.committed)`), so a follower commits entries it may not match.
   */
  heartbeatCommitUnclamped?: boolean;
  /** ReadIndex (safe) answered at once, without the heartbeat round that confirms leadership (thesis §6.4 step 3). */
  readIndexWithoutQuorum?: boolean;
  /**
   * A new leader serves ReadIndex before committing an entry of its term, when its commit index may
   * be stale (thesis §6.4 step 1; etcd-io/raft committedEntryInCurrentTerm).
   */
  readIndexBeforeCommitInTerm?: boolean;
}

export interface Config {
  id: NodeId;
  /** Ticks without hearing from a leader before campaigning (randomized in [e, 2e)). Default 10. */
  electionTick?: number;
  /** Ticks between leader heartbeats. Default 1. */
  heartbeatTick?: number;
  storage: Storage;
  /** The last index the application has applied (restart); committed entries before it are not re-emitted. */
  applied?: number;
  maxSizePerMsg?: number;
  /** Bytes of committed entries per Ready; default maxSizePerMsg. */
  maxCommittedSizePerReady?: number;
  maxInflightMsgs?: number;
  maxInflightBytes?: number;
  maxUncommittedEntriesSize?: number;
  checkQuorum?: boolean;
  preVote?: boolean;
  readOnlyOption?: ReadOnlyOption;
  disableProposalForwarding?: boolean;
  /** Seeded source of randomness for election timeouts; raft/ never calls Math.random. */
  random: () => number;
  logger?: Logger;
  testingBugs?: TestingBugs;
}

export interface ResolvedConfig {
  id: NodeId;
  electionTick: number;
  heartbeatTick: number;
  storage: Storage;
  applied: number;
  maxSizePerMsg: number;
  maxCommittedSizePerReady: number;
  maxInflightMsgs: number;
  maxInflightBytes: number;
  maxUncommittedEntriesSize: number;
  checkQuorum: boolean;
  preVote: boolean;
  readOnlyOption: ReadOnlyOption;
  disableProposalForwarding: boolean;
  random: () => number;
  logger: Logger | undefined;
  testingBugs: TestingBugs;
}

export function resolveConfig(c: Config): ResolvedConfig {
  const r: ResolvedConfig = {
    id: c.id,
    electionTick: c.electionTick ?? DEFAULT_ELECTION_TICK,
    heartbeatTick: c.heartbeatTick ?? DEFAULT_HEARTBEAT_TICK,
    storage: c.storage,
    applied: c.applied ?? 0,
    maxSizePerMsg: c.maxSizePerMsg ?? DEFAULT_MAX_SIZE_PER_MSG_BYTES,
    maxCommittedSizePerReady: 0,
    maxInflightMsgs: c.maxInflightMsgs ?? DEFAULT_MAX_INFLIGHT_MSGS,
    maxInflightBytes: c.maxInflightBytes ?? DEFAULT_MAX_INFLIGHT_BYTES,
    maxUncommittedEntriesSize: c.maxUncommittedEntriesSize ?? DEFAULT_MAX_UNCOMMITTED_ENTRIES_SIZE_BYTES,
    checkQuorum: c.checkQuorum ?? true,
    preVote: c.preVote ?? true,
    readOnlyOption: c.readOnlyOption ?? 'safe',
    disableProposalForwarding: c.disableProposalForwarding ?? false,
    random: c.random,
    logger: c.logger,
    testingBugs: c.testingBugs ?? {},
  };
  r.maxCommittedSizePerReady = c.maxCommittedSizePerReady || r.maxSizePerMsg;
  if (r.id === 0n) throw new ErrConfigInvalid('cannot use none as id');
  if (r.heartbeatTick <= 0) throw new ErrConfigInvalid('heartbeat tick must be greater than 0');
  if (r.electionTick <= r.heartbeatTick) throw new ErrConfigInvalid('election tick must be greater than heartbeat tick');
  if (r.maxInflightMsgs <= 0) throw new ErrConfigInvalid('max inflight messages must be greater than 0');
  if (r.maxInflightBytes !== 0 && r.maxInflightBytes < r.maxSizePerMsg) {
    throw new ErrConfigInvalid('max inflight bytes must be >= max message size');
  }
  if (r.readOnlyOption === 'lease-based' && !r.checkQuorum) {
    // Thesis §6.4.1: a lease is only sound if a leader steps down when it loses its quorum.
    throw new ErrConfigInvalid('checkQuorum must be enabled when readOnlyOption is lease-based');
  }
  if (typeof r.random !== 'function') throw new ErrConfigInvalid('random is required');
  return r;
}
