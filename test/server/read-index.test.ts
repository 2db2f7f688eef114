import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Harness } from '../../raft/sim/harness';
import { MessageType, type Message } from '../../raft/types';
import { READ_INDEX_RETRY_MS, ReadIndexer } from '../../server/etcdserver/read-index';
import { ErrTimeout } from '../../server/etcdserver/errors';

/**
 * The ReadIndexer driven against a real raft cluster (the scenario harness, raft/sim/harness.ts):
 * the member's requestReadIndex is RawNode.readIndex, its ReadStates come out of the member's
 * Ready, and messages are lost by the harness's network. Time is vitest's fake clock, so "before
 * the retry interval" and "well before the timeout" are exact rather than raced.
 */

// etcd's ReqTimeout with the default 1 s election timeout: 5 s + 2 election timeouts.
const TIMEOUT_MS = 7000;

interface Reader {
  indexer: ReadIndexer;
  sends: Uint8Array[];
  retries: number;
  settled(): 'pending' | 'ok' | Error;
  read(): void;
}

/** A ReadIndexer on member `id` of `h`, feeding it the member's ReadStates like the Ready loop. */
function readerOn(h: Harness, id: number): Reader {
  const sends: Uint8Array[] = [];
  let nextCtx = BigInt(id) << 48n;
  let state: 'pending' | 'ok' | Error = 'pending';
  const indexer: ReadIndexer = new ReadIndexer({
    requestReadIndex: (ctx) => {
      sends.push(Uint8Array.from(ctx));
      h.raw(id).readIndex(ctx);
      h.stabilize();
      const states = h.get(id).readStates.splice(0);
      // The server's Ready loop hands ReadStates over asynchronously, never inside readIndex().
      if (states.length > 0) queueMicrotask(() => indexer.onReadStates(states));
    },
    waitApplied: (index) => {
      const applied = h.raw(id).raft.raftLog.applied;
      return applied >= index ? Promise.resolve() : Promise.reject(new Error(`applied ${applied} < read index ${index}`));
    },
    timeoutMs: TIMEOUT_MS,
    nextCtx: () => ++nextCtx,
    onRetry: () => reader.retries++,
  });
  const reader: Reader = {
    indexer,
    sends,
    retries: 0,
    settled: () => state,
    read: () => {
      indexer.linearizableRead().then(
        () => (state = 'ok'),
        (e: unknown) => (state = e instanceof Error ? e : new Error(String(e))),
      );
    },
  };
  return reader;
}

/** Drops the first message of type t (only the first: a retry must get through). */
function dropFirst(h: Harness, t: MessageType): () => number {
  let dropped = 0;
  h.dropIf = (m: Message) => {
    if (m.type !== t || dropped > 0) return false;
    dropped++;
    return true;
  };
  return () => dropped;
}

function cluster(): Harness {
  const h = new Harness({ voters: [1, 2, 3] });
  h.elect(1);
  h.propose(1, 'x');
  return h;
}

