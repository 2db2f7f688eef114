import { ErrProposalDropped } from '../errors';
import type { TestingBugs } from '../config';
import {
  ConfChangeTransition,
  MessageType,
  StateType,
  emptyConfState,
  type ConfState,
  type Message,
  type NodeId,
} from '../types';
import { Rng } from './rng';
import { SimNetwork } from './network';
import { Checker, InvariantViolation } from './invariants';
import { SimNode, bytes, type MemberEnv, type SimParams } from './member';
import { pickConfChange } from './conf-changes';

/** Spare members (not in the initial config) that membership changes can add. */
export const SPARE_MEMBERS = 2;
export const DEFAULT_SIM_TICKS = 500;
/** After healing, a leader must be elected and a proposal committed within this many election timeouts. */
export const LIVENESS_ELECTION_TIMEOUTS = 30;
/** Bound on events (deliveries and Readys) processed per simulated tick. */
export const MAX_EVENTS_PER_TICK = 5_000;
/**
 * Storage latency bounds, in ticks (a tick is etcd's 100 ms heartbeat; a slow fsync takes that
 * long): per seed, persists take 0..{0,1,2} ticks and applies 0..{0,1} ticks, so seeds explore
 * replication during the leader's fsync, apply during it, and ticks, steps and proposals between
 * ready() and advance().
 */
export const PERSIST_DELAY_TICKS_CHOICES: readonly number[] = [0, 1, 1, 2];
export const APPLY_DELAY_TICKS_CHOICES: readonly number[] = [0, 0, 1];

/** A storage or apply completion, due at a simulated time. */
interface IoEvent {
  at: number;
  node: SimNode;
  epoch: number;
  what: string;
  run: () => void;
}

export interface SimOptions {
  seed: number;
  /** 1, 3 or 5 voters at start (1: a single voter is its own quorum; learners may join); default: 3 for even seeds, 5 for odd. */
  members?: number;
  ticks?: number;
  trace?: boolean;
  bugs?: TestingBugs;
}

export interface SimResult {
  seed: number;
  ok: boolean;
  error?: string;
  members: number;
  stats: SimStats;
  trace: string[];
}

export interface SimStats {
  ticks: number;
  proposals: number;
  committed: number;
  reads: number;
  leaderElections: number;
  crashes: number;
  confChanges: number;
  snapshotsSent: number;
  messages: number;
}


/** The command that replays a seed (printed on failure). */
export function reproduceCommand(seed: number, members?: number, ticks?: number): string {
  const m = members !== undefined ? ` --members ${members}` : '';
  const t = ticks !== undefined && ticks !== DEFAULT_SIM_TICKS ? ` --ticks ${ticks}` : '';
  return `npm run sim -- --seeds 1 --start ${seed}${m}${t} --trace`;
}

export class Simulation implements MemberEnv {
  readonly rng: Rng;
  readonly net: SimNetwork;
  readonly checker = new Checker();
  readonly nodes: SimNode[] = [];
  readonly members: number;
  readonly params: SimParams;
  readonly trace: string[] = [];
  readonly bugs: TestingBugs | undefined;
  readonly tracing: boolean;
  now = 0;
  private counter = 0;
  private markerDone = false;
  /** Liveness phase: no more faults. */
  healed = false;
  private io: IoEvent[] = [];
  /** Set by a member's Ready loop when a persist, apply or install failed (its fatal sink). */
  private failure: Error | undefined = undefined;
  private readonly stats: SimStats = {
    ticks: 0,
    proposals: 0,
    committed: 0,
    reads: 0,
    leaderElections: 0,
    crashes: 0,
    confChanges: 0,
    snapshotsSent: 0,
    messages: 0,
  };

