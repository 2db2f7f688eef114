import type { Message, NodeId } from '../types';
import type { Rng } from './rng';

/** Fault rates of the simulated network; all are per message. */
export interface NetworkFaults {
  dropRate: number;
  dupRate: number;
  /** Each message is delayed by 0..maxDelayTicks ticks; messages due together arrive in random order. */
  maxDelayTicks: number;
}

export interface InFlight {
  m: Message;
  deliverAt: number;
}

/** Bound on messages in flight: beyond it the network drops (a real one would, too). */
export const MAX_IN_FLIGHT_MESSAGES = 20_000;

/**
 * The simulated network: delays, reorders, duplicates and drops messages, and cuts links. A cut
 * is directed (from→to), so partitions can be asymmetric or one-way.
 */
export class SimNetwork {
  faults: NetworkFaults = { dropRate: 0, dupRate: 0, maxDelayTicks: 0 };
  private readonly cut = new Set<string>();
  private inFlight: InFlight[] = [];
  /** Messages due at `countedAt` (a cache: the simulator asks hasDue after every event). */
  private dueCount = 0;
  private countedAt = Number.NEGATIVE_INFINITY;

  constructor(private readonly rng: Rng) {}

  private static link(from: NodeId, to: NodeId): string {
    return `${from}>${to}`;
  }

  isCut(from: NodeId, to: NodeId): boolean {
    return this.cut.size > 0 && this.cut.has(SimNetwork.link(from, to));
  }

  cutLink(from: NodeId, to: NodeId): void {
    this.cut.add(SimNetwork.link(from, to));
  }

  healAll(): void {
    this.cut.clear();
  }

  cutDescription(): string {
    return [...this.cut].sort().join(' ');
  }

  get size(): number {
    return this.inFlight.length;
  }

  /** Queues m (copied, as serialization would) unless dropped; returns false if it was dropped. */
  send(m: Message, now: number): boolean {
    if (this.inFlight.length >= MAX_IN_FLIGHT_MESSAGES) return false;
    if (this.faults.dropRate > 0 && this.rng.chance(this.faults.dropRate)) return false;
    this.enqueue(copyMessage(m), now);
    if (this.faults.dupRate > 0 && this.rng.chance(this.faults.dupRate)) this.enqueue(copyMessage(m), now);
    return true;
  }

  private enqueue(m: Message, now: number): void {
    const delay = this.faults.maxDelayTicks > 0 ? this.rng.int(this.faults.maxDelayTicks + 1) : 0;
    this.inFlight.push({ m, deliverAt: now + delay });
    if (now + delay <= this.countedAt) this.dueCount++;
  }

  private recount(now: number): void {
    let n = 0;
    for (const f of this.inFlight) if (f.deliverAt <= now) n++;
    this.dueCount = n;
    this.countedAt = now;
  }

  /** Removes and returns a random message that is due, or undefined. */
  takeDue(now: number): InFlight | undefined {
    const n = this.inFlight.length;
    if (n === 0) return undefined;
    // Pick a random start and scan: uniform enough among due messages, and cheap.
    const start = this.rng.int(n);
    for (let k = 0; k < n; k++) {
      const i = (start + k) % n;
      const f = this.inFlight[i];
      if (f.deliverAt <= now) {
        this.inFlight[i] = this.inFlight[n - 1];
        this.inFlight.pop();
        if (now === this.countedAt) this.dueCount--;
        else this.countedAt = Number.NEGATIVE_INFINITY;
        return f;
      }
    }
    return undefined;
  }

  hasDue(now: number): boolean {
    if (now !== this.countedAt) this.recount(now);
    return this.dueCount > 0;
  }

  /** Drops every message to or from `id` (used when a member crashes: its sockets die). */
  dropFor(id: NodeId): void {
    this.inFlight = this.inFlight.filter((f) => f.m.to !== id);
    this.countedAt = Number.NEGATIVE_INFINITY;
  }
}

/** A deep enough copy: entries are re-created (the leader mutates proposed entries' term/index). */
export function copyMessage(m: Message): Message {
  const entries = new Array(m.entries.length);
  for (let i = 0; i < m.entries.length; i++) {
    const e = m.entries[i];
    entries[i] = { term: e.term, index: e.index, type: e.type, data: e.data };
  }
  return {
    type: m.type,
    to: m.to,
    from: m.from,
    term: m.term,
    logTerm: m.logTerm,
    index: m.index,
    entries,
    commit: m.commit,
    snapshot: m.snapshot,
    reject: m.reject,
    rejectHint: m.rejectHint,
    context: m.context,
  };
}
