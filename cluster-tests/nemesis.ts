/**
 * The nemesis: a fault schedule drawn from the seed, then executed against the cluster.
 *
 * The schedule (which fault, when, for how long, and the random draws that pick its targets) is a
 * pure function of the seed and the run length, so a seed replays the same faults. Targets that
 * depend on the cluster's state ("the leader", "a follower") are resolved when the fault starts and
 * recorded in the history's nemesis events, which the report shades as fault windows.
 *
 * Families (`--nemesis a,b,...`, or `all`):
 * - partition: majority/minority, isolated leader, bridge, one-way, random (each healed after a
 *   bounded time);
 * - network: delay with jitter, packet loss (see proxy.ts for how loss maps onto TCP);
 * - kill: SIGKILL one member, the leader or a minority, restart after a while;
 * - crash: SIGKILL every member at once (a power cut of the whole cluster), restart after a while;
 *   with --lose-unsynced the members also lose every write they had not fsynced;
 * - pause: SIGSTOP the leader or a member, SIGCONT after a while;
 * - member: member replace (remove, wipe the data dir, add back, catch up by snapshot);
 * - snapshot: isolate a follower until it is so far behind that it needs a snapshot, then heal;
 * - isolate-leader: always the "isolated leader" partition (the harness self-test uses it: with
 *   unsafe local reads, the old leader then serves stale reads).
 */
import type { Cluster, Member } from './cluster';
import { SNAPSHOT_CATCHUP_ENTRIES, sleep } from './cluster';
import { type LinkFaults, NO_FAULTS } from './proxy';
import { Prng } from './prng';
import type { Recorder } from './recorder';

export const NEMESIS_FAMILIES = ['partition', 'network', 'kill', 'pause', 'member', 'snapshot', 'crash', 'isolate-leader'] as const;
/** What `--nemesis all` means: every family (isolate-leader is one kind of `partition`, kept separate for the self-test). */
export const ALL_NEMESES: readonly NemesisFamily[] = ['partition', 'network', 'kill', 'pause', 'member', 'snapshot', 'crash'];
export type NemesisFamily = (typeof NEMESIS_FAMILIES)[number];

/** Quiet time before the first fault, so the workload reaches steady state. */
export const FIRST_FAULT_AFTER_MS = 3_000;
/** Bounds on how long one fault is held before it is healed. */
export const MIN_FAULT_MS = 2_000;
export const MAX_FAULT_MS = 8_000;
/** Bounds on the healed time between two faults (the cluster recovers and clients make progress). */
export const MIN_HEAL_MS = 2_000;
export const MAX_HEAL_MS = 5_000;
/** No fault starts later than this before the end of the run, so the last one heals in time. */
export const END_MARGIN_MS = 2_000;
/** The snapshot partition is held at most this long, even if the member is not yet far enough behind. */
export const MAX_SNAPSHOT_PARTITION_MS = 30_000;
/** Margin over --snapshot-count + --snapshot-catchup-entries the isolated member must lag by to need a snapshot. */
export const SNAPSHOT_LAG_MARGIN_ENTRIES = 50;
/** How long to wait for a restarted member to see a leader again. */
export const RESTART_READY_TIMEOUT_MS = 30_000;
/** Network fault parameters. */
export const DELAY_MS_RANGE: readonly [number, number] = [50, 200];
export const LOSS_PROBABILITY_RANGE: readonly [number, number] = [0.05, 0.3];
/** Poll interval while a fault waits on a condition. */
export const NEMESIS_POLL_MS = 250;

export interface PlannedFault {
  readonly family: NemesisFamily;
  /** Offset from the run's start at which the fault should begin. */
  readonly atMs: number;
  readonly holdMs: number;
  /** Seed for the fault's own target choices (drawn from the schedule stream). */
  readonly targetSeed: number;
}

/** The fault schedule for a run: deterministic in (seed, families, run length). */
export function planSchedule(seed: number, families: readonly NemesisFamily[], runMs: number): PlannedFault[] {
  const out: PlannedFault[] = [];
  if (families.length === 0) return out;
  const r = new Prng(seed).fork('nemesis schedule');
  let t = FIRST_FAULT_AFTER_MS;
  for (;;) {
    const family = r.pick(families);
    const holdMs = r.int(MIN_FAULT_MS, MAX_FAULT_MS);
    const targetSeed = r.int(0, 2 ** 31 - 1);
    if (t + holdMs > runMs - END_MARGIN_MS) break;
    out.push({ family, atMs: t, holdMs, targetSeed });
    t += holdMs + r.int(MIN_HEAL_MS, MAX_HEAL_MS);
  }
  return out;
}

