import { describe, expect, it } from 'vitest';
import { Harness } from './sim/harness';
import {
  ConfChangeTransition,
  ConfChangeType,
  EntryType,
  MessageType,
  StateType,
  type Message,
} from './types';
import { ErrProposalDropped } from './errors';
import { ProgressState } from './tracker/progress';
import type { TestingBugs } from './config';
import {
  followerCommitsOnlyWhatMatched,
  heartbeatCommitIsClamped,
  newLeaderDefersReads,
  proposeBetweenReadyAndAdvance,
  readIndexNeedsQuorum,
} from './sim/bug-scenarios';

const enc = (s: string): Uint8Array => new Uint8Array(Buffer.from(s));

describe('leader election (thesis §3.4)', () => {
  it('a candidate with votes from a majority becomes the only leader of its term', () => {
    const h = new Harness({ voters: [1, 2, 3] });
    h.campaign(1);
    expect(h.state(1)).toBe(StateType.Leader);
    expect(h.leaders()).toEqual([1n]);
    for (const id of [2, 3]) {
      expect(h.state(id)).toBe(StateType.Follower);
      expect(h.raw(id).raft.lead).toBe(1n);
      expect(h.term(id)).toBe(h.term(1));
    }
  });

  it('a randomized election timeout elects exactly one leader without any campaign call', () => {
    const h = new Harness({ voters: [1, 2, 3, 4, 5], seed: 7 });
    h.tickAll(40);
    expect(h.leaders()).toHaveLength(1);
  });

  it('a candidate cannot win without a majority (1 of 3 reachable)', () => {
    const h = new Harness({ voters: [1, 2, 3], config: { preVote: false } });
    h.isolate(1);
    h.campaign(1);
    expect(h.state(1)).toBe(StateType.Candidate);
    h.tick(1, 30);
    h.stabilize();
    expect(h.leaders()).toEqual([]);
  });

  it('the election restriction: a member with a less up-to-date log cannot win (thesis §3.6.1)', () => {
    // Members 1 and 2 have an entry of term 2 that 3 lacks; 3 must lose even though it campaigns first.
    const h = new Harness({ voters: [1, 2, 3], logs: { 1: [2], 2: [2], 3: [] }, terms: { 3: 2 }, config: { preVote: false } });
    h.campaign(3);
    expect(h.state(3)).not.toBe(StateType.Leader);
    h.elect(1);
    expect(h.leaders()).toEqual([1n]);
  });

  it('a single voter becomes leader when asked, through the same Ready/advance path', () => {
    const h = new Harness({ voters: [1] });
    const raw = h.raw(1);
    raw.campaign();
    // Not a leader before its vote is persisted: the self-vote counts only in advance().
    expect(raw.raft.state).not.toBe(StateType.Leader);
    h.stabilize();
    expect(raw.raft.state).toBe(StateType.Leader);
    h.propose(1, 'solo');
    expect(h.appliedData(1)).toEqual(['solo']);
  });

  it('leader stickiness: a follower that heard from the leader recently ignores a disruptive vote', () => {
    const h = new Harness({ voters: [1, 2, 3], config: { preVote: false, checkQuorum: true } });
    h.campaign(1);
    const term = h.term(1);
    // 3 is cut off from the leader, times out, and campaigns at a higher term.
    h.cutLink(1, 3);
    h.tick(3, 25);
    h.stabilize();
    expect(h.term(3)).toBeGreaterThan(term);
    // 1 and 2 are in lease: neither the leader nor the follower adopts the higher term.
    expect(h.term(1)).toBe(term);
    expect(h.term(2)).toBe(term);
    expect(h.state(1)).toBe(StateType.Leader);
  });
});