describe('ReadIndex retry (etcd v3_server.go requestCurrentIndex, readIndexRetryTime)', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('the retry interval is etcd\'s 500 ms', () => {
    expect(READ_INDEX_RETRY_MS).toBe(500);
  });

  it('a lost MsgReadIndex from a follower is re-sent after 500 ms and the read is served', async () => {
    const h = cluster();
    const dropped = dropFirst(h, MessageType.MsgReadIndex);
    const r = readerOn(h, 2);
    r.read();
    await vi.advanceTimersByTimeAsync(0);
    expect(dropped()).toBe(1);
    expect(r.sends).toHaveLength(1);
    expect(r.settled()).toBe('pending');
    // Not re-sent early: one round in flight, one request per interval.
    await vi.advanceTimersByTimeAsync(READ_INDEX_RETRY_MS - 1);
    expect(r.sends).toHaveLength(1);
    expect(r.settled()).toBe('pending');
    await vi.advanceTimersByTimeAsync(1);
    expect(r.sends).toHaveLength(2);
    expect(r.retries).toBe(1);
    // etcd re-sends the same request ID, not a new one.
    expect(Buffer.from(r.sends[1]).equals(Buffer.from(r.sends[0]))).toBe(true);
    expect(r.settled()).toBe('ok');
    // Answered: no more re-sends for the rest of the timeout.
    await vi.advanceTimersByTimeAsync(TIMEOUT_MS);
    expect(r.sends).toHaveLength(2);
    expect(r.retries).toBe(1);
  });

  it('a lost MsgReadIndexResp (the leader already finished the round) is recovered by the re-send', async () => {
    const h = cluster();
    const dropped = dropFirst(h, MessageType.MsgReadIndexResp);
    const r = readerOn(h, 3);
    r.read();
    await vi.advanceTimersByTimeAsync(0);
    expect(dropped()).toBe(1);
    expect(r.settled()).toBe('pending');
    await vi.advanceTimersByTimeAsync(READ_INDEX_RETRY_MS);
    expect(r.sends).toHaveLength(2);
    expect(r.settled()).toBe('ok');
  });

  it('lost heartbeat acks on the leader: the duplicate context rides on the pending round and its new heartbeat confirms it', async () => {
    // raft's ReadOnly.addRequest ignores a context it already has pending (as etcd-io/raft's
    // read_only.go does), but the leader still broadcasts a heartbeat carrying that context, so the
    // re-send completes the round that lost its acknowledgements. No ticks happen here, so
    // nothing but the re-send can produce that heartbeat.
    const h = cluster();
    let lostAcks = 0;
    h.dropIf = (m) => {
      if (m.type !== MessageType.MsgHeartbeatResp || lostAcks >= 2) return false;
      lostAcks++;
      return true;
    };
    const r = readerOn(h, 1);
    r.read();
    await vi.advanceTimersByTimeAsync(0);
    expect(lostAcks).toBe(2);
    expect(h.raw(1).raft.readOnly.size).toBe(1);
    expect(r.settled()).toBe('pending');
    await vi.advanceTimersByTimeAsync(READ_INDEX_RETRY_MS);
    expect(r.sends).toHaveLength(2);
    expect(h.raw(1).raft.readOnly.size).toBe(0);
    expect(r.settled()).toBe('ok');
  });

  it('a round that is never answered is re-sent every 500 ms and still fails at the request timeout', async () => {
    const h = cluster();
    h.dropType(MessageType.MsgReadIndex);
    const r = readerOn(h, 2);
    r.read();
    await vi.advanceTimersByTimeAsync(TIMEOUT_MS - 1);
    expect(r.settled()).toBe('pending');
    expect(r.sends).toHaveLength(1 + Math.floor((TIMEOUT_MS - 1) / READ_INDEX_RETRY_MS));
    await vi.advanceTimersByTimeAsync(1);
    expect(r.settled()).toBeInstanceOf(ErrTimeout);
    const sent = r.sends.length;
    await vi.advanceTimersByTimeAsync(5 * READ_INDEX_RETRY_MS);
    expect(r.sends).toHaveLength(sent);
  });

  it('readers queued behind a lost round are served by the next round once the retry answers', async () => {
    const h = cluster();
    dropFirst(h, MessageType.MsgReadIndex);
    const r = readerOn(h, 2);
    const served: number[] = [];
    void r.indexer.linearizableRead().then(() => served.push(1));
    await vi.advanceTimersByTimeAsync(0);
    void r.indexer.linearizableRead().then(() => served.push(2));
    expect(r.sends).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(READ_INDEX_RETRY_MS - 1);
    expect(served).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    // The retry answered the first round; the queued reader's own round went out with a fresh
    // context (its index must be taken after it arrived) and was answered at once.
    expect(r.sends).toHaveLength(3);
    expect(Buffer.from(r.sends[2]).equals(Buffer.from(r.sends[0]))).toBe(false);
    expect(served).toEqual([1, 2]);
  });
});

describe('ReadIndex retry on the real clock', () => {
  it('a follower whose first request is lost is served after one retry, on real timers', async () => {
    const h = cluster();
    dropFirst(h, MessageType.MsgReadIndex);
    const r = readerOn(h, 2);
    // When the retry fires is covered on the fake clock above; here only that real timers do it.
    await r.indexer.linearizableRead();
    expect(r.sends).toHaveLength(2);
  });
});