export function parseNemeses(spec: string): NemesisFamily[] {
  if (spec === '' || spec === 'none') return [];
  if (spec === 'all') return [...ALL_NEMESES];
  const out: NemesisFamily[] = [];
  for (const s of spec.split(',').map((x) => x.trim())) {
    if (!(NEMESIS_FAMILIES as readonly string[]).includes(s)) throw new Error(`unknown nemesis "${s}" (known: ${NEMESIS_FAMILIES.join(', ')}, all, none)`);
    out.push(s as NemesisFamily);
  }
  return out;
}

type Pair = readonly [string, string];

export const PARTITION_KINDS = ['majority-minority', 'isolate-leader', 'bridge', 'one-way', 'random'] as const;
export type PartitionKind = (typeof PARTITION_KINDS)[number];

/** One fault being applied: what to record, and how to undo it. */
interface ActiveFault {
  readonly fault: string;
  readonly targets: readonly string[];
  detail: string;
  heal(): Promise<void>;
  /** Hold until the fault has done its job (default: the planned hold time). */
  hold?(plannedMs: number, stopped: () => boolean): Promise<void>;
}

export class Nemesis {
  /** Errors of the nemesis itself (a member that would not restart, ...): the run is not valid. */
  readonly errors: string[] = [];
  private readonly t0 = Date.now();
  private current: ActiveFault | undefined;

  constructor(
    private readonly cluster: Cluster,
    private readonly rec: Recorder,
    readonly schedule: readonly PlannedFault[],
  ) {}

  /** Execute the schedule until it ends or `stopped()`; every fault is healed before returning. */
  async run(stopped: () => boolean): Promise<void> {
    for (const p of this.schedule) {
      while (!stopped() && Date.now() - this.t0 < p.atMs) await sleep(Math.min(NEMESIS_POLL_MS, p.atMs - (Date.now() - this.t0)));
      if (stopped()) break;
      try {
        await this.inject(p, stopped);
      } catch (e) {
        this.errors.push(`${p.family} at ${p.atMs} ms: ${e instanceof Error ? e.message : String(e)}`);
        await this.healCurrent().catch((h: unknown) => this.errors.push(`healing ${p.family}: ${h instanceof Error ? h.message : String(h)}`));
      }
    }
  }

  private async inject(p: PlannedFault, stopped: () => boolean): Promise<void> {
    const r = new Prng(p.targetSeed);
    const f = await this.start(p.family, r);
    this.current = f;
    this.rec.nemesis(f.fault, 'start', f.targets, f.detail);
    if (f.hold) await f.hold(p.holdMs, stopped);
    else await this.sleepUnlessStopped(p.holdMs, stopped);
    await this.healCurrent();
  }

  private async healCurrent(): Promise<void> {
    const f = this.current;
    if (f === undefined) return;
    this.current = undefined;
    try {
      await f.heal();
    } finally {
      this.rec.nemesis(f.fault, 'stop', f.targets, f.detail);
    }
  }

  private async sleepUnlessStopped(ms: number, stopped: () => boolean): Promise<void> {
    const end = Date.now() + ms;
    while (Date.now() < end && !stopped()) await sleep(Math.min(NEMESIS_POLL_MS, end - Date.now()));
  }

  /** Heal everything: network, paused and killed members. Used at the end of a run and on errors. */
  async healAll(): Promise<void> {
    await this.healCurrent().catch((e: unknown) => this.errors.push(`final heal: ${String(e)}`));
    this.cluster.healNetwork();
    for (const m of this.cluster.members) {
      if (m.state === 'paused') m.resume();
      if (m.state === 'killed' || (m.state === 'running' && !m.running)) {
        if (m.joinPending) {
          this.errors.push(`${m.name} did not rejoin after a member replace; left stopped`);
          continue;
        }
        m.spawn('new');
        await m.waitReady(RESTART_READY_TIMEOUT_MS).catch((e: unknown) => this.errors.push(`restart ${m.name}: ${String(e)}`));
      }
    }
  }

  private names(): string[] {
    return this.cluster.members.map((m) => m.name);
  }

  private async leaderName(): Promise<string | undefined> {
    return (await this.cluster.leader())?.name;
  }

