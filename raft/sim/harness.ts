import { RawNode } from '../raw-node';
import { MemoryStorage } from '../storage';
import { decodeConfChange } from '../confchange';
import type { Config } from '../config';
import {
  EntryType,
  MessageType,
  StateType,
  emptyConfState,
  type ConfState,
  type Entry,
  type Message,
  type NodeId,
  type ReadState,
  type Ready,
} from '../types';
import { Rng } from './rng';
import { copyMessage } from './network';

/** Bound on stabilize() rounds: a cluster that never goes quiet is a bug. */
export const MAX_STABILIZE_ROUNDS = 10_000;

export interface HarnessOptions {
  /** Initial voters. */
  voters: number[];
  learners?: number[];
  /** Extra members with empty storage (to be added later). */
  spares?: number[];
  seed?: number;
  config?: Partial<Omit<Config, 'id' | 'storage' | 'random'>>;
  /** Per member: terms of the entries after the bootstrap snapshot (index 2 on); sets term to the last. */
  logs?: Record<number, number[]>;
  /** Per member: the term in its hard state (default: the last log term, or 1). */
  terms?: Record<number, number>;
}

export interface HarnessNode {
  id: NodeId;
  raw: RawNode | undefined;
  storage: MemoryStorage;
  applied: Entry[];
  readStates: ReadState[];
  readies: Ready[];
  confState: ConfState;
}

/**
 * A manually driven cluster for scenario tests (etcd-io/raft's `network` in raft_test.go): every
 * Ready is persisted to the member's MemoryStorage, then its messages are queued, then its
 * committed entries applied. Delivery order is FIFO, so tests read like the paper's figures.
 */
export class Harness {
  readonly nodes = new Map<NodeId, HarnessNode>();
  private queue: Message[] = [];
  private readonly cut = new Set<string>();
  private readonly dropTypes = new Set<MessageType>();
  readonly rng: Rng;
  /** Drops any message for which this returns true (set by tests). */
  dropIf: ((m: Message) => boolean) | undefined = undefined;
  /** Every message delivered or dropped, for assertions. */
  readonly sent: Message[] = [];

  constructor(private readonly opts: HarnessOptions) {
    this.rng = new Rng(opts.seed ?? 1);
    const cs: ConfState = {
      ...emptyConfState(),
      voters: opts.voters.map(BigInt),
      learners: (opts.learners ?? []).map(BigInt),
    };
    for (const i of [...opts.voters, ...(opts.learners ?? [])]) {
      const storage = new MemoryStorage();
      storage.applySnapshot({ data: new Uint8Array(), metadata: { index: 1, term: 1, confState: cs } });
      const terms = opts.logs?.[i] ?? [];
      storage.append(terms.map((term, k) => ({ term, index: k + 2, type: EntryType.Normal, data: new Uint8Array(Buffer.from(`e${k + 2}t${term}`)) })));
      const term = opts.terms?.[i] ?? (terms.length > 0 ? terms[terms.length - 1] : 1);
      storage.setHardState({ term, vote: 0n, commit: 1 });
      this.add(BigInt(i), storage);
    }
    for (const i of opts.spares ?? []) this.add(BigInt(i), new MemoryStorage());
  }

  private add(id: NodeId, storage: MemoryStorage): void {
    const n: HarnessNode = { id, raw: undefined, storage, applied: [], readStates: [], readies: [], confState: emptyConfState() };
    this.nodes.set(id, n);
    this.start(n);
  }

  private start(n: HarnessNode): void {
    n.confState = n.storage.snapshot().metadata.confState;
    n.raw = new RawNode({
      ...this.opts.config,
      id: n.id,
      storage: n.storage,
      applied: n.storage.snapshot().metadata.index,
      random: () => this.rng.next(),
    });
  }

  get(id: number | bigint): HarnessNode {
    const n = this.nodes.get(BigInt(id));
    if (!n) throw new Error(`no member ${id}`);
    return n;
  }

  raw(id: number | bigint): RawNode {
    const r = this.get(id).raw;
    if (!r) throw new Error(`member ${id} is down`);
    return r;
  }

  state(id: number | bigint): StateType {
    return this.raw(id).raft.state;
  }

  term(id: number | bigint): number {
    return this.raw(id).raft.term;
  }

  /** Cuts both directions between a and every other member. */
  isolate(a: number): void {
    for (const id of this.nodes.keys()) {
      if (id === BigInt(a)) continue;
      this.cutLink(a, Number(id));
      this.cutLink(Number(id), a);
    }
  }

