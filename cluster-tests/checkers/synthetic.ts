/**
 * Seeded synthetic histories for checker self-tests: a simulated store that is correct by
 * construction (every operation takes effect atomically at a random point inside its interval), plus
 * mutations that inject one known violation. Replaying a seed gives the same history.
 */
import { mulberry32 } from '../prng';
import type { CasExpectation, HistoryEntry, KeyValueString, KvSnapshot, MicroOp, Operation, WatchEvent } from '../history';

/** Seeded randomness for test data: the harness's own generator. */
export const rng = mulberry32;

export interface SimOptions {
  readonly seed: number;
  readonly clients: number;
  readonly keys: number;
  readonly ops: number;
  /** Probability an operation times out (completes as info). */
  readonly pInfo: number;
  /** Mean operation latency; actual latency is uniform in [0.2, 1.8] × mean. */
  readonly meanLatencyNs: number;
}

export const DEFAULT_SIM: SimOptions = { seed: 1, clients: 8, keys: 4, ops: 2_000, pInfo: 0.02, meanLatencyNs: 1_000_000 };

interface PlannedOp {
  process: number;
  invokeNs: number;
  linNs: number;
  completeNs: number;
  /** Timed out: recorded as info at completeNs; takes effect at linNs only if `applies`. */
  timeout: boolean;
  applies: boolean;
  /** Computes the op at its linearization point; `applies` false = it must change nothing. */
  make: (ctx: ApplyContext, applies: boolean, timeout: boolean) => { invoke: Operation; complete: Operation };
}

interface ApplyContext {
  readonly r: () => number;
  nextRevision(): number;
  readonly revision: number;
}

/**
 * Plan operations per client: sequential per process, a new process id after each timeout (Jepsen
 * convention), then apply them in linearization-point order to compute results.
 */
function simulate(o: SimOptions, planOne: (r: () => number) => PlannedOp['make']): HistoryEntry[] {
  const r = rng(o.seed);
  const planned: PlannedOp[] = [];
  const clientTime = new Array<number>(o.clients).fill(0);
  const clientProcess = Array.from({ length: o.clients }, (_, i) => i);
  let nextProcess = o.clients;
  for (let i = 0; i < o.ops; i++) {
    const c = Math.floor(r() * o.clients);
    const invokeNs = clientTime[c] + Math.floor(r() * o.meanLatencyNs * 0.5);
    const latency = Math.floor(o.meanLatencyNs * (0.2 + 1.6 * r()));
    const timeout = r() < o.pInfo;
    const completeNs = invokeNs + latency + 1;
    // A timed-out request may still take effect much later (it was stuck in a queue).
    const linNs = timeout ? invokeNs + 1 + Math.floor(r() * latency * 3) : invokeNs + 1 + Math.floor(r() * latency);
    planned.push({ process: clientProcess[c], invokeNs, linNs, completeNs, timeout, applies: !timeout || r() < 0.5, make: planOne(r) });
    clientTime[c] = completeNs + 1;
    if (timeout) clientProcess[c] = nextProcess++;
  }
  let revision = 1;
  const ctx: ApplyContext = {
    r,
    nextRevision: () => ++revision,
    get revision() {
      return revision;
    },
  };
  const timed: { timeNs: number; order: number; entry: Operation }[] = [];
  const byLin = planned.map((p, i) => ({ p, i })).sort((a, b) => a.p.linNs - b.p.linNs || a.i - b.i);
  for (const { p, i } of byLin) {
    const { invoke, complete } = p.make(ctx, p.applies, p.timeout);
    timed.push({ timeNs: p.invokeNs, order: 2 * i, entry: { ...invoke, process: p.process, timeNs: p.invokeNs } });
    if (p.timeout) {
      timed.push({ timeNs: p.completeNs, order: 2 * i + 1, entry: { ...invoke, type: 'info', process: p.process, timeNs: p.completeNs, error: 'timeout' } as Operation });
    } else {
      timed.push({ timeNs: p.completeNs, order: 2 * i + 1, entry: { ...complete, process: p.process, timeNs: p.completeNs } });
    }
  }
  timed.sort((a, b) => a.timeNs - b.timeNs || a.order - b.order);
  return timed.map((t) => t.entry);
}

// ---------------------------------------------------------------------------------------------
// Registers