  constructor(private readonly opts: SimOptions) {
    this.rng = new Rng(opts.seed);
    this.bugs = opts.bugs;
    this.tracing = opts.trace === true;
    this.net = new SimNetwork(this.rng);
    this.members = opts.members ?? (opts.seed % 2 === 0 ? 3 : 5);
    const rng = this.rng;
    // Each seed also picks a Raft configuration, so pre-vote/check-quorum off and tight flow
    // control limits get their share of schedules.
    this.params = {
      electionTick: 10,
      heartbeatTick: rng.pick([1, 1, 2]),
      preVote: rng.chance(0.75),
      checkQuorum: rng.chance(0.75),
      maxSizePerMsg: rng.pick([1, 64, 512, 1024 * 1024]),
      maxInflightMsgs: rng.pick([1, 4, 256]),
      maxUncommittedEntriesSize: rng.pick([0, 0, 256]),
      maxPersistDelayTicks: rng.pick(PERSIST_DELAY_TICKS_CHOICES),
      maxApplyDelayTicks: rng.pick(APPLY_DELAY_TICKS_CHOICES),
    };
    this.net.faults = {
      dropRate: rng.pick([0, 0.01, 0.05, 0.1]),
      dupRate: rng.pick([0, 0.01, 0.05]),
      maxDelayTicks: rng.pick([0, 1, 3, 6]),
    };
    const total = this.members + SPARE_MEMBERS;
    const voters: NodeId[] = [];
    for (let i = 1; i <= this.members; i++) voters.push(BigInt(i));
    for (let i = 1; i <= total; i++) {
      const n = new SimNode(BigInt(i));
      if (i <= this.members) {
        // Bootstrap like the server: a snapshot at index 1, term 1, holding the initial config.
        const cs: ConfState = { ...emptyConfState(), voters };
        n.disk.applySnapshot({ data: n.snapshotData(), metadata: { index: 1, term: 1, confState: cs } });
        n.disk.setHardState({ term: 1, vote: 0n, commit: 1 });
      }
      this.nodes.push(n);
    }
    this.checker.bootstrap(1, 0);
    for (const n of this.nodes) n.start(this);
    this.log(`params ${JSON.stringify(this.params)} faults ${JSON.stringify(this.net.faults)} members=${this.members}`);
  }

  log(line: string): void {
    if (this.opts.trace) this.trace.push(`t=${this.now} ${line}`);
  }

  private node(id: NodeId): SimNode | undefined {
    const i = Number(id) - 1;
    return i >= 0 && i < this.nodes.length ? this.nodes[i] : undefined;
  }

  run(): SimResult {
    const ticks = this.opts.ticks ?? DEFAULT_SIM_TICKS;
    try {
      for (let t = 0; t < ticks; t++) {
        this.now++;
        this.injectFaults();
        this.clientOps();
        this.tickAll();
        this.drain();
      }
      this.liveness();
      this.stats.ticks = this.now;
      this.stats.leaderElections = this.checker.leaderElections;
      this.stats.committed = this.checker.committedLength;
      return { seed: this.opts.seed, ok: true, members: this.members, stats: this.stats, trace: this.trace };
    } catch (e) {
      const msg = e instanceof InvariantViolation ? e.message : e instanceof Error ? `${e.name}: ${e.message}\n${e.stack ?? ''}` : String(e);
      this.log(`FAILED: ${msg}`);
      this.stats.ticks = this.now;
      return { seed: this.opts.seed, ok: false, error: `t=${this.now}: ${msg}`, members: this.members, stats: this.stats, trace: this.trace };
    }
  }

  private tickAll(): void {
    for (const n of this.nodes) n.raw?.tick();
  }

  // ------------------------------------------------------------------ MemberEnv

  storageDelay(kind: 'persist' | 'apply'): number {
    if (this.healed) return 0;
    const max = kind === 'persist' ? this.params.maxPersistDelayTicks : this.params.maxApplyDelayTicks;
    return max > 0 ? this.rng.int(max + 1) : 0;
  }

  after(delayTicks: number, n: SimNode, what: string, run: () => void): void {
    this.io.push({ at: this.now + delayTicks, node: n, epoch: n.epoch, what, run });
  }

  fail(cause: string, err: unknown): void {
    if (this.failure) return;
    this.failure = err instanceof InvariantViolation ? err : new Error(`${cause}: ${err instanceof Error ? `${err.message}\n${err.stack ?? ''}` : String(err)}`);
  }

  readChecked(): void {
    this.stats.reads++;
  }

