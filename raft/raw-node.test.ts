import { describe, expect, it } from 'vitest';
import { RawNode } from './raw-node';
import { MemoryStorage } from './storage';
import { Rng } from './sim/rng';
import { ErrStepLocalMsg } from './errors';
import { MessageType, StateType, emptyConfState, newMessage, type Message, type NodeId, type Ready } from './types';

/** Three bare RawNodes wired by hand, so each test controls exactly when Readys are persisted. */
function cluster(n = 3): { nodes: Map<NodeId, RawNode>; storages: Map<NodeId, MemoryStorage> } {
  const rng = new Rng(3);
  const voters = Array.from({ length: n }, (_, i) => BigInt(i + 1));
  const nodes = new Map<NodeId, RawNode>();
  const storages = new Map<NodeId, MemoryStorage>();
  for (const id of voters) {
    const storage = new MemoryStorage();
    storage.applySnapshot({ data: new Uint8Array(), metadata: { index: 1, term: 1, confState: { ...emptyConfState(), voters } } });
    storage.setHardState({ term: 1, vote: 0n, commit: 1 });
    storages.set(id, storage);
    nodes.set(id, new RawNode({ id, storage, applied: 1, random: () => rng.next() }));
  }
  return { nodes, storages };
}

function persist(s: MemoryStorage, rd: Ready): void {
  if (rd.snapshot) s.applySnapshot(rd.snapshot);
  if (rd.entries.length > 0) s.append(rd.entries);
  if (rd.hardState) s.setHardState(rd.hardState);
}

/** Drives every node until quiet, persisting before sending, as the contract says. */
function settle(c: ReturnType<typeof cluster>): void {
  for (let round = 0; round < 100; round++) {
    const out: Message[] = [];
    for (const [id, raw] of c.nodes) {
      while (raw.hasReady()) {
        const rd = raw.ready();
        persist(c.storages.get(id)!, rd);
        out.push(...rd.messages);
        raw.advance(rd);
      }
    }
    if (out.length === 0) return;
    for (const m of out) c.nodes.get(m.to)?.step(m);
  }
  throw new Error('did not settle');
}