describe('log replication (thesis §3.5)', () => {
  it('Figure 3.6/paper Figure 7: a new leader brings every follower log into agreement with its own', () => {
    // Logs (a)-(f) of the paper's Figure 7, offset by the bootstrap snapshot at index 1.
    const leader = [1, 1, 4, 4, 5, 5, 6, 6, 6];
    const logs: Record<number, number[]> = {
      1: leader,
      2: [1, 1, 4, 4, 5, 5, 6, 6], // (a) missing one entry
      3: [1, 1, 4], // (b) missing many
      4: [1, 1, 4, 4, 5, 5, 6, 6, 6, 6], // (c) one extra uncommitted entry
      5: [1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7], // (d) extra entries of term 7
      6: [1, 1, 4, 4, 4, 4], // (e) extra term-4 entries
      7: [1, 1, 2, 2, 2, 3, 3, 3, 3, 3], // (f) entries of terms 2-3 never committed
    };
    const h = new Harness({ voters: [1, 2, 3, 4, 5, 6, 7], logs, terms: { 1: 7, 2: 7, 3: 7, 4: 7, 5: 7, 6: 7, 7: 7 }, config: { preVote: false } });
    h.elect(1);
    const term = h.term(1);
    const want = [...leader, term];
    for (let id = 1; id <= 7; id++) expect(h.logTerms(id), `member ${id}`).toEqual(want);
    // Log matching: equal logs, committed through the new leader's entry.
    for (let id = 1; id <= 7; id++) expect(h.raw(id).raft.raftLog.committed).toBe(want.length + 1);
  });

  it('fast backtracking skips a whole conflicting term per round trip (thesis §5.3)', () => {
    // Follower 2 has 30 entries of term 3 that the leader (term 2 entries) never had.
    const h = new Harness({
      voters: [1, 2, 3],
      logs: { 1: Array(5).fill(2), 2: Array(30).fill(3), 3: Array(5).fill(2) },
      terms: { 1: 4, 2: 4, 3: 4 },
      config: { preVote: false },
    });
    h.isolate(2);
    h.elect(1);
    h.heal();
    const before = h.sent.length;
    h.tickAll(1);
    const rejects = h.sent.slice(before).filter((m) => m.type === MessageType.MsgAppResp && m.reject && m.from === 2n);
    expect(rejects.length).toBeLessThanOrEqual(2);
    expect(h.logTerms(2)).toEqual(h.logTerms(1));
  });

  it('pipelines appends and batches proposals made between two Readys into one MsgApp', () => {
    const h = new Harness({ voters: [1, 2, 3] });
    h.campaign(1);
    const raw = h.raw(1);
    for (let i = 0; i < 100; i++) raw.propose(enc(`p${i}`));
    const rd = raw.ready();
    const apps = rd.messages.filter((m) => m.type === MessageType.MsgApp);
    expect(apps).toHaveLength(2);
    for (const m of apps) expect(m.entries).toHaveLength(100);
    raw.advance(rd);
  });

  it('flow control: at most maxInflightMsgs appends are outstanding to a follower', () => {
    const h = new Harness({ voters: [1, 2, 3], config: { maxInflightMsgs: 2, maxSizePerMsg: 1 } });
    h.campaign(1);
    h.cutLink(1, 2);
    h.cutLink(1, 3);
    const raw = h.raw(1);
    for (let i = 0; i < 10; i++) raw.propose(enc(`p${i}`));
    const rd = raw.ready();
    const to2 = rd.messages.filter((m) => m.type === MessageType.MsgApp && m.to === 2n);
    expect(to2).toHaveLength(2);
    expect(raw.status().progress?.get(2n)?.inflight).toBe(2);
    raw.advance(rd);
  });

  it('a proposal beyond the uncommitted size cap is refused, not buffered', () => {
    const h = new Harness({ voters: [1, 2, 3], config: { maxUncommittedEntriesSize: 100 } });
    h.campaign(1);
    h.isolate(1);
    const raw = h.raw(1);
    raw.propose(new Uint8Array(60));
    raw.propose(new Uint8Array(30));
    expect(() => raw.propose(new Uint8Array(30))).toThrow(ErrProposalDropped);
    // Once they commit, the budget is free again.
    h.heal();
    h.stabilize();
    h.tickAll(2);
    expect(() => raw.propose(new Uint8Array(30))).not.toThrow();
  });

  it('proposals on a follower are forwarded to the leader, or refused when forwarding is disabled', () => {
    const h = new Harness({ voters: [1, 2, 3] });
    h.campaign(1);
    h.propose(2, 'via-follower');
    expect(h.appliedData(1)).toEqual(['via-follower']);
    const h2 = new Harness({ voters: [1, 2, 3], config: { disableProposalForwarding: true } });
    h2.campaign(1);
    expect(() => h2.raw(2).propose(enc('x'))).toThrow(ErrProposalDropped);
  });

  it('a proposal with no leader is refused with ErrProposalDropped', () => {
    const h = new Harness({ voters: [1, 2, 3] });
    expect(() => h.raw(1).propose(enc('x'))).toThrow(ErrProposalDropped);
  });
});

