/** The Raft consensus core: pure, deterministic, no I/O. See docs/raft.md. */
export * from './types';
export * from './errors';
export * from './config';
export { MemoryStorage, limitSize, type Storage } from './storage';
export { RaftLog, NO_LIMIT } from './log';
export { Unstable } from './log-unstable';
export { Inflights } from './inflights';
export { Progress, ProgressState } from './tracker/progress';
export { ProgressTracker, type TrackerConfig, type ProgressMap } from './tracker/tracker';
export { VoteResult, majorityCommittedIndex, majorityVoteResult, jointCommittedIndex, jointVoteResult } from './quorum';
export { ReadOnly, MAX_PENDING_READ_INDEX, type ReadOnlyOption, type ReadIndexStatus } from './read-only';
export {
  Changer,
  restoreConfState,
  confChangeToV2,
  encodeConfChange,
  decodeConfChange,
  enterJoint,
  leaveJoint,
} from './confchange';
export { Raft } from './raft';
export { CAMPAIGN_TRANSFER_CTX } from './election';
export { MAX_PENDING_READ_INDEX_MESSAGES } from './read-index';
export { type Status, type ProgressStatus } from './status';
export { RawNode } from './raw-node';
export { ReadyLoop, type ReadyLoopIO, type ReadyLoopFailure, type PersistBatch, type Done } from './ready-loop';