  cutLink(from: number, to: number): void {
    this.cut.add(`${from}>${to}`);
  }

  heal(): void {
    this.cut.clear();
  }

  dropType(t: MessageType): void {
    this.dropTypes.add(t);
  }

  allowType(t: MessageType): void {
    this.dropTypes.delete(t);
  }

  tick(id: number, n = 1): void {
    for (let i = 0; i < n; i++) this.raw(id).tick();
  }

  /** Ticks every live member n times, stabilizing after each tick. */
  tickAll(n = 1): void {
    for (let i = 0; i < n; i++) {
      for (const m of this.nodes.values()) m.raw?.tick();
      this.stabilize();
    }
  }

  /** Campaigns until `id` leads (a campaign may first just learn a higher term). */
  elect(id: number, attempts = 5): void {
    for (let i = 0; i < attempts; i++) {
      this.campaign(id);
      if (this.state(id) === StateType.Leader) return;
    }
    throw new Error(`member ${id} could not be elected`);
  }

  /** Terms of `id`'s log from index 2 on (after the bootstrap snapshot). */
  logTerms(id: number): number[] {
    const log = this.raw(id).raft.raftLog;
    const out: number[] = [];
    for (let i = Math.max(2, log.firstIndex()); i <= log.lastIndex(); i++) out.push(log.term(i));
    return out;
  }

  campaign(id: number): void {
    this.raw(id).campaign();
    this.stabilize();
  }

  propose(id: number, data: string): void {
    this.raw(id).propose(new Uint8Array(Buffer.from(data)));
    this.stabilize();
  }

  crash(id: number): void {
    this.get(id).raw = undefined;
  }

  restart(id: number): void {
    this.start(this.get(id));
  }

  /** Persists, sends and applies one Ready of `id` (returns it), without delivering messages. */
  processReady(id: number | bigint): Ready | undefined {
    const n = this.get(id);
    const raw = n.raw;
    if (!raw || !raw.hasReady()) return undefined;
    const rd = raw.ready();
    n.readies.push(rd);
    if (rd.snapshot) n.storage.applySnapshot(rd.snapshot);
    if (rd.entries.length > 0) n.storage.append(rd.entries);
    if (rd.hardState) n.storage.setHardState(rd.hardState);
    for (const m of rd.messages) this.queue.push(copyMessage(m));
    for (const e of rd.committedEntries) {
      n.applied.push(e);
      if (e.type !== EntryType.Normal) n.confState = raw.applyConfChange(decodeConfChange(e.type, e.data));
    }
    n.readStates.push(...rd.readStates);
    raw.advance(rd);
    return rd;
  }

  /** Delivers one queued message (FIFO); returns false if none. */
  deliverOne(): boolean {
    const m = this.queue.shift();
    if (!m) return false;
    this.sent.push(m);
    const to = this.nodes.get(m.to);
    if (!to || !to.raw || this.cut.has(`${m.from}>${m.to}`) || this.dropTypes.has(m.type)) return true;
    if (this.dropIf && this.dropIf(m)) return true;
    to.raw.step(m);
    if (m.type === MessageType.MsgSnap) this.nodes.get(m.from)?.raw?.reportSnapshot(m.to, true);
    return true;
  }

  /** Processes Readys and delivers messages until nothing is left to do. */
  stabilize(): void {
    if (!this.run(MAX_STABILIZE_ROUNDS)) throw new Error('harness did not stabilize');
  }

  /** Like stabilize, for at most `rounds` rounds; returns whether the cluster went quiet. */
  run(rounds: number): boolean {
    for (let round = 0; round < rounds; round++) {
      let progressed = false;
      for (const id of this.nodes.keys()) {
        while (this.processReady(id)) progressed = true;
      }
      while (this.deliverOne()) progressed = true;
      if (!progressed) return true;
    }
    return false;
  }

  /** Queued messages not yet delivered. */
  pending(): readonly Message[] {
    return this.queue;
  }

  clearPending(): void {
    this.queue = [];
  }

  leaders(): NodeId[] {
    return [...this.nodes.values()].filter((n) => n.raw?.raft.state === StateType.Leader).map((n) => n.id);
  }

  /** Applied normal entries' payloads, as strings. */
  appliedData(id: number): string[] {
    return this.get(id)
      .applied.filter((e) => e.type === EntryType.Normal && e.data.byteLength > 0)
      .map((e) => Buffer.from(e.data).toString());
  }
}