describe('commitment (thesis §3.6.2, Figure 3.7 — the paper\'s Figure 8)', () => {
  /**
   * Replays Figure 8. Returns the harness after step (c), where S1 (term 4) has replicated its
   * term-2 entry to a majority but not yet its own term-4 entry.
   */
  function figure8(commitPriorTermByCount: boolean): Harness {
    const h = new Harness({
      voters: [1, 2, 3, 4, 5],
      config: { preVote: false, checkQuorum: false, maxSizePerMsg: 1, testingBugs: { commitPriorTermByCount } },
    });
    // (a) S1 leads term 2 and replicates "x" (term 2) to S2 only.
    h.elect(1);
    for (const id of [3, 4, 5]) h.cutLink(1, id);
    h.propose(1, 'x');
    const xIndex = h.raw(1).raft.raftLog.lastIndex();
    expect(h.logTerms(2)).toEqual(h.logTerms(1));
    // (b) S1 crashes; S5 wins term 3 with S3 and S4 and appends an entry at x's index, unreplicated.
    h.crash(1);
    h.heal();
    h.dropType(MessageType.MsgApp);
    h.elect(5);
    expect(h.raw(5).raft.raftLog.term(xIndex)).toBe(h.term(5));
    // (c) S5 crashes; S1 restarts and wins term 4 (S2, S3, S4). It sends one entry per message; the
    //     ones of term 4 are lost, so "x" (term 2) reaches S3 — a majority — and nothing newer does.
    h.crash(5);
    h.allowType(MessageType.MsgApp);
    h.restart(1);
    // Drop every MsgApp that would land a term-4 entry (probes that will be rejected get through).
    h.dropIf = (m) =>
      m.type === MessageType.MsgApp && m.entries.some((e) => e.term >= 4) && h.raw(m.to).raft.raftLog.matchTerm(m.index, m.logTerm);
    h.elect(1);
    h.tickAll(3);
    expect(h.raw(3).raft.raftLog.term(xIndex)).toBe(2);
    return h;
  }

  it('a leader does not commit an entry of an earlier term by counting replicas', () => {
    const h = figure8(false);
    const xIndex = h.raw(1).raft.raftLog.lastIndex() - 1;
    expect(h.raw(1).raft.raftLog.committed).toBeLessThan(xIndex);
    // (d) S1 crashes; S5 restarts, wins (its last term 3 beats 2) and overwrites "x": harmless,
    //     since "x" was never committed or applied anywhere.
    h.crash(1);
    h.dropIf = undefined;
    h.restart(5);
    h.elect(5);
    h.tickAll(3);
    for (const id of [2, 3, 4, 5]) {
      expect(h.raw(id).raft.raftLog.term(xIndex)).toBe(3);
      expect(h.appliedData(id)).not.toContain('x');
    }
  });

  it('with the commitPriorTermByCount bug, Figure 8 loses a committed entry', () => {
    const h = figure8(true);
    const xIndex = h.raw(1).raft.raftLog.lastIndex() - 1;
    expect(h.appliedData(1)).toContain('x'); // "committed" and applied by S1...
    h.crash(1);
    h.dropIf = undefined;
    h.restart(5);
    for (let i = 0; i < 5 && h.state(5) !== StateType.Leader; i++) {
      h.raw(5).campaign();
      h.run(50); // the corrupted cluster never goes quiet: bound it
    }
    // ...yet S5 wins with S2, S3, S4 and its log has its own term-3 entry where "x" was committed:
    // Leader Completeness is violated and "x" is lost.
    expect(h.state(5)).toBe(StateType.Leader);
    expect(h.raw(5).raft.raftLog.term(xIndex)).toBe(3);
  });

  it('the entry of the current term commits the earlier ones with it', () => {
    const h = figure8(false);
    h.dropIf = undefined;
    h.tickAll(3);
    expect(h.appliedData(1)).toContain('x');
    expect(h.appliedData(3)).toContain('x');
  });
});