/**
 * A linearizable register history: reads, writes, deletes and cas (on value or mod_revision, some
 * with an else-read) on `keys` independent keys, with timeouts that did or did not take effect.
 */
export function simulateRegisters(opts: Partial<SimOptions> = {}): HistoryEntry[] {
  const o = { ...DEFAULT_SIM, ...opts };
  const state = new Map<string, { value: KeyValueString; modRevision: number }>();
  // mod_revisions some ok response revealed to clients, per key: a real client only compares
  // against revisions it was told (by a read, a write's header or an else-read).
  const revealed = new Map<string, number[]>();
  const reveal = (key: string, rev: number): void => {
    if (rev > 0) (revealed.get(key) ?? revealed.set(key, []).get(key)!).push(rev);
  };
  let counter = 0;
  const planOne = (r: () => number): PlannedOp['make'] => {
    const key = `k${Math.floor(r() * o.keys)}`;
    const dice = r();
    const byRevision = r() < 0.5;
    const matches = r() < 0.6;
    const withElse = r() < 0.5;
    const pick = r();
    return (ctx, applies, timeout) => {
      const cur = state.get(key) ?? { value: null, modRevision: 0 };
      const base = { kind: 'op' as const, process: 0, timeNs: 0 };
      if (dice < 0.45) {
        if (!timeout && cur.value !== null) reveal(key, cur.modRevision);
        const inv: Operation = { ...base, type: 'invoke', f: 'read', key };
        return { invoke: inv, complete: { ...base, type: 'ok', f: 'read', key, value: cur.value, modRevision: cur.modRevision, revision: ctx.revision } };
      }
      if (dice < 0.75) {
        // Mostly puts of fresh values, some deletes.
        const value = dice < 0.72 ? `${key}-v${++counter}` : null;
        if (applies) {
          const rev = ctx.nextRevision();
          state.set(key, { value, modRevision: value === null ? 0 : rev });
          if (!timeout && value !== null) reveal(key, rev);
        }
        const inv: Operation = { ...base, type: 'invoke', f: 'write', key, value };
        return { invoke: inv, complete: { ...inv, type: 'ok', revision: ctx.revision } };
      }
      const known = revealed.get(key) ?? [];
      let expected: CasExpectation;
      let ok = matches;
      if (byRevision && matches && (cur.modRevision === 0 || known.includes(cur.modRevision))) expected = { modRevision: cur.modRevision };
      else if (byRevision && !matches && known.some((k) => k !== cur.modRevision)) {
        const others = known.filter((k) => k !== cur.modRevision);
        expected = { modRevision: others[Math.floor(pick * others.length)] };
      } else {
        expected = { value: matches ? cur.value : `${key}-never` };
        ok = matches;
      }
      const value = `${key}-v${++counter}`;
      const inv: Operation = { ...base, type: 'invoke', f: 'cas', key, expected, value };
      if (ok) {
        if (applies) {
          const rev = ctx.nextRevision();
          state.set(key, { value, modRevision: rev });
          if (!timeout) reveal(key, rev);
        }
        return { invoke: inv, complete: { ...inv, type: 'ok', revision: ctx.revision } };
      }
      const observed = withElse ? { value: cur.value, modRevision: cur.modRevision } : undefined;
      if (observed !== undefined && !timeout) reveal(key, cur.modRevision);
      return { invoke: inv, complete: { ...inv, type: 'fail', observed, revision: ctx.revision } };
    };
  };
  return simulate(o, planOne);
}

// ---------------------------------------------------------------------------------------------
// Mutations that inject one violation.

/** Change the value of the `which`-th ok read (of a key with a value) to one never written. */
export function mutateReadToImpossible(entries: readonly HistoryEntry[], which = 0): HistoryEntry[] {
  const out = entries.slice();
  let seen = 0;
  for (let i = 0; i < out.length; i++) {
    const e = out[i];
    if (e.kind === 'op' && e.f === 'read' && e.type === 'ok') {
      if (seen++ === which) {
        out[i] = { ...e, value: `${e.key}-impossible`, modRevision: undefined };
        return out;
      }
    }
  }
  throw new Error('mutateReadToImpossible: no ok read to mutate');
}