  private async start(family: NemesisFamily, r: Prng): Promise<ActiveFault> {
    switch (family) {
      case 'partition':
        return this.partition(r);
      case 'isolate-leader':
        return this.partition(r, 'isolate-leader');
      case 'network':
        return this.network(r);
      case 'kill':
        return this.kill(r);
      case 'crash':
        return this.crash();
      case 'pause':
        return this.pause(r);
      case 'member':
        return this.memberReplace(r);
      case 'snapshot':
        return this.snapshotPartition(r);
    }
  }

  // ------------------------------------------------------------------ network faults

  private block(pairs: readonly Pair[], faults: LinkFaults = { ...NO_FAULTS, blocked: true }): () => Promise<void> {
    for (const [a, b] of pairs) this.cluster.proxy(a, b).setFaults(faults);
    return async () => {
      for (const [a, b] of pairs) this.cluster.proxy(a, b).heal();
    };
  }

  /** Every ordered pair with one end in `side` and the other not. */
  private cut(side: readonly string[]): Pair[] {
    const s = new Set(side);
    const out: Pair[] = [];
    for (const a of this.names()) for (const b of this.names()) if (a !== b && s.has(a) !== s.has(b)) out.push([a, b]);
    return out;
  }

  private async partition(r: Prng, only?: PartitionKind): Promise<ActiveFault> {
    const names = this.names();
    const kind = only ?? r.pick(PARTITION_KINDS);
    switch (kind) {
      case 'majority-minority': {
        const shuffled = r.shuffle(names);
        const minority = shuffled.slice(0, r.int(1, Math.floor((names.length - 1) / 2)));
        const heal = this.block(this.cut(minority));
        return { fault: 'partition-majority-minority', targets: minority, detail: `minority {${minority.join(',')}} | majority {${shuffled.slice(minority.length).join(',')}}`, heal };
      }
      case 'isolate-leader': {
        const leader = (await this.leaderName()) ?? r.pick(names);
        const heal = this.block(this.cut([leader]));
        return { fault: 'partition-isolate-leader', targets: [leader], detail: `leader ${leader} isolated`, heal };
      }
      case 'bridge': {
        // Jepsen's bridge: two halves that only the bridge member connects.
        const s = r.shuffle(names);
        const bridge = s[0];
        const half = Math.ceil((s.length - 1) / 2);
        const left = s.slice(1, 1 + half);
        const right = s.slice(1 + half);
        const pairs: Pair[] = [];
        for (const a of left) for (const b of right) pairs.push([a, b], [b, a]);
        const heal = this.block(pairs);
        return { fault: 'partition-bridge', targets: [bridge], detail: `bridge ${bridge} between {${left.join(',')}} and {${right.join(',')}}`, heal };
      }
      case 'one-way': {
        const leader = await this.leaderName();
        const src = leader !== undefined && r.chance(0.5) ? leader : r.pick(names);
        const others = names.filter((n) => n !== src);
        const dsts = r.shuffle(others).slice(0, r.int(1, others.length));
        const heal = this.block(dsts.map((d) => [src, d] as const));
        return { fault: 'partition-one-way', targets: [src], detail: `${src} cannot send to {${dsts.join(',')}} (they can still send to it)`, heal };
      }
      case 'random': {
        const pairs: Pair[] = [];
        for (const a of names) for (const b of names) if (a !== b && r.chance(0.5)) pairs.push([a, b]);
        if (pairs.length === 0) pairs.push([names[0], names[1]]);
        const heal = this.block(pairs);
        return { fault: 'partition-random', targets: [...new Set(pairs.flat())], detail: `blocked ${pairs.map(([a, b]) => `${a}→${b}`).join(' ')}`, heal };
      }
    }
  }

  private network(r: Prng): ActiveFault {
    const all: Pair[] = [];
    for (const a of this.names()) for (const b of this.names()) if (a !== b) all.push([a, b]);
    if (r.chance(0.5)) {
      const delayMs = r.int(DELAY_MS_RANGE[0], DELAY_MS_RANGE[1]);
      const jitterMs = Math.round(delayMs / 2);
      const heal = this.block(all, { ...NO_FAULTS, delayMs, jitterMs });
      return { fault: 'network-delay', targets: this.names(), detail: `every peer link delayed ${delayMs} ± ${jitterMs} ms`, heal };
    }
    const p = Math.round((LOSS_PROBABILITY_RANGE[0] + r.float() * (LOSS_PROBABILITY_RANGE[1] - LOSS_PROBABILITY_RANGE[0])) * 100) / 100;
    const heal = this.block(all, { ...NO_FAULTS, lossProbability: p, delayMs: 1, jitterMs: 1 });
    return { fault: 'network-loss', targets: this.names(), detail: `every peer link loses ${Math.round(p * 100)}% of segments (TCP retransmits after ${200} ms)`, heal };
  }

