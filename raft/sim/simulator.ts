import { RawNode } from '../raw-node';
import { MemoryStorage } from '../storage';
import { ErrProposalDropped } from '../errors';
import { decodeConfChange } from '../confchange';
import { ctxKey } from '../read-only';
import type { TestingBugs } from '../config';
import {
  ConfChangeTransition,
  ConfChangeType,
  EntryType,
  MessageType,
  StateType,
  emptyConfState,
  type ConfChange,
  type ConfChangeV2,
  type ConfState,
  type Message,
  type NodeId,
  type Ready,
} from '../types';
import { Rng } from './rng';
import { SimNetwork } from './network';
import { Checker, InvariantViolation } from './invariants';

/** Spare members (not in the initial config) that membership changes can add. */
export const SPARE_MEMBERS = 2;
export const DEFAULT_SIM_TICKS = 500;
/** After healing, a leader must be elected and a proposal committed within this many election timeouts. */
export const LIVENESS_ELECTION_TIMEOUTS = 30;
/** Bound on events (deliveries and Readys) processed per simulated tick. */
export const MAX_EVENTS_PER_TICK = 5_000;

export interface SimOptions {
  seed: number;
  /** 3 or 5 voters at start; default: 3 for even seeds, 5 for odd. */
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

interface SimParams {
  electionTick: number;
  heartbeatTick: number;
  preVote: boolean;
  checkQuorum: boolean;
  maxSizePerMsg: number;
  maxInflightMsgs: number;
  maxUncommittedEntriesSize: number;
}

/** The command that replays a seed (printed on failure). */
export function reproduceCommand(seed: number, members?: number, ticks?: number): string {
  const m = members !== undefined ? ` --members ${members}` : '';
  const t = ticks !== undefined && ticks !== DEFAULT_SIM_TICKS ? ` --ticks ${ticks}` : '';
  return `npm run sim -- --seeds 1 --start ${seed}${m}${t} --trace`;
}

function bytes(s: string): Uint8Array {
  return new Uint8Array(Buffer.from(s, 'latin1'));
}

function text(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('latin1');
}

interface AppSnapshot {
  h: number;
  removed: string[];
}

/**
 * One simulated member: a RawNode, its "disk" (a MemoryStorage holding only what Readys said to
 * persist), and a toy state machine (a hash of the applied sequence). A crash throws away the
 * RawNode and everything volatile; a restart rebuilds both from the disk alone.
 */
class SimNode {
  raw: RawNode | undefined = undefined;
  readonly disk = new MemoryStorage();
  applied = 0;
  hash = 0;
  confState: ConfState = emptyConfState();
  /** Members this node applied a removal of; its transport refuses their messages (etcd's IsIDRemoved). */
  removed = new Set<NodeId>();
  /** Outstanding reads: ctx → index acknowledged before the read began. */
  reads = new Map<string, number>();

  constructor(readonly id: NodeId) {}

  get alive(): boolean {
    return this.raw !== undefined;
  }

  start(params: SimParams, rng: Rng, bugs: TestingBugs | undefined): void {
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
    this.raw = new RawNode({
      id: this.id,
      storage: this.disk,
      applied: this.applied,
      electionTick: params.electionTick,
      heartbeatTick: params.heartbeatTick,
      preVote: params.preVote,
      checkQuorum: params.checkQuorum,
      maxSizePerMsg: params.maxSizePerMsg,
      maxInflightMsgs: params.maxInflightMsgs,
      maxUncommittedEntriesSize: params.maxUncommittedEntriesSize,
      readOnlyOption: 'safe',
      random: () => rng.next(),
      testingBugs: bugs,
    });
  }

