import { describe, expect, it } from 'vitest';
import { RawNode } from './raw-node';
import { MemoryStorage } from './storage';
import { ReadyLoop, type Done, type PersistBatch, type ReadyLoopFailure } from './ready-loop';
import { Rng } from './sim/rng';
import { MessageType, StateType, emptyConfState, newMessage, type Entry, type Message } from './types';

/** A loop whose persists and applies complete only when the test says so. */
function harness(opts: { failPersist?: boolean; throwApply?: boolean; failInstall?: boolean } = {}) {
  const rng = new Rng(7);
  const voters = [1n, 2n, 3n];
  const storage = new MemoryStorage();
  storage.applySnapshot({ data: new Uint8Array(), metadata: { index: 1, term: 1, confState: { ...emptyConfState(), voters } } });
  storage.setHardState({ term: 1, vote: 0n, commit: 1 });
  const node = new RawNode({ id: 1n, storage, applied: 1, preVote: false, random: () => rng.next() });
  const sent: Message[] = [];
  const persists: { batch: PersistBatch; done: Done }[] = [];
  const applies: { entries: Entry[]; done: Done }[] = [];
  const failures: { cause: ReadyLoopFailure; err: unknown }[] = [];
  const loop = new ReadyLoop(node, storage, {
    persist: (batch, done) => {
      if (opts.failPersist) done(new Error('disk full'));
      else persists.push({ batch, done });
    },
    installSnapshot: (_snap, done) => done(opts.failInstall ? new Error('backend broken') : undefined),
    apply: (entries, done) => {
      if (opts.throwApply) throw new Error('apply threw');
      applies.push({ entries, done });
    },
    send: (ms) => sent.push(...ms),
    onSoftState: () => undefined,
    onReadStates: () => undefined,
    fatal: (cause, err) => failures.push({ cause, err }),
  });
  const finish = (q: { done: Done }[]): void => q.shift()!.done();
  return { node, storage, loop, sent, persists, applies, failures, finish };
}

function voteResp(from: bigint, term: number): Message {
  const m = newMessage(MessageType.MsgVoteResp, 1n, from, term);
  m.reject = false;
  return m;
}

describe('ReadyLoop ordering (etcd raftNode)', () => {
  it('a candidate sends its votes only after its persist; a leader sends before; storage and advance wait for the persist', () => {
    const h = harness();
    h.node.campaign();
    expect(h.loop.poll()).toBe(true);
    expect(h.node.raft.state).toBe(StateType.Candidate);
    expect(h.sent).toEqual([]); // the vote requests promise a durable term and vote
    expect(h.storage.hardStateNow().term).toBe(1);
    h.finish(h.persists);
    expect(h.sent.map((m) => m.type)).toEqual([MessageType.MsgVote, MessageType.MsgVote]);
    expect(h.storage.hardStateNow()).toMatchObject({ term: 2, vote: 1n });
    expect(h.loop.busy).toBe(false);

    h.node.step(voteResp(2n, 2));
    expect(h.node.raft.state).toBe(StateType.Leader);
    h.sent.length = 0;
    expect(h.loop.poll()).toBe(true);
    // 1. The leader replicates its empty entry before its own fsync.
    expect(h.sent.filter((m) => m.type === MessageType.MsgApp)).toHaveLength(2);
    expect(h.storage.lastIndex()).toBe(1);
    // A proposal between ready() and advance() waits for the next Ready.
    h.node.propose(new Uint8Array([9]));
    expect(h.loop.canPoll()).toBe(false);
    expect(h.loop.poll()).toBe(false);
    h.finish(h.persists);
    expect(h.storage.lastIndex()).toBe(2); // 5. storage after the persist
    expect(h.loop.busy).toBe(false);
    expect(h.node.raft.trk.progress.get(1n)!.match).toBe(2); // counted itself after advance()

    // 3. Committed entries are applied while the persist of the same Ready is in flight; advance waits for both.
    const ack = newMessage(MessageType.MsgAppResp, 1n, 2n, 2);
    ack.index = 2;
    h.node.step(ack);
    expect(h.loop.poll()).toBe(true);
    expect(h.persists).toHaveLength(1);
    expect(h.applies).toHaveLength(1);
    expect(h.applies[0].entries.map((e) => e.index)).toEqual([2]);
    h.finish(h.applies);
    expect(h.loop.busy).toBe(true);
    h.finish(h.persists);
    expect(h.loop.busy).toBe(false);
    expect(h.node.raft.raftLog.applied).toBe(2);
    expect(h.failures).toEqual([]);
  });

  it('stop() voids completions still in flight: a crash loses the unfinished batch', () => {
    const h = harness();
    h.node.campaign();
    h.loop.poll();
    h.loop.stop();
    h.finish(h.persists);
    expect(h.storage.hardStateNow().term).toBe(1);
    expect(h.sent).toEqual([]);
    expect(h.loop.canPoll()).toBe(false);
  });
});

describe('ReadyLoop failures name their cause (server/etcdserver/fatal.ts)', () => {
  it('a failed persist is a WAL failure', () => {
    const h = harness({ failPersist: true });
    h.node.campaign();
    h.loop.poll();
    expect(h.failures.map((f) => f.cause)).toEqual(['wal write failed']);
    expect(h.sent).toEqual([]);
    expect(h.loop.isStopped).toBe(true);
  });

  it('a throwing apply is an apply failure', () => {
    const h = harness({ throwApply: true });
    h.node.campaign();
    h.loop.poll();
    h.finish(h.persists);
    h.node.step(voteResp(2n, 2));
    h.loop.poll();
    h.finish(h.persists);
    const ack = newMessage(MessageType.MsgAppResp, 1n, 2n, 2);
    ack.index = 2;
    h.node.step(ack);
    h.loop.poll();
    expect(h.failures.map((f) => f.cause)).toEqual(['apply failed']);
  });

  it('a failed snapshot install is a snapshot install failure, and nothing of that Ready is persisted', () => {
    const h = harness({ failInstall: true });
    const m = newMessage(MessageType.MsgSnap, 1n, 2n, 2);
    m.snapshot = { data: new Uint8Array(), metadata: { index: 10, term: 2, confState: { ...emptyConfState(), voters: [1n, 2n, 3n] } } };
    h.node.step(m);
    h.loop.poll();
    expect(h.failures.map((f) => f.cause)).toEqual(['snapshot install failed']);
    expect(h.persists).toEqual([]);
    expect(h.storage.snapshot().metadata.index).toBe(1);
  });
});