  markerCommitted(): void {
    this.markerDone = true;
  }

  /** Removes and returns a random due completion (rng.int over the due ones, no allocation). */
  private takeDueIo(due: number): IoEvent | undefined {
    let k = this.rng.int(due);
    for (let i = 0; i < this.io.length; i++) {
      const ev = this.io[i];
      if (ev.at > this.now || k-- > 0) continue;
      this.io[i] = this.io[this.io.length - 1];
      this.io.pop();
      return ev;
    }
    return undefined;
  }

  private dueIo(): number {
    let n = 0;
    for (const ev of this.io) if (ev.at <= this.now) n++;
    return n;
  }

  /**
   * Processes message deliveries, Ready polls and storage/apply completions in random order until
   * quiet (or the per-tick bound). Completions due later stay queued across ticks.
   */
  private drain(): void {
    for (let k = 0; k < MAX_EVENTS_PER_TICK; k++) {
      let ready = 0;
      for (const n of this.nodes) if (n.loop && n.loop.canPoll()) ready++;
      const hasMsg = this.net.hasDue(this.now);
      const dueIo = this.dueIo();
      const kinds = (ready > 0 ? 1 : 0) + (hasMsg ? 1 : 0) + (dueIo > 0 ? 1 : 0);
      if (kinds === 0) return;
      let pick = this.rng.int(kinds);
      if (ready > 0 && pick-- === 0) {
        let i = this.rng.int(ready);
        for (const n of this.nodes) {
          if (!n.loop || !n.loop.canPoll() || i-- > 0) continue;
          n.loop.poll();
          break;
        }
      } else if (hasMsg && pick-- === 0) {
        const f = this.net.takeDue(this.now);
        if (f) this.deliver(f.m);
      } else {
        const ev = this.takeDueIo(dueIo);
        if (ev && ev.epoch === ev.node.epoch) ev.run();
      }
      if (this.failure) throw this.failure;
    }
  }

  send(m: Message): void {
    this.stats.messages++;
    if (m.type === MessageType.MsgSnap) this.stats.snapshotsSent++;
    const queued = this.net.send(m, this.now);
    if (this.opts.trace) this.log(`send ${describe(m)}${queued ? '' : ' DROPPED'}`);
    if (!queued) this.onUndelivered(m);
  }

  /** Transport feedback, as etcd's rafthttp gives it: unreachable peers and failed snapshots. */
  private onUndelivered(m: Message): void {
    const from = this.node(m.from);
    if (!from || !from.raw) return;
    if (m.type === MessageType.MsgSnap) from.raw.reportSnapshot(m.to, false);
    else if (this.rng.chance(0.3)) from.raw.reportUnreachable(m.to);
  }

  private deliver(m: Message): void {
    const to = this.node(m.to);
    if (!to || !to.raw || this.net.isCut(m.from, m.to) || to.removed.has(m.from)) {
      if (this.opts.trace) this.log(`lost ${describe(m)}`);
      this.onUndelivered(m);
      return;
    }
    if (this.opts.trace) this.log(`recv ${describe(m)}`);
    to.raw.step(m);
    if (m.type === MessageType.MsgSnap) this.node(m.from)?.raw?.reportSnapshot(m.to, true);
  }

  crash(n: SimNode, why: string): void {
    this.log(`${n.id} CRASH (${why})`);
    n.kill();
    this.stats.crashes++;
  }

  private restart(n: SimNode): void {
    this.log(`${n.id} RESTART from disk (last=${n.disk.lastIndex()} hs=${JSON.stringify(n.disk.hardStateNow(), (_, v: unknown) => (typeof v === 'bigint' ? Number(v) : v))})`);
    n.start(this);
  }

  // ------------------------------------------------------------------ faults

