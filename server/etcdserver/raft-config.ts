import type { Logger } from 'pino';
import type { MemoryStorage } from '../../raft';
import type { ServerConfig } from '../embed/config';
import type { Wal } from '../storage/wal/wal';
import type { ServerMetrics } from './metrics';
import type { RaftNodeOptions } from './raft-node';

/** etcd's maxSizePerMsg and maxInflightMsgs (4096 / 8) for the Raft node. */
export const MAX_SIZE_PER_MSG_BYTES = 1024 * 1024;
export const MAX_INFLIGHT_MSGS = 512;
/** etcd's maxUncommittedEntriesSize for the server's Raft node: 1 GiB. */
export const MAX_UNCOMMITTED_ENTRIES_BYTES = 1 << 30;

/** Where the Raft node's log lives and what it has applied. */
export interface RaftLog {
  id: bigint;
  storage: MemoryStorage;
  wal: Wal;
  applied: number;
}

/** How the Raft node reaches back into the member (the Ready loop's callbacks). */
export type RaftHooks = Pick<RaftNodeOptions, 'send' | 'apply' | 'onLeaderChange' | 'onReadStates' | 'installSnapshot' | 'onAdvanced'>;

/**
 * A member's Raft configuration, as etcd's raft.go startNode and restartNode build raft.Config: one
 * tick per heartbeat interval, the election timeout in ticks, HeartbeatTick 1, etcd's message size
 * and in-flight limits, --pre-vote. Kept apart from server.ts so the member's lifecycle does not
 * also carry the constants Raft is tuned with.
 */
export function raftNodeOptions(
  cfg: Pick<ServerConfig, 'heartbeatIntervalMs' | 'electionTimeoutMs' | 'preVote'>,
  raftLog: RaftLog,
  hooks: RaftHooks,
  log: Logger,
  metrics: ServerMetrics,
): RaftNodeOptions {
  const tickMs = cfg.heartbeatIntervalMs;
  return {
    ...raftLog,
    electionTicks: Math.max(1, Math.round(cfg.electionTimeoutMs / tickMs)),
    heartbeatTicks: 1,
    tickMs,
    preVote: cfg.preVote,
    maxSizePerMsgBytes: MAX_SIZE_PER_MSG_BYTES,
    maxInflightMsgs: MAX_INFLIGHT_MSGS,
    maxUncommittedEntriesSizeBytes: MAX_UNCOMMITTED_ENTRIES_BYTES,
    ...hooks,
    // Election timeouts are randomized (thesis §3.4); raft/ takes its randomness from the caller.
    random: Math.random,
    log,
    metrics,
  };
}
