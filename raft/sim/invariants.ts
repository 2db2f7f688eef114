import { MessageType, type Entry, type Message, type NodeId } from '../types';
import type { MemoryStorage } from '../storage';
import type { RaftLog } from '../log';

/** An invariant was violated: the simulation found a bug. */
export class InvariantViolation extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvariantViolation';
  }
}

function fail(msg: string): never {
  throw new InvariantViolation(msg);
}

/** A stable identity for an entry's content (term + type + payload). */
export function entryKey(e: Entry): string {
  return `${e.term}/${e.type}/${Buffer.from(e.data.buffer, e.data.byteOffset, e.data.byteLength).toString('latin1')}`;
}

/** Rolling hash of an applied sequence, for snapshot consistency. */
export function hashStep(h: number, e: Entry): number {
  let x = Math.imul(h ^ e.index, 0x01000193) ^ e.term;
  for (let i = 0; i < e.data.byteLength; i++) x = Math.imul(x ^ e.data[i], 0x01000193);
  return x >>> 0;
}

/**
 * Safety properties of Raft (thesis Figure 3.2), checked incrementally as the simulation runs:
 *  - Election Safety: at most one leader per term.
 *  - Log Matching: two logs with an entry of the same index and term agree on it and on the term
 *    of the entry before it (hence, by induction, on the whole prefix).
 *  - Leader Completeness: a new leader's log holds every entry committed so far.
 *  - State Machine Safety: every member applies the same entry at each index, in order, so
 *    every applied sequence is a prefix of one history; no committed entry is ever lost.
 *  - Linearizable reads: a ReadIndex read returns an index ≥ every write acknowledged before it
 *    started.
 *  - The persistence contract: a vote or append acknowledgement leaves only once the state it
 *    promises is on the member's disk.
 */
export class Checker {
  /** Committed history: index → entry key. */
  private readonly history: string[] = [''];
  private readonly hashAt: number[] = [0];
  /**
   * For each committed index, an upper bound on the term in which it was committed: the smallest
   * term of any member when it applied it. Leader Completeness binds leaders of later terms only.
   */
  private readonly commitTerm: number[] = [0];
  private readonly leaders = new Map<number, NodeId>();
  /** (index/term) → [entry key, term of the entry before it, or -1 if unknown]. */
  private readonly logEntries = new Map<string, [string, number]>();
  /** The largest index any member has applied: every write up to it was acknowledged. */
  maxApplied = 0;
  leaderElections = 0;

  /** The initial state every member starts from (a bootstrap snapshot). */
  bootstrap(index: number, hash: number): void {
    while (this.history.length <= index) {
      this.history.push('bootstrap');
      this.hashAt.push(hash);
      this.commitTerm.push(0);
    }
    this.maxApplied = index;
  }

  get committedLength(): number {
    return this.history.length - 1;
  }

  historyKey(i: number): string | undefined {
    return this.history[i];
  }

  onLeader(id: NodeId, term: number, log: RaftLog): void {
    const prev = this.leaders.get(term);
    if (prev !== undefined && prev !== id) fail(`two leaders in term ${term}: ${prev} and ${id}`);
    if (prev === undefined) this.leaderElections++;
    this.leaders.set(term, id);
    // Leader completeness: every entry committed in an earlier term is in the new leader's log. (A
    // leader of a stale term may still be elected after a later term committed something.)
    const first = log.firstIndex();
    for (let i = Math.max(first, 1); i < this.history.length; i++) {
      if (this.commitTerm[i] >= term) continue;
      const t = log.termOrUndefined(i);
      const want = this.history[i];
      if (t === undefined) fail(`leader ${id} (term ${term}) lacks committed entry ${i} (${want})`);
      const got = entryKey(log.slice(i, i + 1, Number.MAX_SAFE_INTEGER)[0]);
      if (got !== want) fail(`leader ${id} (term ${term}) has ${got} at committed index ${i}, history has ${want}`);
    }
  }

