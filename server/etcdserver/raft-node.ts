import type { Logger } from 'pino';
import { RawNode, ReadyLoop, MemoryStorage, MessageType, type Entry, type Message, type ReadState, type ConfChange, type ConfChangeV2, type ConfState, type Snapshot, type PersistBatch, type Done, StateType } from '../../raft';
import { ByteArena } from '../../raft/byte-arena';
import type { Wal } from '../storage/wal/wal';
import { encodeConfStateRecord } from '../storage/wal/conf-state-record';
import type { ServerMetrics } from './metrics';
import { failStop } from './fatal';

/**
 * Binds the Ready loop (raft/ready-loop.ts, which owns the ordering: leader sends before its fsync,
 * one WAL batch per Ready, apply during the fsync, follower sends after it, MemoryStorage then
 * advance — etcd's raftNode, server/etcdserver/raft.go) to real time (a setInterval tick, a
 * setImmediate kick so pending socket reads land before the next fsync), the WAL and the
 * transport. The simulator runs the same loop with simulated latencies.
 */

export interface RaftNodeOptions {
  id: bigint;
  storage: MemoryStorage;
  wal: Wal;
  applied: number;
  electionTicks: number;
  heartbeatTicks: number;
  tickMs: number;
  preVote: boolean;
  /** etcd's maxSizePerMsg (1 MiB) and maxInflightMsgs (4096 / 8 = 512). */
  maxSizePerMsgBytes: number;
  maxInflightMsgs: number;
  /** etcd server's cap on uncommitted entries (1 GiB): proposals beyond it are refused. */
  maxUncommittedEntriesSizeBytes: number;
  send(messages: Message[]): void;
  apply(entries: Entry[]): void | Promise<void>;
  onLeaderChange(lead: bigint, term: number): void;
  onReadStates(states: ReadState[]): void;
  /** A snapshot from the leader is about to be persisted: install its data first (see persist). */
  installSnapshot(snapshot: Snapshot): Promise<void>;
  /** A Ready was advanced: no entry is in flight between the WAL and MemoryStorage. */
  onAdvanced?(): void;
  random: () => number;
  log: Logger;
  metrics: ServerMetrics;
}

export class RaftNode {
  private readonly node: RawNode;
  private readonly loop: ReadyLoop;
  private ticker: NodeJS.Timeout | undefined;
  private lead = 0n;
  private raftState: StateType = StateType.Follower;
  /** When the last heartbeat went to each peer (etcd's contention.TimeoutDetector). */
  private readonly heartbeatSentAt = new Map<bigint, number>();
  /** Payloads of the entries this member's log keeps, stored compactly (raft/byte-arena.ts). */
  private readonly arena = new ByteArena();

  constructor(private readonly opts: RaftNodeOptions) {
    this.node = new RawNode({
      id: opts.id,
      electionTick: opts.electionTicks,
      heartbeatTick: opts.heartbeatTicks,
      storage: opts.storage,
      applied: opts.applied,
      maxSizePerMsg: opts.maxSizePerMsgBytes,
      maxInflightMsgs: opts.maxInflightMsgs,
      maxUncommittedEntriesSize: opts.maxUncommittedEntriesSizeBytes,
      checkQuorum: true,
      preVote: opts.preVote,
      readOnlyOption: 'safe',
      random: opts.random,
      logger: { info: (m) => opts.log.info({ raft: true }, m), warn: (m) => opts.log.warn({ raft: true }, m), debug: (m) => opts.log.debug({ raft: true }, m) },
    });
    this.loop = new ReadyLoop(this.node, opts.storage, {
      persist: (batch, done) => this.persist(batch, done),
      installSnapshot: (snap, done) => settle(() => opts.installSnapshot(snap), done),
      apply: (entries, done) => settle(() => opts.apply(entries), done),
      send: (messages) => {
        this.observeHeartbeats(messages);
        opts.send(messages);
      },
      onSoftState: (ss) => {
        // A new term as leader starts the heartbeat timing afresh (etcd: r.td.Reset()).
        if (ss.raftState === StateType.Leader && this.raftState !== StateType.Leader) this.heartbeatSentAt.clear();
        this.raftState = ss.raftState;
        if (ss.lead !== this.lead) {
          this.lead = ss.lead;
          opts.onLeaderChange(ss.lead, this.node.status().term);
        }
      },
      onReadStates: (rs) => opts.onReadStates(rs),
      // A failed fsync, apply or snapshot install leaves this member unable to keep its promises:
      // stop, as etcd panics (each with its own cause, so the fatal line says which).
      fatal: (cause, err) => failStop(cause, err),
      schedule: (run) => setImmediate(run),
      advanced: () => opts.onAdvanced?.(),
    });
  }

  start(): void {
    this.ticker = setInterval(() => {
      this.node.tick();
      this.loop.kick();
    }, this.opts.tickMs);
    this.loop.kick();
  }

  /**
   * Raises ErrProposalDropped when there is no leader to take it (or the uncommitted cap is hit).
   * Returns the bytes the entry holds: a copy into the log's arena, so the caller's buffer (a
   * slice of a shared pool slab) is not kept alive until the next snapshot.
   */
  propose(data: Uint8Array): Uint8Array {
    const stored = this.arena.copy(data);
    this.node.propose(stored);
    this.loop.kick();
    return stored;
  }

