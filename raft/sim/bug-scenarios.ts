import { AssertionError } from '../errors';
import type { TestingBugs } from '../config';
import type { MemoryStorage } from '../storage';
import { MessageType, newMessage, type Entry, type Ready } from '../types';
import { Harness } from './harness';

/**
 * Deterministic scenarios, one per deliberately broken variant in TestingBugs, each built on the
 * schedule that bug needs. Each returns a description of the violation it observed, or undefined
 * when Raft behaved. raft/sim/broken.test.ts runs each with and without its bug; the correct code
 * must pass every one. The random simulator catches most of these too, but some need a schedule it
 * reaches rarely (see docs/raft.md).
 */

function bytes(s: string): Uint8Array {
  return new Uint8Array(Buffer.from(s));
}

/** What the Ready loop does once a persist completes (raft/ready-loop.ts, step 4). */
function persist(s: MemoryStorage, rd: Ready): void {
  if (rd.snapshot) s.applySnapshot(rd.snapshot);
  if (rd.entries.length > 0) s.append(rd.entries);
  if (rd.hardState) s.setHardState(rd.hardState);
}

const config = (bugs: TestingBugs): { testingBugs: TestingBugs; preVote: boolean; checkQuorum: boolean } => ({
  testingBugs: bugs,
  preVote: false,
  checkQuorum: false,
});

/**
 * The leader must count only what it has persisted (the self-ack of etcd-io/raft carries the index
 * its storage append reached). Y is proposed between ready() and advance(); once X is durable the
 * leader sends Y before its own fsync, one follower acks Y: Y is durable on one member of three,
 * so it must not commit.
 */
export function proposeBetweenReadyAndAdvance(bugs: TestingBugs): string | undefined {
  const h = new Harness({ voters: [1, 2, 3], config: config(bugs) });
  h.elect(1);
  const leader = h.raw(1);
  leader.propose(bytes('x'));
  const rd1 = leader.ready(); // X handed out for persisting...
  leader.propose(bytes('y')); // ...and Y arrives before advance()
  const y = leader.raft.raftLog.lastIndex();
  persist(h.get(1).storage, rd1);
  leader.advance(rd1); // X durable on the leader, Y not
  const rd2 = leader.ready(); // Y handed out; a leader sends before its fsync
  for (const m of [...rd1.messages, ...rd2.messages]) if (m.to === 2n) h.raw(2).step(m);
  h.processReady(2); // follower 2 persists X and Y, then acks
  while (h.deliverOne()) {
    /* acks to the leader */
  }
  const c = leader.raft.raftLog.committed;
  if (c >= y) return `leader committed ${c} ≥ ${y} while ${y} is durable only on follower 2`;
  return undefined;
}

/**
 * Thesis Figure 3.1 receiver rule 5 / etcd-io/raft TestHandleMsgApp: commit to min(leaderCommit,
 * index of last new entry). Follower 3 holds a stale entry 4@t2 the leader overwrote with 4@t3; a
 * (duplicated, delayed) MsgApp that matches only up to 3 must not commit 4.
 */
export function followerCommitsOnlyWhatMatched(bugs: TestingBugs): string | undefined {
  const h = new Harness({ voters: [1, 2, 3], config: config(bugs), logs: { 1: [1, 1, 3], 2: [1, 1, 3], 3: [1, 1, 2] } });
  const f = h.raw(3);
  const entry3: Entry = { ...h.raw(1).raft.raftLog.slice(3, 4, Number.MAX_SAFE_INTEGER)[0] };
  const m = newMessage(MessageType.MsgApp, 3n, 1n, 3);
  m.index = 2;
  m.logTerm = 1;
  m.entries = [entry3];
  m.commit = 4; // the leader committed 4@t3
  f.step(m);
  const c = f.raft.raftLog.committed;
  if (c > 3) return `follower committed ${c} (term ${f.raft.raftLog.term(c)}) past the last new entry 3 it matched`;
  return undefined;
}

/**
 * etcd-io/raft sendHeartbeat: commit = min(pr.match, committed). Follower 3 has a stale tail
 * (3..4@t2) and has not matched the new leader yet: a heartbeat must not let it commit that tail.
 */
export function heartbeatCommitIsClamped(bugs: TestingBugs): string | undefined {
  const h = new Harness({ voters: [1, 2, 3], config: config(bugs), logs: { 1: [1, 3, 3], 2: [1, 3, 3], 3: [1, 2, 2] } });
  h.dropIf = (m) => m.to === 3n && (m.type === MessageType.MsgApp || m.type === MessageType.MsgSnap);
  h.elect(1);
  try {
    h.tickAll(2); // heartbeats
  } catch (e) {
    // Follower 3 was told to commit past its last index: commitTo asserts (etcd-io/raft panics).
    if (e instanceof AssertionError) return `follower 3 asserted on the heartbeat: ${e.message}`;
    throw e;
  }
  const log1 = h.raw(1).raft.raftLog;
  for (const e of h.get(3).applied) {
    if (log1.termOrUndefined(e.index) !== e.term) return `follower 3 applied ${e.index}@t${e.term}, the leader's log has t${log1.termOrUndefined(e.index)}`;
  }
  return undefined;
}

/**
 * Thesis §6.4 step 3: a ReadIndex is answered only after a heartbeat round confirms leadership. A
 * deposed leader (partitioned; check-quorum off so it does not step down) must not answer a read
 * with an index older than a write the new leader already committed.
 */
export function readIndexNeedsQuorum(bugs: TestingBugs): string | undefined {
  const h = new Harness({ voters: [1, 2, 3], config: config(bugs) });
  h.elect(1);
  h.propose(1, 'a');
  h.isolate(1);
  h.elect(2);
  h.propose(2, 'b');
  const acked = h.raw(2).raft.raftLog.committed;
  h.raw(1).readIndex(bytes('r1'));
  h.stabilize();
  for (const rs of h.get(1).readStates) if (rs.index < acked) return `deposed leader 1 served a read at ${rs.index} < ${acked} committed before it`;
  return undefined;
}

/**
 * Thesis §6.4 step 1: a new leader does not know the commit index until it commits an entry of its
 * term. Member 3 holds 'a' but never heard that it committed; elected, it must hold reads until its
 * own empty entry commits, not answer them with its stale commit index.
 */
export function newLeaderDefersReads(bugs: TestingBugs): string | undefined {
  const h = new Harness({ voters: [1, 2, 3], config: config(bugs) });
  h.elect(1);
  // Member 3 gets 'a' but no commit news (no empty MsgApp bump, no heartbeat).
  h.dropIf = (m) => m.from === 1n && m.to === 3n && (m.type === MessageType.MsgHeartbeat || (m.type === MessageType.MsgApp && m.entries.length === 0));
  h.propose(1, 'a');
  const acked = h.raw(1).raft.raftLog.committed;
  if (h.raw(3).raft.raftLog.committed >= acked) return 'scenario broken: member 3 learned the commit';
  h.isolate(1);
  // 3 campaigns; its empty entry cannot commit yet (its MsgApps are held back).
  h.dropIf = (m) => m.from === 3n && m.type === MessageType.MsgApp;
  h.elect(3);
  h.raw(3).readIndex(bytes('r1'));
  h.stabilize();
  for (const rs of h.get(3).readStates) if (rs.index < acked) return `new leader 3 served a read at ${rs.index} < ${acked} committed before it`;
  return undefined;
}