  /** Entries about to be persisted by `id`; prevTerm is the term of the entry before the first. */
  onEntries(id: NodeId, entries: readonly Entry[], prevTerm: number | undefined): void {
    let pt = prevTerm === undefined ? -1 : prevTerm;
    for (const e of entries) {
      const k = `${e.index}/${e.term}`;
      const key = entryKey(e);
      const seen = this.logEntries.get(k);
      if (seen === undefined) {
        this.logEntries.set(k, [key, pt]);
      } else {
        if (seen[0] !== key) fail(`log matching: index ${e.index} term ${e.term} is ${key} on ${id} but ${seen[0]} elsewhere`);
        if (seen[1] >= 0 && pt >= 0 && seen[1] !== pt) {
          fail(`log matching: entry ${e.index}/${e.term} follows term ${pt} on ${id} but term ${seen[1]} elsewhere`);
        }
        if (seen[1] < 0 && pt >= 0) seen[1] = pt;
      }
      pt = e.term;
    }
  }

  /** `id` applies e after having applied everything up to appliedBefore. Returns the new hash. */
  onApply(id: NodeId, appliedBefore: number, hashBefore: number, e: Entry, term: number): number {
    if (e.index !== appliedBefore + 1) fail(`${id} applied index ${e.index} after ${appliedBefore}: gap or repeat`);
    const key = entryKey(e);
    const h = hashStep(hashBefore, e);
    if (e.index < this.history.length) {
      if (this.history[e.index] !== key) {
        fail(`state machine safety: ${id} applied ${key} at ${e.index}, history has ${this.history[e.index]}`);
      }
      if (this.hashAt[e.index] !== h) fail(`state machine safety: ${id} applied history diverges before ${e.index}`);
      if (term < this.commitTerm[e.index]) this.commitTerm[e.index] = term;
    } else {
      if (e.index !== this.history.length) fail(`history gap: ${id} applied ${e.index}, history ends at ${this.history.length - 1}`);
      this.history.push(key);
      this.hashAt.push(h);
      this.commitTerm.push(term);
    }
    if (e.index > this.maxApplied) this.maxApplied = e.index;
    return h;
  }

  /** `id` installed a snapshot at index with application hash h. */
  onSnapshot(id: NodeId, index: number, h: number): void {
    if (index >= this.history.length) fail(`${id} installed snapshot at ${index} beyond the committed history ${this.history.length - 1}`);
    if (this.hashAt[index] !== h) fail(`${id} installed a snapshot at ${index} whose state differs from history`);
  }

  /** A read answered at readIndex started when `floor` writes were acknowledged. */
  onRead(id: NodeId, readIndex: number, floor: number): void {
    if (readIndex < floor) fail(`stale read on ${id}: read index ${readIndex} < ${floor} acknowledged before the read began`);
  }

  /** Checks that the messages `id` is about to send promise only state on its disk. */
  onSend(id: NodeId, messages: readonly Message[], disk: MemoryStorage): void {
    for (const m of messages) this.checkPromise(id, m, disk);
  }

  private checkPromise(id: NodeId, m: Message, disk: MemoryStorage): void {
    // A promise made at term t is superseded once a later term is durable: the member will never
    // again act in term t (it rejects term-t messages), so nothing can rely on it twice.
    const durableTerm = disk.hardStateNow().term;
    if (durableTerm > m.term) return;
    if (m.type === MessageType.MsgAppResp && !m.reject && m.index > disk.lastIndex()) {
      fail(`persistence contract: ${id} acknowledges index ${m.index} but its disk ends at ${disk.lastIndex()}`);
    }
    if (m.type === MessageType.MsgVoteResp && !m.reject) {
      const hs = disk.hardStateNow();
      if (hs.term !== m.term || hs.vote !== m.to) {
        fail(`persistence contract: ${id} grants a vote to ${m.to} at term ${m.term} but its disk has term ${hs.term} vote ${hs.vote}`);
      }
    }
  }
}