  private injectFaults(): void {
    const rng = this.rng;
    const ids = this.nodes.map((n) => n.id);
    if (rng.chance(0.02)) {
      const kind = rng.int(5);
      this.net.healAll();
      if (kind === 0 || kind === 4) {
        // Isolate one member, both directions; often the leader, to force elections with logs in
        // every state of replication (the Figure 8 schedules).
        const l = this.leader();
        const x = kind === 4 && l ? l.id : rng.pick(ids);
        for (const y of ids) {
          if (y === x) continue;
          this.net.cutLink(x, y);
          this.net.cutLink(y, x);
        }
      } else if (kind === 1) {
        // Split into two groups.
        const side = new Map(ids.map((id) => [id, rng.chance(0.5)] as const));
        for (const x of ids) for (const y of ids) if (side.get(x) !== side.get(y)) this.net.cutLink(x, y);
      } else if (kind === 2) {
        // One-way cuts: x can send to y but not hear back (or vice versa).
        const k = rng.range(1, 4);
        for (let i = 0; i < k; i++) {
          const x = rng.pick(ids);
          const y = rng.pick(ids);
          if (x !== y) this.net.cutLink(x, y);
        }
      }
      this.log(`PARTITION ${this.net.cutDescription() || '(healed)'}`);
    }
    if (rng.chance(0.008)) {
      const live = this.nodes.filter((n) => n.alive);
      if (live.length > 0) this.crash(rng.pick(live), 'random');
    }
    if (rng.chance(0.004)) {
      const l = this.leader();
      if (l) this.crash(l, 'leader');
    }
    if (rng.chance(0.04)) {
      const dead = this.nodes.filter((n) => !n.alive);
      if (dead.length > 0) this.restart(rng.pick(dead));
    }
  }

  // ------------------------------------------------------------------ clients

  private leader(): SimNode | undefined {
    let best: SimNode | undefined;
    for (const n of this.nodes) {
      if (!n.raw || n.raw.raft.state !== StateType.Leader) continue;
      if (!best || n.raw.raft.term > (best.raw?.raft.term ?? 0)) best = n;
    }
    return best;
  }

  private clientOps(): void {
    const rng = this.rng;
    const live = this.nodes.filter((n) => n.alive);
    if (live.length === 0) return;
    if (rng.chance(0.4)) {
      const n = rng.pick(live);
      const k = rng.chance(0.2) ? rng.range(2, 20) : 1;
      const datas: Uint8Array[] = [];
      for (let i = 0; i < k; i++) datas.push(bytes(`v${++this.counter}`));
      this.stats.proposals += k;
      try {
        if (k === 1) n.raw?.propose(datas[0]);
        else n.raw?.proposeBatch(datas);
        this.log(`${n.id} propose ${k}`);
      } catch (e) {
        if (!(e instanceof ErrProposalDropped)) throw e;
      }
    }
    if (rng.chance(0.15)) {
      const n = rng.pick(live);
      const ctx = `r${++this.counter}`;
      n.reads.set(ctx, this.checker.maxApplied);
      try {
        n.raw?.readIndex(bytes(ctx));
        this.log(`${n.id} readIndex ${ctx} floor=${this.checker.maxApplied}`);
      } catch (e) {
        if (!(e instanceof ErrProposalDropped)) throw e;
        n.reads.delete(ctx);
      }
    }
    // A single voter stays one: that mode exists to explore a leader that is its own quorum (it
    // commits on its own fsync alone). Membership changes are explored with 3 and 5 voters.
    if (this.members > 1 && rng.chance(0.03)) this.confChange();
    if (rng.chance(0.005)) {
      const l = this.leader();
      if (l?.raw) {
        const voters = l.confState.voters.filter((v) => v !== l.id);
        if (voters.length > 0) {
          const to = rng.pick(voters);
          this.log(`${l.id} transferLeader → ${to}`);
          l.raw.transferLeader(to);
        }
      }
    }
    if (rng.chance(0.03)) this.compact(rng.pick(live));
  }

  private compact(n: SimNode): void {
    // etcd's applier waits for the raft loop's disk write (notifyc) before snapshotting: an entry
    // applied during the fsync may not be on this member's disk yet (or a stale one may be).
    if (!n.loop || n.loop.busy || n.applied > n.disk.lastIndex()) return;
    const first = n.disk.firstIndex();
    if (n.applied - first < 8) return;
    n.disk.createSnapshot(n.applied, n.confState, n.snapshotData());
    const to = n.applied - this.rng.int(4);
    n.disk.compact(to);
    this.log(`${n.id} snapshot @${n.applied}, compact to ${to}`);
  }

