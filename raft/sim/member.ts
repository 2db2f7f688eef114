import { RawNode } from '../raw-node';
import { MemoryStorage } from '../storage';
import { ReadyLoop, type Done, type PersistBatch, type ReadyLoopIO } from '../ready-loop';
import { decodeConfChange } from '../confchange';
import { ctxKey } from '../read-only';
import type { TestingBugs } from '../config';
import { EntryType, StateType, emptyConfState, type ConfState, type Entry, type Message, type NodeId, type Snapshot } from '../types';
import type { Rng } from './rng';
import type { Checker } from './invariants';

/** A crash while a persist is in flight: the unfinished batch is lost (per persist). */
export const CRASH_DURING_PERSIST_PROBABILITY = 0.002;
/** A crash after a follower's batch is durable, before its acks leave (per follower Ready with messages). */
export const CRASH_BEFORE_FOLLOWER_SEND_PROBABILITY = 0.002;

export interface SimParams {
  electionTick: number;
  heartbeatTick: number;
  preVote: boolean;
  checkQuorum: boolean;
  maxSizePerMsg: number;
  maxInflightMsgs: number;
  maxUncommittedEntriesSize: number;
  /** Each persist (WAL save + fsync) completes 0..maxPersistDelayTicks ticks after ready(). */
  maxPersistDelayTicks: number;
  /** Each apply (and snapshot install) completes 0..maxApplyDelayTicks ticks after ready(). */
  maxApplyDelayTicks: number;
}

/** What a member needs from the simulation it runs in. */
export interface MemberEnv {
  readonly checker: Checker;
  readonly rng: Rng;
  readonly params: SimParams;
  readonly bugs: TestingBugs | undefined;
  readonly tracing: boolean;
  /** No more faults (liveness phase). */
  readonly healed: boolean;
  /** Ticks until the next persist (or apply) completes: seeded, 0 once healed (a slow disk is a fault). */
  storageDelay(kind: 'persist' | 'apply'): number;
  log(line: string): void;
  /** Runs `run` after `delayTicks` simulated ticks (0: later in this tick, in random order with other events). */
  after(delayTicks: number, n: SimNode, what: string, run: () => void): void;
  send(m: Message): void;
  crash(n: SimNode, why: string): void;
  /** The Ready loop's fatal sink: the seed fails. */
  fail(cause: string, err: unknown): void;
  readChecked(): void;
  markerCommitted(): void;
}

export function bytes(s: string): Uint8Array {
  return new Uint8Array(Buffer.from(s, 'latin1'));
}

export function text(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('latin1');
}

interface AppSnapshot {
  h: number;
  removed: string[];
}

function json(x: unknown): string {
  return JSON.stringify(x, (_, v: unknown) => (typeof v === 'bigint' ? Number(v) : v));
}

function members(cs: ConfState): Set<NodeId> {
  return new Set([...cs.voters, ...cs.learners, ...cs.votersOutgoing, ...cs.learnersNext]);
}

/**
 * One simulated member: a RawNode driven by the production ReadyLoop, its "disk" (a MemoryStorage
 * that the loop updates only once a persist completed), and a toy state machine (a hash of the
 * applied sequence). A crash throws away the RawNode, the loop (its unfinished persist is lost)
 * and everything volatile; a restart rebuilds both from the disk alone.
 */
export class SimNode {
  raw: RawNode | undefined = undefined;
  loop: ReadyLoop | undefined = undefined;
  readonly disk = new MemoryStorage();
  applied = 0;
  hash = 0;
  confState: ConfState = emptyConfState();
  /** Members this node applied a removal of; its transport refuses their messages (etcd's IsIDRemoved). */
  removed = new Set<NodeId>();
  /** Outstanding reads: ctx → index acknowledged before the read began. */
  reads = new Map<string, number>();
  /** Bumped by every crash: storage and apply completions of an earlier life are void. */
  epoch = 0;

  constructor(readonly id: NodeId) {}

  get alive(): boolean {
    return this.raw !== undefined;
  }

  start(env: MemberEnv): void {
    const snap = this.disk.snapshot();
    this.applied = snap.metadata.index;
    this.confState = snap.metadata.confState;
    this.hash = 0;
    this.removed = new Set();
    if (snap.data.byteLength > 0) {
      const s = JSON.parse(text(snap.data)) as AppSnapshot;
      this.hash = s.h;
      this.removed = new Set(s.removed.map(BigInt));
    }
    this.reads.clear();
    const p = env.params;
    const raw = new RawNode({
      id: this.id,
      storage: this.disk,
      applied: this.applied,
      electionTick: p.electionTick,
      heartbeatTick: p.heartbeatTick,
      preVote: p.preVote,
      checkQuorum: p.checkQuorum,
      maxSizePerMsg: p.maxSizePerMsg,
      maxInflightMsgs: p.maxInflightMsgs,
      maxUncommittedEntriesSize: p.maxUncommittedEntriesSize,
      readOnlyOption: 'safe',
      random: () => env.rng.next(),
      testingBugs: env.bugs,
    });
    this.raw = raw;
    this.loop = new ReadyLoop(raw, this.disk, this.io(env, raw));
  }

