import type { RawNode } from './raw-node';
import type { MemoryStorage } from './storage';
import { StateType, type Entry, type HardState, type Message, type ReadState, type Ready, type Snapshot, type SoftState } from './types';

/**
 * Why the loop stopped. The strings are the server's fail-stop causes (server/etcdserver/fatal.ts),
 * so the production sink passes them straight through; raft/ does not import server/.
 */
export type ReadyLoopFailure = 'wal write failed' | 'apply failed' | 'snapshot install failed' | 'raft invariant violated';

/** Completion callback of an asynchronous step: call once, with the error if it failed. */
export type Done = (err?: unknown) => void;

/** One Ready's durable state, written as one batch (etcd's storage.Save(hardState, entries)). */
export interface PersistBatch {
  readonly entries: Entry[];
  readonly hardState: HardState | undefined;
  readonly snapshot: Snapshot | undefined;
  /** fsync needed: term/vote changed or entries present (etcd-io/raft MustSync). */
  readonly mustSync: boolean;
  /**
   * A leader's messages were handed to the transport just before this persist (step 1): they are
   * still on their way to the socket, so the persist must not block this thread while it syncs.
   */
  readonly sentBefore: boolean;
}

/** The I/O a ReadyLoop drives. Every completion is a callback so a simulator can deliver it at a simulated time. */
export interface ReadyLoopIO {
  /** Makes the batch durable (WAL save + fsync), then calls done. */
  persist(batch: PersistBatch, done: Done): void;
  /** Installs a leader's snapshot into the state machine, before the WAL records it (see docs/raft.md). */
  installSnapshot(snapshot: Snapshot, done: Done): void;
  /** Applies committed entries (calling RawNode.applyConfChange for conf entries), then calls done. */
  apply(entries: Entry[], done: Done): void;
  send(messages: Message[]): void;
  onSoftState(ss: SoftState): void;
  onReadStates(states: ReadState[]): void;
  /** A step failed: the member cannot keep its promises. Production fail-stops; the simulator records it. */
  fatal(cause: ReadyLoopFailure, err: unknown): void;
  /** Runs `run` soon (production: setImmediate). Without it, the owner calls poll() itself. */
  schedule?(run: () => void): void;
  /**
   * A Ready was advanced: everything it carried is persisted, in MemoryStorage and applied. The
   * server takes log snapshots here, as etcd's applier does after the raft loop's notifyc.
   */
  advanced?(): void;
}

/**
 * The Ready loop, shared by the server (server/etcdserver/raft-node.ts) and the simulator
 * (raft/sim/simulator.ts) so the simulator explores the orderings production has. For each Ready,
 * in etcd's order (server/etcdserver/raft.go, raftNode.start):
 *
 *   1. a leader sends its messages at once: it may replicate before its own fsync because it counts
 *      itself toward the quorum only after that fsync, in advance() (thesis §10.2.1; etcd-io/raft
 *      sends MsgAppResp to self only after the storage append);
 *   2. snapshot (installed first), entries and hard state are persisted as one batch per Ready
 *      (group commit: what arrived during the previous fsync rides in this one);
 *   3. committed entries are applied while that persist is in flight (etcd's applyc);
 *   4. after the persist, MemoryStorage takes the snapshot, entries and hard state (etcd:
 *      raftStorage.ApplySnapshot / Append after storage.Save);
 *   5. a follower or candidate sends its messages (votes, append acks) only now: they promise
 *      durable state;
 *   6. advance(), once both the persist and the apply have completed.
 *
 * Ticks, steps and proposals may reach the RawNode at any time, including between ready() and
 * advance(); they land in the next Ready. ready() is never called while a Ready is outstanding.
 */
export class ReadyLoop {
  private rd: Ready | undefined = undefined;
  private leader = false;
  private persisted = false;
  private storageUpdated = false;
  private appliedDone = false;
  /** Bumped by stop(): completions of an earlier generation are ignored (a crashed member's disk I/O). */
  private gen = 0;
  private stopped = false;
  private scheduled = false;
  /** > 0 while calling into io: a completion that arrives synchronously is resumed after the call returns. */
  private inCall = 0;
  private idle: (() => void)[] = [];
  private commit: number;

  constructor(
    readonly node: RawNode,
    private readonly storage: MemoryStorage,
    private readonly io: ReadyLoopIO,
  ) {
    this.commit = storage.initialState().hardState.commit;
  }

  /** The highest commit index in a persisted hard state. */
  get durableCommit(): number {
    return this.commit;
  }

  /** A Ready is outstanding (between ready() and advance()). */
  get busy(): boolean {
    return this.rd !== undefined;
  }

  get isStopped(): boolean {
    return this.stopped;
  }

  /** Whether poll() would take a Ready now. */
  canPoll(): boolean {
    return !this.stopped && this.rd === undefined && this.node.hasReady();
  }

  /** Call after feeding the node (tick, step, propose): schedules a poll if there is work. */
  kick(): void {
    const schedule = this.io.schedule;
    if (!schedule || this.scheduled || this.stopped || this.rd) return;
    this.scheduled = true;
    schedule(() => {
      this.scheduled = false;
      this.poll();
    });
  }