  snapshotData(): Uint8Array {
    const s: AppSnapshot = { h: this.hash, removed: [...this.removed].map(String) };
    return bytes(JSON.stringify(s));
  }
}

export class Simulation {
  readonly rng: Rng;
  readonly net: SimNetwork;
  readonly checker = new Checker();
  readonly nodes: SimNode[] = [];
  readonly members: number;
  readonly params: SimParams;
  readonly trace: string[] = [];
  now = 0;
  private counter = 0;
  private markerDone = false;
  /** Liveness phase: no more faults. */
  private healed = false;
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
    for (const n of this.nodes) n.start(this.params, this.rng, opts.bugs);
    this.log(`params ${JSON.stringify(this.params)} faults ${JSON.stringify(this.net.faults)} members=${this.members}`);
  }

  private log(line: string): void {
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

  /** Processes deliveries and Readys in random order until quiet (or the per-tick bound). */
  private drain(): void {
    for (let k = 0; k < MAX_EVENTS_PER_TICK; k++) {
      const ready: SimNode[] = [];
      for (const n of this.nodes) if (n.raw && n.raw.hasReady()) ready.push(n);
      const hasMsg = this.net.hasDue(this.now);
      if (ready.length === 0 && !hasMsg) return;
      if (ready.length > 0 && (!hasMsg || this.rng.chance(0.5))) {
        this.processReady(this.rng.pick(ready));
      } else {
        const f = this.net.takeDue(this.now);
        if (f) this.deliver(f.m);
      }
    }
  }

  private processReady(n: SimNode): void {
    const raw = n.raw;
    if (!raw) return;
    const rd = raw.ready();
    const log = raw.raft.raftLog;
    if (rd.softState) {
      this.log(`${n.id} soft lead=${rd.softState.lead} state=${StateType[rd.softState.raftState]} term=${raw.raft.term}`);
      if (rd.softState.raftState === StateType.Leader) this.checker.onLeader(n.id, raw.raft.term, log);
    }
    if (rd.entries.length > 0) {
      this.checker.onEntries(n.id, rd.entries, log.termOrUndefined(rd.entries[0].index - 1));
    }
    // 1. Persist.
    if (rd.snapshot) n.disk.applySnapshot(rd.snapshot);
    if (rd.entries.length > 0) n.disk.append(rd.entries);
    if (rd.hardState) n.disk.setHardState(rd.hardState);
    if (this.opts.trace && (rd.hardState || rd.entries.length > 0 || rd.snapshot)) {
      const hs = rd.hardState;
      this.log(
        `${n.id} persist${hs ? ` hs(term=${hs.term} vote=${hs.vote} commit=${hs.commit})` : ''}` +
          `${rd.entries.length ? ` ents[${rd.entries[0].index}..${rd.entries[rd.entries.length - 1].index}]` : ''}` +
          `${rd.snapshot ? ` snap@${rd.snapshot.metadata.index}` : ''}`,
      );
    }
    // A crash right after the fsync: the Ready's messages are lost, its state is not.
    if (!this.healed && this.rng.chance(0.002)) {
      this.crash(n, 'after persist');
      return;
    }
    // 2. Send.
    this.checker.onSend(n.id, rd, n.disk);
    for (const m of rd.messages) this.send(m);
    // 3. Apply.
    this.apply(n, rd);
    // 4. Advance.
    raw.advance(rd);
  }

  private apply(n: SimNode, rd: Ready): void {
    const raw = n.raw;
    if (!raw) return;
    if (rd.snapshot) {
      const s = JSON.parse(text(rd.snapshot.data)) as AppSnapshot;
      n.applied = rd.snapshot.metadata.index;
      n.hash = s.h;
      n.removed = new Set(s.removed.map(BigInt));
      n.confState = rd.snapshot.metadata.confState;
      this.checker.onSnapshot(n.id, n.applied, n.hash);
      this.log(`${n.id} installed snapshot @${n.applied}`);
    }
    for (const e of rd.committedEntries) {
      n.hash = this.checker.onApply(n.id, n.applied, n.hash, e, raw.raft.term);
      n.applied = e.index;
      if (e.type !== EntryType.Normal) {
        const cc = decodeConfChange(e.type, e.data);
        const before = members(n.confState);
        n.confState = raw.applyConfChange(cc);
        // A member is removed once it is in no part of the configuration (in a joint config a
        // removed voter still votes in the outgoing half until the joint config is left).
        const after = members(n.confState);
        for (const id of before) if (!after.has(id)) n.removed.add(id);
        for (const id of after) n.removed.delete(id);
        this.log(`${n.id} applied conf change @${e.index} → ${JSON.stringify(n.confState, (_, v: unknown) => (typeof v === 'bigint' ? Number(v) : v))}`);
      } else if (e.data.byteLength > 0 && text(e.data) === 'marker') {
        this.markerDone = true;
      }
    }
    for (const rs of rd.readStates) {
      const key = ctxKey(rs.requestCtx);
      const floor = n.reads.get(key);
      if (floor === undefined) continue;
      n.reads.delete(key);
      this.checker.onRead(n.id, rs.index, floor);
      this.stats.reads++;
      this.log(`${n.id} read ${text(rs.requestCtx)} index=${rs.index} floor=${floor}`);
    }
  }

  private send(m: Message): void {
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

  private crash(n: SimNode, why: string): void {
    this.log(`${n.id} CRASH (${why})`);
    n.raw = undefined;
    n.reads.clear();
    this.stats.crashes++;
  }

  private restart(n: SimNode): void {
    this.log(`${n.id} RESTART from disk (last=${n.disk.lastIndex()} hs=${JSON.stringify(n.disk.hardStateNow(), (_, v: unknown) => (typeof v === 'bigint' ? Number(v) : v))})`);
    n.start(this.params, this.rng, this.opts.bugs);
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
    if (rng.chance(0.03)) this.confChange();
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
    let cc: ConfChange | ConfChangeV2 | undefined;
    if (cs.votersOutgoing.length > 0) {
      if (!cs.autoLeave) cc = { transition: ConfChangeTransition.Auto, changes: [] };
    } else {
      const inConfig = new Set([...cs.voters, ...cs.learners]);
      const outside = this.nodes.map((n) => n.id).filter((id) => !inConfig.has(id));
      const op = rng.int(6);
      if (op === 0 && outside.length > 0) {
        cc = { type: ConfChangeType.AddLearnerNode, nodeId: rng.pick(outside) };
      } else if (op === 1 && cs.learners.length > 0 && cs.voters.length < 5) {
        cc = { type: ConfChangeType.AddNode, nodeId: rng.pick(cs.learners) };
      } else if (op === 2 && cs.voters.length > 3) {
        cc = { type: ConfChangeType.RemoveNode, nodeId: rng.pick(cs.voters) };
      } else if (op === 3 && cs.learners.length > 0) {
        cc = { type: ConfChangeType.RemoveNode, nodeId: rng.pick(cs.learners) };
      } else if (op === 4 && cs.learners.length > 0) {
        // Joint consensus: swap a voter for a learner in one step.
        cc = {
          transition: rng.pick([ConfChangeTransition.Auto, ConfChangeTransition.JointImplicit, ConfChangeTransition.JointExplicit]),
          changes: [
            { type: ConfChangeType.AddNode, nodeId: rng.pick(cs.learners) },
            { type: ConfChangeType.RemoveNode, nodeId: rng.pick(cs.voters) },
          ],
        };
      } else if (op === 5 && cs.learners.length > 0) {
        // Joint consensus: demote a voter to learner (it goes through learnersNext) and promote a learner.
        cc = {
          transition: rng.pick([ConfChangeTransition.JointImplicit, ConfChangeTransition.JointExplicit]),
          changes: [
            { type: ConfChangeType.AddLearnerNode, nodeId: rng.pick(cs.voters) },
            { type: ConfChangeType.AddNode, nodeId: rng.pick(cs.learners) },
          ],
        };
      }
    }
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

function members(cs: ConfState): Set<NodeId> {
  return new Set([...cs.voters, ...cs.learners, ...cs.votersOutgoing, ...cs.learnersNext]);
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
