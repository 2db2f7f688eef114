import type { Logger } from 'pino';
import { RawNode, MemoryStorage, type Entry, type Message, type Ready, type ReadState, type ConfChange, type ConfChangeV2, type ConfState, type Snapshot, StateType } from '../../raft';
import type { Wal } from '../storage/wal/wal';
import { encodeConfStateRecord } from '../storage/wal/conf-state-record';
import type { ServerMetrics } from './metrics';
import { failStop } from './fatal';

/**
 * Drives the pure Raft core (raft/) with real time, disk and network, in the order the persistence
 * contract demands (etcd's raftNode, server/etcdserver/raft.go):
 *   1. a leader sends its messages at once (it counts itself only after its own fsync);
 *   2. entries and hard state go to the WAL in one synced batch per Ready (group commit: every
 *      proposal that arrived while the previous fsync ran rides in the next one);
 *   3. committed entries are applied while that fsync is in flight;
 *   4. a follower sends its messages (votes, append acks) only after the fsync;
 *   5. advance().
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
  random: () => number;
  log: Logger;
  metrics: ServerMetrics;
}

export class RaftNode {
  private readonly node: RawNode;
  private ticker: NodeJS.Timeout | undefined;
  private processing = false;
  private scheduled = false;
  private stopped = false;
  private lead = 0n;
  private raftState: StateType = StateType.Follower;
  private lastIndexPersisted: number;
  private idle: (() => void)[] = [];
  private commit = 0;

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
    this.lastIndexPersisted = opts.storage.lastIndex();
    this.commit = opts.storage.initialState().hardState.commit;
  }

  start(): void {
    this.ticker = setInterval(() => {
      this.node.tick();
      this.kick();
    }, this.opts.tickMs);
    this.kick();
  }

  /** Raises ErrProposalDropped when there is no leader to take it (or the uncommitted cap is hit). */
  propose(data: Uint8Array): void {
    this.node.propose(data);
    this.kick();
  }

  proposeConfChange(cc: ConfChange | ConfChangeV2): void {
    this.node.proposeConfChange(cc);
    this.kick();
  }

  applyConfChange(cc: ConfChange | ConfChangeV2): ConfState {
    return this.node.applyConfChange(cc);
  }

  readIndex(ctx: Uint8Array): void {
    this.node.readIndex(ctx);
    this.kick();
  }

  step(m: Message): void {
    this.node.step(m);
    this.kick();
  }

  campaign(): void {
    this.node.campaign();
    this.kick();
  }

  transferLeader(to: bigint): void {
    this.node.transferLeader(to);
    this.kick();
  }

  reportUnreachable(id: bigint): void {
    this.node.reportUnreachable(id);
  }

  reportSnapshot(id: bigint, ok: boolean): void {
    this.node.reportSnapshot(id, ok);
    this.kick();
  }

  /** The highest index known committed (from the last persisted hard state). */
  get commitIndex(): number {
    return this.commit;
  }

  get leader(): bigint {
    return this.lead;
  }

  get isLeader(): boolean {
    return this.raftState === StateType.Leader;
  }

  status(): ReturnType<RawNode['status']> {
    return this.node.status();
  }

  /** Resolves once every Ready produced so far has been persisted, sent and applied. */
  whenIdle(): Promise<void> {
    if (!this.processing && !this.node.hasReady()) return Promise.resolve();
    return new Promise((resolve) => this.idle.push(resolve));
  }

  private kick(): void {
    if (this.scheduled || this.processing || this.stopped) return;
    this.scheduled = true;
    // setImmediate, not nextTick: let pending socket reads land first so one fsync covers them all.
    setImmediate(() => {
      this.scheduled = false;
      void this.process();
    });
  }

  private async process(): Promise<void> {
    if (this.processing || this.stopped) return;
    this.processing = true;
    try {
      while (!this.stopped && this.node.hasReady()) {
        const rd = this.node.ready();
        this.observeSoftState(rd);
        if (rd.readStates.length > 0) this.opts.onReadStates(rd.readStates);
        const leaderNow = this.raftState === StateType.Leader;
        if (leaderNow && rd.messages.length > 0) this.opts.send(rd.messages);
        const persisted = this.persist(rd);
        const applied = rd.committedEntries.length > 0 ? this.opts.apply(rd.committedEntries) : undefined;
        await persisted;
        if (!leaderNow && rd.messages.length > 0) this.opts.send(rd.messages);
        if (applied) await applied;
        this.node.advance(rd);
      }
    } catch (e) {
      // A failed fsync or apply leaves this member unable to keep its promises: stop, as etcd panics.
      this.stopped = true;
      failStop('wal write failed', e);
    } finally {
      this.processing = false;
      const idle = this.idle;
      this.idle = [];
      for (const f of idle) f();
    }
    if (this.node.hasReady()) this.kick();
  }

  private observeSoftState(rd: Ready): void {
    if (!rd.softState) return;
    const { lead, raftState } = rd.softState;
    this.raftState = raftState;
    if (lead !== this.lead) {
      this.lead = lead;
      this.opts.onLeaderChange(lead, this.node.status().term);
    }
  }

  private async persist(rd: Ready): Promise<void> {
    const hs = rd.hardState;
    if (rd.entries.length === 0 && !hs && !rd.snapshot) return;
    // The backend takes the snapshot's data before the WAL records the snapshot: a crash in between
    // leaves a backend ahead of the log, which replay tolerates (entries at or below its consistent
    // index are skipped); the other order would leave a log that skips entries the backend lacks.
    if (rd.snapshot) await this.opts.installSnapshot(rd.snapshot);
    await this.opts.wal.save({
      entries: rd.entries,
      hardState: hs ? { term: hs.term, vote: hs.vote, commit: hs.commit } : undefined,
      snapshot: rd.snapshot
        ? { index: rd.snapshot.metadata.index, term: rd.snapshot.metadata.term, data: encodeConfStateRecord(rd.snapshot.metadata.confState) }
        : undefined,
      previousLastIndex: this.lastIndexPersisted,
      sync: rd.mustSync,
    });
    if (rd.snapshot) {
      this.opts.storage.applySnapshot(rd.snapshot);
      this.lastIndexPersisted = rd.snapshot.metadata.index;
    }
    if (hs) {
      this.opts.storage.setHardState(hs);
      this.commit = Math.max(this.commit, hs.commit);
    }
    if (rd.entries.length > 0) {
      this.opts.storage.append(rd.entries);
      this.lastIndexPersisted = rd.entries[rd.entries.length - 1].index;
    }
  }

  async stop(): Promise<void> {
    if (this.ticker) clearInterval(this.ticker);
    this.ticker = undefined;
    await this.whenIdle();
    this.stopped = true;
  }
}