/**
 * Make one read stale: find an ok read R of key k, and an ok write W1 of a value u to k such that
 * another ok write W2 of k began after W1 finished and finished before R began. R returning u is
 * then certainly non-linearizable (values are unique). Returns the mutated history and R's index.
 */
export function mutateStaleRead(entries: readonly HistoryEntry[], startAt = 0): { entries: HistoryEntry[]; readIndex: number } {
  const out = entries.slice();
  type W = { value: KeyValueString; invokeNs: number; completeNs: number };
  const inflight = new Map<number, { idx: number; op: Operation }>();
  const doneWrites = new Map<string, W[]>();
  for (let i = 0; i < out.length; i++) {
    const e = out[i];
    if (e.kind !== 'op') continue;
    if (e.type === 'invoke') {
      inflight.set(e.process, { idx: i, op: e });
      continue;
    }
    const inv = inflight.get(e.process);
    inflight.delete(e.process);
    if (inv === undefined || e.type !== 'ok') continue;
    if (e.f === 'write' || e.f === 'cas') {
      const list = doneWrites.get(e.key) ?? [];
      list.push({ value: e.value, invokeNs: inv.op.timeNs, completeNs: e.timeNs });
      doneWrites.set(e.key, list);
    } else if (e.f === 'read' && i >= startAt) {
      const ws = doneWrites.get(e.key) ?? [];
      for (const w1 of ws) {
        if (w1.value === null || w1.value === e.value) continue;
        const w2 = ws.find((w) => w.invokeNs > w1.completeNs && w.completeNs < inv.op.timeNs && w.value !== w1.value);
        if (w2 !== undefined) {
          out[i] = { ...e, value: w1.value, modRevision: undefined };
          return { entries: out, readIndex: inv.idx };
        }
      }
    }
  }
  throw new Error('mutateStaleRead: no candidate read');
}

// ---------------------------------------------------------------------------------------------
// List-append

/** A strict-serializable list-append history: txns of 1–4 appends/reads over `keys` keys. */
export function simulateListAppend(opts: Partial<SimOptions> = {}): HistoryEntry[] {
  const o = { ...DEFAULT_SIM, ...opts };
  const lists = new Map<string, number[]>();
  const nextElement = new Map<string, number>();
  const planOne = (r: () => number): PlannedOp['make'] => {
    const n = 1 + Math.floor(r() * 4);
    const plan: { f: 'append' | 'r'; key: string }[] = [];
    for (let j = 0; j < n; j++) plan.push({ f: r() < 0.5 ? 'append' : 'r', key: `x${Math.floor(r() * o.keys)}` });
    return (_ctx, applies) => {
      const invokeMops: MicroOp[] = [];
      const doneMops: MicroOp[] = [];
      for (const m of plan) {
        if (m.f === 'append') {
          const el = (nextElement.get(m.key) ?? 0) + 1;
          nextElement.set(m.key, el);
          if (applies) {
            const l = lists.get(m.key) ?? [];
            l.push(el);
            lists.set(m.key, l);
          }
          invokeMops.push({ f: 'append', key: m.key, value: el });
          doneMops.push({ f: 'append', key: m.key, value: el });
        } else {
          invokeMops.push({ f: 'r', key: m.key, value: null });
          doneMops.push({ f: 'r', key: m.key, value: (lists.get(m.key) ?? []).slice() });
        }
      }
      const base = { kind: 'op' as const, process: 0, timeNs: 0, f: 'txn' as const };
      return { invoke: { ...base, type: 'invoke', value: invokeMops }, complete: { ...base, type: 'ok', value: doneMops } };
    };
  };
  const entries = simulate(o, planOne);
  const lastNs = entries.reduce((m, e) => Math.max(m, e.timeNs), 0);
  const p = 1_000_000;
  const finalLists = [...lists].sort().map(([key, value]) => ({ key, value: value.slice() }));
  entries.push({ kind: 'op', process: p, type: 'invoke', f: 'final-read', timeNs: lastNs + 10 });
  entries.push({ kind: 'op', process: p, type: 'ok', f: 'final-read', timeNs: lastNs + 20, lists: finalLists });
  return entries;
}

// ---------------------------------------------------------------------------------------------
// Watches

export interface WatchSimOptions {
  readonly seed: number;
  /** Committed revisions after revision 1. */
  readonly revisions: number;
  readonly keys: number;
  readonly watchers: number;
  /** Probability a revision is a multi-key txn (2–3 keys). */
  readonly pTxn: number;
  readonly pDelete: number;
}