describe('the persistence contract', () => {
  it('a vote leaves in the same Ready as the hard state recording it, marked mustSync', () => {
    const c = cluster();
    const r1 = c.nodes.get(1n)!;
    // Campaign without pre-vote semantics: step a MsgVote from 1 into 2 directly.
    const vote = newMessage(MessageType.MsgVote, 2n, 1n, 2);
    vote.index = 1;
    vote.logTerm = 1;
    const r2 = c.nodes.get(2n)!;
    r2.step(vote);
    const rd = r2.ready();
    const resp = rd.messages.find((m) => m.type === MessageType.MsgVoteResp);
    expect(resp?.reject).toBe(false);
    expect(rd.hardState).toEqual({ term: 2, vote: 1n, commit: 1 });
    expect(rd.mustSync).toBe(true);
    r2.advance(rd);
    void r1;
  });

  it('an append acknowledgement leaves in the same Ready as the entries it acknowledges', () => {
    const c = cluster();
    const r1 = c.nodes.get(1n)!;
    r1.campaign();
    settle(c);
    r1.propose(new Uint8Array([1]));
    const rd1 = r1.ready();
    persist(c.storages.get(1n)!, rd1);
    const app = rd1.messages.find((m) => m.type === MessageType.MsgApp && m.to === 2n)!;
    r1.advance(rd1);
    const r2 = c.nodes.get(2n)!;
    r2.step(app);
    const rd2 = r2.ready();
    const ack = rd2.messages.find((m) => m.type === MessageType.MsgAppResp)!;
    expect(ack.reject).toBe(false);
    const last = rd2.entries[rd2.entries.length - 1];
    expect(last.index).toBe(ack.index);
    expect(rd2.mustSync).toBe(true);
    r2.advance(rd2);
  });

  it('the leader counts its own log toward the commit quorum only after advance() (its fsync)', () => {
    const c = cluster();
    const r1 = c.nodes.get(1n)!;
    r1.campaign();
    settle(c);
    const committedBefore = r1.status().commit;
    r1.propose(new Uint8Array([1]));
    const rd = r1.ready();
    expect(rd.entries).toHaveLength(1);
    const idx = rd.entries[0].index;
    // One follower acknowledges before the leader persisted: 1 of 3 durable, not a quorum.
    const app = rd.messages.find((m) => m.type === MessageType.MsgApp && m.to === 2n)!;
    const r2 = c.nodes.get(2n)!;
    r2.step(app);
    const rd2 = r2.ready();
    persist(c.storages.get(2n)!, rd2);
    r2.advance(rd2);
    for (const m of rd2.messages) r1.step(m);
    expect(r1.status().progress?.get(1n)?.match).toBeLessThan(idx);
    expect(r1.status().commit).toBe(committedBefore);
    // The leader's own fsync completes: now 2 of 3.
    persist(c.storages.get(1n)!, rd);
    r1.advance(rd);
    expect(r1.status().progress?.get(1n)?.match).toBe(idx);
    expect(r1.status().commit).toBe(idx);
  });

  it('a single voter commits only after persisting its own entry', () => {
    const c = cluster(1);
    const r = c.nodes.get(1n)!;
    r.campaign();
    settle(c);
    expect(r.status().raftState).toBe(StateType.Leader);
    r.propose(new Uint8Array([9]));
    const rd = r.ready();
    expect(rd.committedEntries).toHaveLength(0);
    const idx = rd.entries[0].index;
    expect(r.status().commit).toBeLessThan(idx);
    persist(c.storages.get(1n)!, rd);
    r.advance(rd);
    expect(r.status().commit).toBe(idx);
    const rd2 = r.ready();
    expect(rd2.committedEntries.map((e) => e.index)).toEqual([idx]);
    r.advance(rd2);
  });

  it('a single voter does not lead before its self-vote is durable', () => {
    const c = cluster(1);
    const r = c.nodes.get(1n)!;
    r.campaign();
    // Pre-vote, then vote: each step needs the previous Ready persisted.
    let rounds = 0;
    while (r.status().raftState !== StateType.Leader) {
      const rd = r.ready();
      if (rd.hardState && rd.hardState.vote === 1n) expect(rd.mustSync).toBe(true);
      expect(r.status().raftState).not.toBe(StateType.Leader);
      persist(c.storages.get(1n)!, rd);
      r.advance(rd);
      rounds++;
      expect(rounds).toBeLessThan(5);
    }
    expect(c.storages.get(1n)!.hardStateNow().vote).toBe(1n);
  });

  it('ready() refuses to run again before advance()', () => {
    const c = cluster(1);
    const r = c.nodes.get(1n)!;
    r.campaign();
    r.ready();
    expect(r.hasReady()).toBe(false);
    expect(() => r.ready()).toThrow(/advanced/);
  });

  it('committed entries per Ready are bounded by maxCommittedSizePerReady', () => {
    const storage = new MemoryStorage();
    const voters = [1n];
    storage.applySnapshot({ data: new Uint8Array(), metadata: { index: 1, term: 1, confState: { ...emptyConfState(), voters } } });
    storage.setHardState({ term: 1, vote: 0n, commit: 1 });
    const rng = new Rng(1);
    const r = new RawNode({ id: 1n, storage, applied: 1, random: () => rng.next(), maxCommittedSizePerReady: 1000 });
    r.campaign();
    const drive = (): Ready[] => {
      const out: Ready[] = [];
      while (r.hasReady()) {
        const rd = r.ready();
        persist(storage, rd);
        out.push(rd);
        r.advance(rd);
      }
      return out;
    };
    drive();
    for (let i = 0; i < 50; i++) r.propose(new Uint8Array(100));
    const readies = drive();
    const sizes = readies.map((rd) => rd.committedEntries.reduce((s, e) => s + e.data.byteLength + 16, 0));
    expect(readies.reduce((n, rd) => n + rd.committedEntries.length, 0)).toBe(50);
    for (const s of sizes) expect(s).toBeLessThanOrEqual(1000);
  });

  it('a proposal made between ready() and advance() counts for the leader only after its own persist', () => {
    const c = cluster();
    const [r1, r2] = [c.nodes.get(1n)!, c.nodes.get(2n)!];
    r1.campaign();
    settle(c);
    expect(r1.raft.state).toBe(StateType.Leader);
    r1.propose(new Uint8Array([1])); // X
    const rd1 = r1.ready();
    r1.propose(new Uint8Array([2])); // Y arrives while rd1 is being persisted
    const y = r1.raft.raftLog.lastIndex();
    persist(c.storages.get(1n)!, rd1);
    r1.advance(rd1);
    expect(r1.raft.trk.progress.get(1n)!.match).toBe(y - 1); // X is durable, Y is not
    const rd2 = r1.ready(); // a leader sends Y before its own fsync
    for (const m of [...rd1.messages, ...rd2.messages]) if (m.to === 2n) r2.step(m);
    const rd = r2.ready();
    persist(c.storages.get(2n)!, rd); // the follower acks only after persisting
    r2.advance(rd);
    for (const m of rd.messages) r1.step(m);
    expect(r1.raft.raftLog.committed).toBe(y - 1); // Y is durable on one member of three
    persist(c.storages.get(1n)!, rd2);
    r1.advance(rd2);
    expect(r1.raft.raftLog.committed).toBe(y); // leader + follower 2: a quorum
  });

  it('refuses local message types from the network and ignores responses from strangers', () => {
    const c = cluster();
    const r = c.nodes.get(1n)!;
    expect(() => r.step(newMessage(MessageType.MsgHup, 1n, 1n, 0))).toThrow(ErrStepLocalMsg);
    expect(() => r.step(newMessage(MessageType.MsgAppResp, 1n, 99n, 5))).not.toThrow();
    expect(r.status().term).toBe(1);
  });
});