  /** Takes one Ready and starts its persist and apply. Returns whether it took one. */
  poll(): boolean {
    if (!this.canPoll()) return false;
    const gen = this.gen;
    let rd: Ready;
    try {
      rd = this.node.ready();
    } catch (e) {
      this.fail('raft invariant violated', e);
      return false;
    }
    this.rd = rd;
    this.persisted = false;
    this.storageUpdated = false;
    this.appliedDone = rd.committedEntries.length === 0;
    if (rd.softState) {
      this.leader = rd.softState.raftState === StateType.Leader;
      this.io.onSoftState(rd.softState);
    }
    if (rd.readStates.length > 0) this.io.onReadStates(rd.readStates);
    if (gen !== this.gen) return true;
    // 1. etcd raft.go: `if islead { r.transport.Send(r.processMessages(rd.Messages)) }` before the save.
    const sentBefore = this.leader && rd.messages.length > 0;
    if (sentBefore) this.io.send(rd.messages);
    if (gen !== this.gen) return true;
    // 2. One batch per Ready; a snapshot's data is installed before the WAL records it.
    if (rd.entries.length === 0 && !rd.hardState && !rd.snapshot) {
      this.persisted = true;
    } else if (rd.snapshot) {
      const snap = rd.snapshot;
      this.call(gen, 'snapshot install failed', (done) => this.io.installSnapshot(snap, done), () => this.startPersist(gen, rd, sentBefore));
    } else {
      this.startPersist(gen, rd, sentBefore);
    }
    // 3. Apply concurrently with the persist (a follower may apply entries a quorum holds before
    // its own copy is durable; etcd-io/raft hands them out as committed, allowUnstable).
    if (gen === this.gen && rd.committedEntries.length > 0) {
      const ents = rd.committedEntries;
      this.call(gen, 'apply failed', (done) => this.io.apply(ents, done), () => {
        this.appliedDone = true;
      });
    }
    this.settle(gen);
    return true;
  }

  /** Resolves (calls back) once no Ready is outstanding and none is pending, or the loop stopped. */
  whenIdle(cb: () => void): void {
    if (this.stopped || (this.rd === undefined && !this.node.hasReady())) cb();
    else this.idle.push(cb);
  }

  /** Stops the loop: in-flight completions are ignored from now on (a crash loses the unfinished batch). */
  stop(): void {
    this.stopped = true;
    this.gen++;
    this.rd = undefined;
    this.releaseIdle();
  }

  private startPersist(gen: number, rd: Ready, sentBefore: boolean): void {
    const batch: PersistBatch = { entries: rd.entries, hardState: rd.hardState, snapshot: rd.snapshot, mustSync: rd.mustSync, sentBefore };
    this.call(gen, 'wal write failed', (done) => this.io.persist(batch, done), () => {
      this.persisted = true;
    });
  }

  /**
   * Runs an asynchronous io step; on success runs `then` and continues the Ready. Synchronous
   * throws and done(err) both fail the loop with `cause`.
   */
  private call(gen: number, cause: ReadyLoopFailure, start: (done: Done) => void, then: () => void): void {
    let called = false;
    const done: Done = (err) => {
      if (called || gen !== this.gen) return;
      called = true;
      if (err !== undefined) {
        this.fail(cause, err);
        return;
      }
      then();
      this.settle(gen);
    };
    this.inCall++;
    try {
      start(done);
    } catch (e) {
      if (!called && gen === this.gen) {
        called = true;
        this.fail(cause, e);
      }
    } finally {
      this.inCall--;
    }
  }

  /** Moves the outstanding Ready forward as far as its completions allow (steps 4-6). */
  private settle(gen: number): void {
    if (this.inCall > 0 || gen !== this.gen) return;
    const rd = this.rd;
    if (!rd) return;
    if (this.persisted && !this.storageUpdated) {
      this.storageUpdated = true;
      try {
        this.updateStorage(rd);
      } catch (e) {
        this.fail('raft invariant violated', e);
        return;
      }
      // 5. etcd raft.go: `if !islead { ... r.transport.Send(msgs) }` after the save.
      if (!this.leader && rd.messages.length > 0) this.io.send(rd.messages);
      if (gen !== this.gen) return;
    }
    if (!this.storageUpdated || !this.appliedDone) return;
    this.rd = undefined;
    try {
      this.node.advance(rd);
    } catch (e) {
      this.fail('raft invariant violated', e);
      return;
    }
    this.io.advanced?.();
    if (gen !== this.gen) return;
    if (this.node.hasReady()) {
      this.kick();
    } else {
      this.releaseIdle();
    }
  }

  private updateStorage(rd: Ready): void {
    if (rd.snapshot) this.storage.applySnapshot(rd.snapshot);
    if (rd.entries.length > 0) this.storage.append(rd.entries);
    if (rd.hardState) {
      this.storage.setHardState(rd.hardState);
      if (rd.hardState.commit > this.commit) this.commit = rd.hardState.commit;
    }
  }

  private fail(cause: ReadyLoopFailure, err: unknown): void {
    this.stop();
    this.io.fatal(cause, err);
  }

  private releaseIdle(): void {
    const idle = this.idle;
    this.idle = [];
    for (const f of idle) f();
  }
}