describe('pre-vote and check-quorum (thesis §9.6, §6.2)', () => {
  it('pre-vote: a partitioned member does not raise its term and does not disrupt the leader when it returns', () => {
    const h = new Harness({ voters: [1, 2, 3], config: { preVote: true } });
    h.campaign(1);
    const term = h.term(1);
    h.isolate(3);
    h.tick(3, 100);
    h.stabilize();
    expect(h.term(3)).toBe(term);
    expect(h.state(3)).toBe(StateType.PreCandidate);
    h.heal();
    h.tickAll(3);
    expect(h.leaders()).toEqual([1n]);
    expect(h.term(1)).toBe(term);
    expect(h.state(3)).toBe(StateType.Follower);
  });

  it('without pre-vote the same partition raises the term and deposes the leader (the problem pre-vote solves)', () => {
    const h = new Harness({ voters: [1, 2, 3], config: { preVote: false, checkQuorum: false } });
    h.campaign(1);
    const term = h.term(1);
    h.isolate(3);
    h.tick(3, 100);
    h.stabilize();
    expect(h.term(3)).toBeGreaterThan(term);
    h.heal();
    h.tickAll(25);
    expect(h.term(1)).toBeGreaterThan(term);
  });

  it('check-quorum: a leader that cannot reach a majority within an election timeout steps down', () => {
    const h = new Harness({ voters: [1, 2, 3], config: { checkQuorum: true } });
    h.campaign(1);
    h.isolate(1);
    h.tick(1, 9);
    h.stabilize();
    expect(h.state(1)).toBe(StateType.Leader);
    h.tick(1, 12);
    h.stabilize();
    expect(h.state(1)).toBe(StateType.Follower);
  });
});

describe('linearizable reads by ReadIndex (thesis §6.4)', () => {
  it('a read is confirmed by a heartbeat round and returns the commit index', () => {
    const h = new Harness({ voters: [1, 2, 3] });
    h.campaign(1);
    h.propose(1, 'a');
    const commit = h.raw(1).raft.raftLog.committed;
    h.raw(1).readIndex(enc('r1'));
    // Nothing before the heartbeat round completes.
    const rd = h.processReady(1);
    expect(rd?.readStates).toEqual([]);
    h.stabilize();
    expect(h.get(1).readStates.map((r) => [r.index, Buffer.from(r.requestCtx).toString()])).toEqual([[commit, 'r1']]);
  });

  it('a follower gets its read index through the leader', () => {
    const h = new Harness({ voters: [1, 2, 3] });
    h.campaign(1);
    h.propose(1, 'a');
    h.raw(2).readIndex(enc('f1'));
    h.stabilize();
    expect(h.get(2).readStates).toHaveLength(1);
    expect(h.get(2).readStates[0].index).toBe(h.raw(1).raft.raftLog.committed);
  });

  it('a deposed leader cannot serve a stale read', () => {
    const h = new Harness({ voters: [1, 2, 3], config: { checkQuorum: false } });
    h.campaign(1);
    h.isolate(1);
    h.elect(2);
    h.propose(2, 'newer');
    const committed = h.raw(2).raft.raftLog.committed;
    // Old leader 1 still believes it leads; its read round cannot reach a quorum.
    expect(h.state(1)).toBe(StateType.Leader);
    h.raw(1).readIndex(enc('stale?'));
    h.tick(1, 5);
    h.stabilize();
    expect(h.get(1).readStates).toEqual([]);
    // After healing it learns the new term; any read it answers is at least the new commit index.
    h.heal();
    h.tickAll(3);
    expect(h.state(1)).toBe(StateType.Follower);
    h.raw(1).readIndex(enc('after'));
    h.stabilize();
    expect(h.get(1).readStates.every((r) => r.index >= committed)).toBe(true);
  });

  it('a new leader answers no read until it has committed an entry of its term', () => {
    const h = new Harness({ voters: [1, 2, 3], config: { checkQuorum: false } });
    h.campaign(1);
    h.crash(1);
    h.dropType(MessageType.MsgAppResp);
    h.elect(2);
    h.raw(2).readIndex(enc('early'));
    h.tickAll(2);
    expect(h.get(2).readStates).toEqual([]);
    h.allowType(MessageType.MsgAppResp);
    h.tickAll(2);
    expect(h.get(2).readStates).toHaveLength(1);
    const raft = h.raw(2).raft;
    expect(raft.raftLog.term(h.get(2).readStates[0].index)).toBe(raft.term);
  });
});