/**
 * A store's write log as watch events (the ground truth), and watchers that each observe a range
 * from a start revision, in responses that keep revisions whole, with progress notifications and
 * prev_kv. Every guarantee holds by construction.
 */
export function simulateWatches(opts: Partial<WatchSimOptions> = {}): HistoryEntry[] {
  const o: WatchSimOptions = { seed: 7, revisions: 300, keys: 5, watchers: 4, pTxn: 0.2, pDelete: 0.15, ...opts };
  const r = rng(o.seed);
  const state = new Map<string, KvSnapshot>();
  const log: { revision: number; events: WatchEvent[] }[] = [];
  const out: HistoryEntry[] = [];
  let t = 1_000;
  for (let rev = 2; rev < 2 + o.revisions; rev++) {
    const nKeys = r() < o.pTxn ? 2 + Math.floor(r() * 2) : 1;
    const keys = new Set<string>();
    while (keys.size < nKeys) keys.add(`/w/k${Math.floor(r() * o.keys)}`);
    const events: WatchEvent[] = [];
    for (const key of [...keys].sort()) {
      const prev = state.get(key);
      if (prev !== undefined && r() < o.pDelete) {
        events.push({ type: 'DELETE', key, value: '', modRevision: rev, prevKv: prev });
        state.delete(key);
      } else {
        const kv: KvSnapshot = { key, value: `${key}@${rev}`, modRevision: rev, createRevision: prev?.createRevision ?? rev, version: (prev?.version ?? 0) + 1 };
        events.push({ type: 'PUT', key, value: kv.value, modRevision: rev, createRevision: kv.createRevision, version: kv.version, prevKv: prev });
        state.set(key, kv);
      }
    }
    log.push({ revision: rev, events });
    // The writer's ok, so the watch checker also sees writes from the KV side.
    const process = 100 + (rev % 3);
    for (const ev of events.slice(0, 1)) {
      if (events.length > 1) break;
      out.push({ kind: 'op', process, type: 'invoke', f: 'write', key: ev.key, value: ev.type === 'PUT' ? ev.value : null, timeNs: t });
      out.push({ kind: 'op', process, type: 'ok', f: 'write', key: ev.key, value: ev.type === 'PUT' ? ev.value : null, timeNs: t + 5, revision: rev });
    }
    t += 10;
  }
  const lastRev = 1 + o.revisions;
  for (let w = 0; w < o.watchers; w++) {
    const watcher = `w${w}`;
    const wide = r() < 0.6;
    const key = wide ? '/w/' : `/w/k${Math.floor(r() * o.keys)}`;
    const rangeEnd = wide ? '/w0' : undefined;
    const startRevision = r() < 0.3 ? 2 : 2 + Math.floor(r() * o.revisions * 0.5);
    let tw = 500 + w;
    out.push({ kind: 'watch-open', watcher, process: 200 + w, timeNs: tw, key, rangeEnd, startRevision, prevKv: true, progressNotify: true });
    out.push({ kind: 'watch-response', watcher, timeNs: ++tw, revision: startRevision - 1, events: [], created: true });
    let batch: WatchEvent[] = [];
    const flush = (rev: number): void => {
      out.push({ kind: 'watch-response', watcher, timeNs: ++tw, revision: rev, events: batch });
      batch = [];
    };
    for (const { revision, events } of log) {
      if (revision < startRevision) continue;
      const matched = events.filter((e) => (rangeEnd === undefined ? e.key === key : e.key >= key && e.key < rangeEnd));
      batch.push(...matched);
      if (batch.length > 0 && r() < 0.5) flush(revision);
      if (batch.length === 0 && r() < 0.05) out.push({ kind: 'watch-response', watcher, timeNs: ++tw, revision, events: [], progressNotify: true });
    }
    if (batch.length > 0) flush(lastRev);
    out.push({ kind: 'watch-response', watcher, timeNs: ++tw, revision: lastRev, events: [], progressNotify: true });
    out.push({ kind: 'watch-close', watcher, timeNs: ++tw, reason: 'end of run' });
  }
  return out.sort((a, b) => a.timeNs - b.timeNs);
}