  /** Membership changes under load: add learner, promote, remove, re-add, joint swaps and demotions. */
  private confChange(): void {
    const rng = this.rng;
    const l = this.leader();
    if (!l || !l.raw) return;
    const cs = l.raw.raft.trk.confState();
    const proposer = rng.chance(0.8) ? l : rng.pick(this.nodes.filter((n) => n.alive));
    const cc = pickConfChange(rng, cs, this.nodes.map((n) => n.id));
    if (!cc || !proposer.raw) return;
    this.stats.confChanges++;
    this.log(`${proposer.id} proposeConfChange ${JSON.stringify(cc, (_, v: unknown) => (typeof v === 'bigint' ? Number(v) : v))}`);
    try {
      proposer.raw.proposeConfChange(cc);
    } catch (e) {
      if (!(e instanceof ErrProposalDropped)) throw e;
    }
  }

  // ------------------------------------------------------------------ liveness

  /**
   * Heal everything, restart every member, and require a leader and a newly committed proposal
   * within LIVENESS_ELECTION_TIMEOUTS election timeouts.
   */
  private liveness(): void {
    this.log('LIVENESS: heal all, restart all');
    this.healed = true;
    this.net.healAll();
    this.net.faults = { dropRate: 0, dupRate: 0, maxDelayTicks: 1 };
    for (const n of this.nodes) if (!n.alive) this.restart(n);
    const bound = LIVENESS_ELECTION_TIMEOUTS * this.params.electionTick;
    const retryTicks = 3 * this.params.electionTick;
    let lastProposal = -Infinity;
    for (let k = 0; k < bound; k++) {
      this.now++;
      this.tickAll();
      this.drain();
      if (this.markerDone) return;
      const l = this.leader();
      if (!l || !l.raw || !l.raw.raft.trk.isVoter(l.id)) continue;
      if (this.now - lastProposal < retryTicks) continue;
      lastProposal = this.now;
      try {
        if (l.raw.raft.trk.isJoint() && !l.raw.raft.trk.config.autoLeave) {
          l.raw.proposeConfChange({ transition: ConfChangeTransition.Auto, changes: [] });
        }
        l.raw.propose(bytes('marker'));
        this.log(`${l.id} propose marker`);
      } catch (e) {
        if (!(e instanceof ErrProposalDropped)) throw e;
      }
    }
    const l = this.leader();
    throw new InvariantViolation(
      `liveness: no new proposal committed within ${bound} ticks after healing (leader=${l ? l.id : 'none'}; ` +
        this.nodes
          .map((n) => `${n.id}:${n.raw ? `${StateType[n.raw.raft.state]}/t${n.raw.raft.term}/c${n.raw.raft.raftLog.committed}` : 'down'}`)
          .join(' ') +
        ')',
    );
  }
}

/** One line per message for traces. */
export function describe(m: Message): string {
  let s = `${m.from}→${m.to} ${MessageType[m.type]} t${m.term}`;
  if (m.type === MessageType.MsgApp) s += ` prev=${m.index}/${m.logTerm} n=${m.entries.length} commit=${m.commit}`;
  else if (m.type === MessageType.MsgAppResp) s += ` idx=${m.index}${m.reject ? ` REJECT hint=${m.rejectHint}/${m.logTerm}` : ''}`;
  else if (m.type === MessageType.MsgVote || m.type === MessageType.MsgPreVote) s += ` last=${m.index}/${m.logTerm}`;
  else if (m.type === MessageType.MsgVoteResp || m.type === MessageType.MsgPreVoteResp) s += m.reject ? ' REJECT' : ' GRANT';
  else if (m.type === MessageType.MsgHeartbeat) s += ` commit=${m.commit}`;
  else if (m.type === MessageType.MsgSnap) s += ` snap@${m.snapshot?.metadata.index ?? 0}`;
  else if (m.type === MessageType.MsgReadIndexResp) s += ` idx=${m.index}`;
  return s;
}

export function runSeed(opts: SimOptions): SimResult {
  return new Simulation(opts).run();
}