describe('snapshots and log compaction (thesis chapter 5)', () => {
  it('a follower too far behind receives InstallSnapshot carrying the conf state, then catches up', () => {
    const h = new Harness({ voters: [1, 2, 3] });
    h.campaign(1);
    h.isolate(3);
    for (let i = 0; i < 20; i++) h.propose(1, `v${i}`);
    // The leader's application snapshots and compacts past what 3 has.
    const leader = h.get(1);
    const applied = leader.raw!.raft.raftLog.applied;
    leader.storage.createSnapshot(applied, leader.confState, enc('state'));
    leader.storage.compact(applied);
    h.heal();
    h.tickAll(3);
    const snaps = h.sent.filter((m) => m.type === MessageType.MsgSnap && m.to === 3n);
    expect(snaps).toHaveLength(1);
    expect(snaps[0].snapshot?.metadata.confState.voters).toEqual([1n, 2n, 3n]);
    expect(h.get(3).storage.snapshot().metadata.index).toBe(applied);
    h.propose(1, 'after');
    expect(h.appliedData(3)).toEqual(['after']);
    expect(h.raw(1).status().progress?.get(3n)?.state).toBe(ProgressState.Replicate);
  });
});

describe('membership changes (thesis chapter 4)', () => {
  it('a learner catches up without voting, then is promoted to voter', () => {
    const h = new Harness({ voters: [1, 2, 3], spares: [4] });
    h.campaign(1);
    h.propose(1, 'before');
    h.raw(1).proposeConfChange({ type: ConfChangeType.AddLearnerNode, nodeId: 4n });
    h.stabilize();
    h.tickAll(2);
    expect(h.raw(1).status().config.learners).toEqual([4n]);
    expect(h.appliedData(4)).toEqual(['before']);
    // A learner never campaigns.
    h.tick(4, 50);
    h.stabilize();
    expect(h.state(4)).toBe(StateType.Follower);
    h.raw(1).proposeConfChange({ type: ConfChangeType.AddNode, nodeId: 4n });
    h.stabilize();
    expect(h.raw(1).status().config.voters).toEqual([1n, 2n, 3n, 4n]);
    expect(h.get(4).confState.voters).toEqual([1n, 2n, 3n, 4n]);
    // Now 4 counts in the quorum: with 1 and 4 alone (of 4 voters) nothing commits.
    h.isolate(2);
    h.isolate(3);
    const commit = h.raw(1).raft.raftLog.committed;
    h.propose(1, 'needs-3-of-4');
    expect(h.raw(1).raft.raftLog.committed).toBe(commit);
  });

  it('only one configuration change may be pending at a time', () => {
    const h = new Harness({ voters: [1, 2, 3], spares: [4, 5] });
    h.campaign(1);
    h.isolate(1);
    h.raw(1).proposeConfChange({ type: ConfChangeType.AddLearnerNode, nodeId: 4n });
    h.raw(1).proposeConfChange({ type: ConfChangeType.AddLearnerNode, nodeId: 5n });
    const log = h.raw(1).raft.raftLog;
    const ents = log.slice(log.lastIndex() - 1, log.lastIndex() + 1, Infinity);
    expect(ents.map((e) => e.type)).toEqual([EntryType.ConfChange, EntryType.Normal]);
  });

  it('joint consensus replaces a voter atomically and leaves the joint config automatically', () => {
    const h = new Harness({ voters: [1, 2, 3], spares: [4] });
    h.campaign(1);
    h.raw(1).proposeConfChange({ type: ConfChangeType.AddLearnerNode, nodeId: 4n });
    h.stabilize();
    h.raw(1).proposeConfChange({
      transition: ConfChangeTransition.Auto,
      changes: [
        { type: ConfChangeType.AddNode, nodeId: 4n },
        { type: ConfChangeType.RemoveNode, nodeId: 3n },
      ],
    });
    h.stabilize();
    h.tickAll(2);
    const cs = h.raw(1).status().config;
    expect(cs.voters).toEqual([1n, 2n, 4n]);
    expect(cs.votersOutgoing).toEqual([]);
    expect(h.get(2).confState.voters).toEqual([1n, 2n, 4n]);
  });

  it('removing the leader makes it step down; the others elect a new leader', () => {
    const h = new Harness({ voters: [1, 2, 3] });
    h.campaign(1);
    h.raw(1).proposeConfChange({ type: ConfChangeType.RemoveNode, nodeId: 1n });
    h.stabilize();
    expect(h.state(1)).toBe(StateType.Follower);
    h.tickAll(30);
    const leaders = h.leaders();
    expect(leaders).toHaveLength(1);
    expect(leaders[0]).not.toBe(1n);
  });
});