  /** Crash: the loop stops (in-flight completions are void) and the volatile state is gone. */
  kill(): void {
    this.loop?.stop();
    this.loop = undefined;
    this.raw = undefined;
    this.reads.clear();
    this.epoch++;
  }

  snapshotData(): Uint8Array {
    const s: AppSnapshot = { h: this.hash, removed: [...this.removed].map(String) };
    return bytes(JSON.stringify(s));
  }

  private io(env: MemberEnv, raw: RawNode): ReadyLoopIO {
    return {
      persist: (batch: PersistBatch, done: Done) => {
        if (batch.entries.length > 0) {
          env.checker.onEntries(this.id, batch.entries, raw.raft.raftLog.termOrUndefined(batch.entries[0].index - 1));
        }
        env.after(env.storageDelay('persist'), this, 'persist', () => {
          // A crash in the middle of the fsync: nothing of this batch reaches the disk.
          if (!env.healed && env.rng.chance(CRASH_DURING_PERSIST_PROBABILITY)) {
            env.crash(this, 'during persist');
            return;
          }
          if (env.tracing) env.log(`${this.id} persisted${describeBatch(batch)}`);
          done();
        });
      },
      installSnapshot: (snap: Snapshot, done: Done) => {
        env.after(env.storageDelay('apply'), this, 'install snapshot', () => {
          this.installSnapshot(env, snap);
          done();
        });
      },
      apply: (entries: Entry[], done: Done) => {
        env.after(env.storageDelay('apply'), this, 'apply', () => {
          this.applyEntries(env, raw, entries);
          done();
        });
      },
      send: (messages: Message[]) => {
        // Followers send only after their batch is durable: the check holds them to it.
        env.checker.onSend(this.id, messages, this.disk);
        if (!env.healed && raw.raft.state !== StateType.Leader && env.rng.chance(CRASH_BEFORE_FOLLOWER_SEND_PROBABILITY)) {
          env.crash(this, 'after persist, before send');
          return;
        }
        for (const m of messages) env.send(m);
      },
      onSoftState: (ss) => {
        env.log(`${this.id} soft lead=${ss.lead} state=${StateType[ss.raftState]} term=${raw.raft.term}`);
        if (ss.raftState === StateType.Leader) env.checker.onLeader(this.id, raw.raft.term, raw.raft.raftLog);
      },
      onReadStates: (states) => {
        for (const rs of states) {
          const key = ctxKey(rs.requestCtx);
          const floor = this.reads.get(key);
          if (floor === undefined) continue;
          this.reads.delete(key);
          env.checker.onRead(this.id, rs.index, floor);
          env.readChecked();
          env.log(`${this.id} read ${text(rs.requestCtx)} index=${rs.index} floor=${floor}`);
        }
      },
      fatal: (cause, err) => env.fail(cause, err),
    };
  }

  private installSnapshot(env: MemberEnv, snap: Snapshot): void {
    const s = JSON.parse(text(snap.data)) as AppSnapshot;
    this.applied = snap.metadata.index;
    this.hash = s.h;
    this.removed = new Set(s.removed.map(BigInt));
    this.confState = snap.metadata.confState;
    env.checker.onSnapshot(this.id, this.applied, this.hash);
    env.log(`${this.id} installed snapshot @${this.applied}`);
  }

  private applyEntries(env: MemberEnv, raw: RawNode, entries: Entry[]): void {
    for (const e of entries) {
      this.hash = env.checker.onApply(this.id, this.applied, this.hash, e, raw.raft.term);
      this.applied = e.index;
      if (e.type !== EntryType.Normal) {
        const cc = decodeConfChange(e.type, e.data);
        const before = members(this.confState);
        this.confState = raw.applyConfChange(cc);
        // A member is removed once it is in no part of the configuration (in a joint config a
        // removed voter still votes in the outgoing half until the joint config is left).
        const after = members(this.confState);
        for (const id of before) if (!after.has(id)) this.removed.add(id);
        for (const id of after) this.removed.delete(id);
        env.log(`${this.id} applied conf change @${e.index} → ${json(this.confState)}`);
      } else if (e.data.byteLength > 0 && text(e.data) === 'marker') {
        env.markerCommitted();
      }
    }
  }
}

function describeBatch(b: PersistBatch): string {
  const hs = b.hardState;
  return (
    `${hs ? ` hs(term=${hs.term} vote=${hs.vote} commit=${hs.commit})` : ''}` +
    `${b.entries.length ? ` ents[${b.entries[0].index}..${b.entries[b.entries.length - 1].index}]` : ''}` +
    `${b.snapshot ? ` snap@${b.snapshot.metadata.index}` : ''}`
  );
}