  // ------------------------------------------------------------------ process faults

  private async pickMembers(r: Prng, allowMinority: boolean): Promise<{ members: Member[]; why: string }> {
    const x = r.float();
    const leader = await this.cluster.leader();
    if (x < 0.4 && leader !== undefined) return { members: [leader], why: 'the leader' };
    if (allowMinority && x > 0.8 && this.cluster.members.length >= 5) {
      const k = Math.floor((this.cluster.members.length - 1) / 2);
      return { members: r.shuffle(this.cluster.members).slice(0, k), why: 'a minority' };
    }
    return { members: [r.pick(this.cluster.members)], why: 'a member' };
  }

  private async kill(r: Prng): Promise<ActiveFault> {
    const { members, why } = await this.pickMembers(r, true);
    return this.sigkill(members, 'kill', `SIGKILL ${why}`);
  }

  private crash(): ActiveFault {
    const members = this.cluster.members.filter((m) => m.state === 'running');
    return this.sigkill(members, 'crash', `SIGKILL every member at once${this.cluster.loseUnsyncedWrites ? ', losing unsynced writes' : ''}`);
  }

  /** SIGKILL `members` now; the heal restarts them from their data dirs. */
  private sigkill(members: Member[], fault: string, what: string): ActiveFault {
    for (const m of members) {
      m.log(`${what} by the nemesis`);
      m.kill();
    }
    return {
      fault,
      targets: members.map((m) => m.name),
      detail: `${what}, restart after the hold`,
      heal: async () => {
        for (const m of members) await m.waitExit();
        for (const m of members) m.spawn('new');
        for (const m of members) await m.waitReady(RESTART_READY_TIMEOUT_MS);
      },
    };
  }

  private async pause(r: Prng): Promise<ActiveFault> {
    const { members, why } = await this.pickMembers(r, true);
    for (const m of members) m.pause();
    return {
      fault: 'pause',
      targets: members.map((m) => m.name),
      detail: `SIGSTOP ${why}, SIGCONT after the hold`,
      heal: async () => {
        for (const m of members) m.resume();
      },
    };
  }

  // ------------------------------------------------------------------ membership

  private async memberReplace(r: Prng): Promise<ActiveFault> {
    const m = r.pick(this.cluster.members);
    const steps: string[] = [];
    const f: ActiveFault = {
      fault: 'member-replace',
      targets: [m.name],
      detail: `replace ${m.name} (old id ${m.id})`,
      // The replacement is the fault: run it entirely inside the window.
      hold: async () => {
        await this.cluster.replaceMember(m, (s) => steps.push(s));
        f.detail = `replace ${m.name}: ${steps.join('; ')}`;
      },
      heal: async () => {
        if (!m.running) {
          m.spawn('existing');
          await m.waitReady(RESTART_READY_TIMEOUT_MS);
        }
      },
    };
    return f;
  }

  /** Isolate a follower until the cluster has moved far enough ahead that it needs a snapshot. */
  private async snapshotPartition(r: Prng): Promise<ActiveFault> {
    const leader = await this.cluster.leader();
    const followers = this.cluster.members.filter((m) => m !== leader);
    const m = r.pick(followers.length > 0 ? followers : this.cluster.members);
    const heal = this.block(this.cut([m.name]));
    const needed = this.cluster.snapshotCount + SNAPSHOT_CATCHUP_ENTRIES;
    const lagTarget = needed + SNAPSHOT_LAG_MARGIN_ENTRIES;
    const f: ActiveFault = {
      fault: 'partition-until-snapshot',
      targets: [m.name],
      detail: `${m.name} isolated until it lags by ${lagTarget} entries`,
      hold: async (_plannedMs, stopped) => {
        const end = Date.now() + MAX_SNAPSHOT_PARTITION_MS;
        let lag = 0;
        while (Date.now() < end && !stopped()) {
          const l = await this.cluster.leader();
          const ls = l && l !== m ? await l.status() : undefined;
          const ms = await m.status();
          if (ls !== undefined && ms !== undefined) {
            lag = ls.raftIndex - ms.raftAppliedIndex;
            if (lag >= lagTarget) break;
          }
          await sleep(NEMESIS_POLL_MS);
        }
        f.detail = `${m.name} isolated until it lagged by ${lag} entries (needs > ${needed} for a snapshot)`;
      },
      heal,
    };
    return f;
  }
}