describe('leadership transfer (thesis §3.10)', () => {
  it('transfers to an up-to-date follower, which wins the next term at once', () => {
    const h = new Harness({ voters: [1, 2, 3] });
    h.campaign(1);
    h.propose(1, 'a');
    const term = h.term(1);
    h.raw(1).transferLeader(3n);
    h.stabilize();
    expect(h.leaders()).toEqual([3n]);
    expect(h.term(3)).toBe(term + 1);
  });

  it('catches a lagging transferee up first and refuses proposals meanwhile', () => {
    const h = new Harness({ voters: [1, 2, 3] });
    h.campaign(1);
    h.isolate(3);
    h.propose(1, 'a');
    h.raw(1).transferLeader(3n);
    expect(() => h.raw(1).propose(enc('during'))).toThrow(ErrProposalDropped);
    h.heal();
    h.tickAll(2);
    expect(h.leaders()).toEqual([3n]);
    expect(h.appliedData(3)).toEqual(['a']);
  });

  it('a transfer that does not complete within an election timeout is aborted', () => {
    const h = new Harness({ voters: [1, 2, 3], config: { checkQuorum: false } });
    h.campaign(1);
    h.isolate(3);
    h.raw(1).transferLeader(3n);
    expect(h.raw(1).raft.leadTransferee).toBe(3n);
    h.tick(1, 11);
    h.stabilize();
    expect(h.raw(1).raft.leadTransferee).toBe(0n);
    expect(() => h.raw(1).propose(enc('ok'))).not.toThrow();
  });

  it('a follower forwards the transfer request to the leader', () => {
    const h = new Harness({ voters: [1, 2, 3] });
    h.campaign(1);
    h.raw(2).transferLeader(2n);
    h.stabilize();
    expect(h.leaders()).toEqual([2n]);
  });
});

describe('messages are plain data', () => {
  it('every message survives a JSON round trip (with bigint as string)', () => {
    const h = new Harness({ voters: [1, 2, 3] });
    h.campaign(1);
    h.propose(1, 'x');
    const replacer = (_: string, v: unknown): unknown => (typeof v === 'bigint' ? `${v}n` : v instanceof Uint8Array ? Array.from(v) : v);
    for (const m of h.sent) {
      const proto = Object.getPrototypeOf(m) as unknown;
      expect(proto).toBe(Object.prototype);
      expect(() => JSON.stringify(m as Message, replacer)).not.toThrow();
    }
  });
});

describe('rules a bug would break on schedules the simulator rarely reaches (raft/sim/bug-scenarios.ts)', () => {
  // Each scenario reports a violation, or undefined; broken.test.ts shows each one catches its bug.
  const cases: [string, (bugs: TestingBugs) => string | undefined][] = [
    ['a follower commits only up to the last new entry it matched (Figure 3.1 rule 5)', followerCommitsOnlyWhatMatched],
    ['the leader counts only entries it has persisted, even when proposals arrive between ready() and advance()', proposeBetweenReadyAndAdvance],
    ["a heartbeat's commit is clamped to the follower's match", heartbeatCommitIsClamped],
    ['a ReadIndex is answered only after a quorum confirms leadership (§6.4 step 3)', readIndexNeedsQuorum],
    ['a new leader holds reads until it commits an entry of its term (§6.4 step 1)', newLeaderDefersReads],
  ];
  it.each(cases)('%s', (_name, scenario) => {
    expect(scenario({})).toBeUndefined();
  });
});