  proposeConfChange(cc: ConfChange | ConfChangeV2): void {
    this.node.proposeConfChange(cc);
    this.loop.kick();
  }

  applyConfChange(cc: ConfChange | ConfChangeV2): ConfState {
    return this.node.applyConfChange(cc);
  }

  readIndex(ctx: Uint8Array): void {
    this.node.readIndex(ctx);
    this.loop.kick();
  }

  step(m: Message): void {
    // Appended entries stay in MemoryStorage until the next snapshot: copied compactly, they do
    // not pin the transport's receive buffers they were decoded from (new objects: the message
    // may be shared with whoever decoded or sent it).
    if (m.type === MessageType.MsgApp && m.entries.length > 0) m = { ...m, entries: m.entries.map((e) => ({ term: e.term, index: e.index, type: e.type, data: this.arena.copy(e.data) })) };
    this.node.step(m);
    this.loop.kick();
  }

  campaign(): void {
    this.node.campaign();
    this.loop.kick();
  }

  transferLeader(to: bigint): void {
    this.node.transferLeader(to);
    this.loop.kick();
  }

  reportUnreachable(id: bigint): void {
    this.node.reportUnreachable(id);
  }

  reportSnapshot(id: bigint, ok: boolean): void {
    this.node.reportSnapshot(id, ok);
    this.loop.kick();
  }

  /** The highest index known committed (from the last persisted hard state). */
  get commitIndex(): number {
    return this.loop.durableCommit;
  }

  get leader(): bigint {
    return this.lead;
  }

  get isLeader(): boolean {
    return this.raftState === StateType.Leader;
  }

  /**
   * A Ready is outstanding: its persist or apply is in flight. etcd's applier waits for the raft
   * loop's disk write (notifyc) before snapshotting, because an entry applied during the fsync may
   * not be in MemoryStorage yet, or a stale entry of an older term may still sit at its index.
   */
  get readyInFlight(): boolean {
    return this.loop.busy;
  }

  status(): ReturnType<RawNode['status']> {
    return this.node.status();
  }

  /** Resolves once every Ready produced so far has been persisted, sent and applied. */
  whenIdle(): Promise<void> {
    return new Promise((resolve) => this.loop.whenIdle(resolve));
  }

  /**
   * etcd's raftNode counts a heartbeat sent more than two heartbeat intervals after the previous
   * one to the same peer (the leader was blocked, likely by a slow disk) as a heartbeat send
   * failure, and warns.
   */
  private observeHeartbeats(messages: readonly Message[]): void {
    const now = performance.now();
    const maxGapMs = 2 * this.opts.heartbeatTicks * this.opts.tickMs;
    for (const m of messages) {
      if (m.type !== MessageType.MsgHeartbeat) continue;
      const last = this.heartbeatSentAt.get(m.to);
      this.heartbeatSentAt.set(m.to, now);
      if (last !== undefined && now - last > maxGapMs) {
        this.opts.metrics.heartbeatSendFailures.inc();
        this.opts.log.warn({ to: m.to.toString(16), 'heartbeat-interval': `${this.opts.heartbeatTicks * this.opts.tickMs}ms`, 'expected-duration': `${maxGapMs}ms`, 'exceeded-duration': `${Math.round(now - last - maxGapMs)}ms` }, 'leader failed to send out heartbeat on time; took too long, leader is overloaded likely from slow disk');
      }
    }
  }

  /** One WAL batch per Ready (the snapshot's data was installed into the backend just before). */
  private persist(batch: PersistBatch, done: Done): void {
    const hs = batch.hardState;
    const snap = batch.snapshot;
    // etcd: proposalsCommitted.Set(rd.HardState.Commit), a gauge of the commit index.
    if (hs) this.opts.metrics.proposalsCommitted.set(hs.commit);
    this.opts.wal
      .save({
        entries: batch.entries,
        hardState: hs ? { term: hs.term, vote: hs.vote, commit: hs.commit } : undefined,
        snapshot: snap ? { index: snap.metadata.index, term: snap.metadata.term, data: encodeConfStateRecord(snap.metadata.confState) } : undefined,
        sync: batch.mustSync,
        // The leader's MsgApps are still in the transport's queue: an inline fsync would hold
        // them until it returns, adding the leader's fsync to every follower's (measured: a
        // follower received the MsgApp 2.5-2.8 ms after the send at one client).
        syncInline: !batch.sentBefore,
      })
      .then(
        () => true,
        (e: unknown) => {
          done(e ?? new Error('wal save rejected without a reason'));
          return false;
        },
      )
      .then((saved) => {
        if (saved) done();
      })
      // What done() sets off (the loop's settle: storage update, sends, advance) routes its own
      // failures; anything else thrown there is still a broken invariant, never a failed save.
      .catch((e: unknown) => failStop('raft invariant violated', e));
  }

  async stop(): Promise<void> {
    if (this.ticker) clearInterval(this.ticker);
    this.ticker = undefined;
    await this.whenIdle();
    this.loop.stop();
  }
}

/** Adapts a step that returns nothing or a promise to the loop's completion callback. */
function settle(run: () => void | Promise<void>, done: Done): void {
  let r: void | Promise<void>;
  try {
    r = run();
  } catch (e) {
    done(e);
    return;
  }
  if (r instanceof Promise) r.then(() => done(), (e: unknown) => done(e ?? new Error('rejected without a reason')));
  else done();
}
