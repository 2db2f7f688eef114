/**
 * Linearizability of independent registers (read / write / compare-and-set), checked per key with
 * the Wing–Gong–Lowe search (wgl.ts). Keys are independent objects, so a history is linearizable
 * iff each key's sub-history is (Herlihy & Wing's locality), which keeps each search small.
 *
 * The register model's state is the key's value (null = absent). Compare-and-set on mod_revision is
 * translated into compare-and-set on the value written at that revision: the workload writes unique
 * values per key, so "mod_revision == m" holds exactly when the value is the one written at m
 * (m = 0: the key is absent). The value ↔ mod_revision map comes from every ok response that shows
 * both (write and cas headers, reads, else-branch reads, lists), and is itself checked: one
 * revision with two values for a key is a violation.
 */
import { type CasOp, type History, type KeyValueString, type PairedOp, pairOperations } from '../history';
import { AnomalySink, type Anomaly, type JsonValue, type Verdict, nowMs } from './verdict';
import { type SequentialModel, type WglLimits, type WglOp, DEFAULT_WGL_LIMITS, checkWgl } from './wgl';

export type RegisterInput =
  | { readonly kind: 'read'; readonly value: KeyValueString }
  | { readonly kind: 'write'; readonly value: KeyValueString }
  | { readonly kind: 'cas'; readonly expected: Expected; readonly value: KeyValueString }
  /** A cas whose compare failed and whose else-branch read `observed`. */
  | { readonly kind: 'cas-failed'; readonly expected: Expected; readonly observed: KeyValueString };

/**
 * What a cas compares against: one value, or (a compare on a mod_revision no ok response revealed)
 * any value whose write had an unknown outcome and so an unknown revision.
 */
export type Expected = KeyValueString | { readonly anyOf: ReadonlySet<string>; readonly modRevision: number };

function holds(state: KeyValueString, e: Expected): boolean {
  if (e === null || typeof e === 'string') return state === e;
  return state !== null && e.anyOf.has(state);
}

export const registerModel = (initial: KeyValueString = null): SequentialModel<KeyValueString, RegisterInput> => ({
  init: initial,
  step(state, input) {
    switch (input.kind) {
      case 'read':
        return state === input.value ? state : undefined;
      case 'write':
        return input.value;
      case 'cas':
        return holds(state, input.expected) ? input.value : undefined;
      case 'cas-failed':
        return state === input.observed && !holds(state, input.expected) ? state : undefined;
    }
  },
  // Distinguish null from the string "null".
  stateKey: (s) => (s === null ? 0 : 's' + s),
  // Blind writes of one value have the same effect in every state.
  isReadOnly: (i) => i.kind === 'read' || i.kind === 'cas-failed',
  symmetryKey: (i) => (i.kind === 'write' ? (i.value === null ? 'delete' : 'put:' + i.value) : undefined),
});


export interface LinearizabilityOptions {
  readonly limits?: WglLimits;
  /** The value every key starts with; null (absent) by default. */
  readonly initialValue?: KeyValueString;
  /** Look for direct witnesses before searching (default true); false forces the full search. */
  readonly witnesses?: boolean;
}

type RegisterPaired = PairedOp & { readonly f: 'read' | 'write' | 'cas' };

function isRegisterOp(op: PairedOp): op is RegisterPaired {
  return op.f === 'read' || op.f === 'write' || op.f === 'cas';
}

function keyOf(op: RegisterPaired): string {
  return (op.invoke as { key: string }).key;
}

/** Per key, every (mod_revision → value) an ok response showed; conflicts are anomalies. */
function revisionValues(ops: readonly RegisterPaired[], key: string, sink: AnomalySink): Map<number, { value: KeyValueString; op: number }> {
  const m = new Map<number, { value: KeyValueString; op: number }>();
  const learn = (rev: number | undefined, value: KeyValueString, op: number): void => {
    if (rev === undefined || rev <= 0) return;
    const known = m.get(rev);
    if (known === undefined) m.set(rev, { value, op });
    else if (known.value !== value) {
      sink.add({
        type: 'revision-value-mismatch',
        message: `key ${JSON.stringify(key)} has two values at mod_revision ${rev}: ${JSON.stringify(known.value)} and ${JSON.stringify(value)}`,
        ops: [known.op, op],
        keys: [key],
      });
    }
  };
  for (const op of ops) {
    const c = op.complete;
    if (c === undefined) continue;
    if (op.outcome === 'ok') {
      if (c.f === 'read') {
        if (c.value !== null && c.value !== undefined) learn(c.modRevision, c.value, op.id);
      } else if (c.f === 'write' || c.f === 'cas') {
        // A delete's revision is a tombstone: compares see mod_revision 0, so nothing to learn.
        if (c.value !== null) learn(c.revision, c.value, op.id);
      }
    } else if (op.outcome === 'fail' && c.f === 'cas' && c.observed !== undefined && c.observed.value !== null) {
      learn(c.observed.modRevision, c.observed.value, op.id);
    }
  }
  return m;
}

function usesModRevisionCas(ops: readonly RegisterPaired[]): boolean {
  return ops.some((o) => o.invoke.f === 'cas' && 'modRevision' in o.invoke.expected);
}

/** mod_revision compares translate to value compares only if no value is written twice. */
function hasDuplicateWrites(ops: readonly RegisterPaired[]): boolean {
  const seen = new Set<string>();
  for (const o of ops) {
    const inv = o.invoke;
    if ((inv.f === 'write' || inv.f === 'cas') && inv.value !== null) {
      if (seen.has(inv.value)) return true;
      seen.add(inv.value);
    }
  }
  return false;
}

function expectedValue(exp: CasOp['expected'], revs: Map<number, { value: KeyValueString }>, unrevisioned: ReadonlySet<string>): Expected {
  if ('value' in exp) return exp.value;
  if (exp.modRevision === 0) return null;
  const known = revs.get(exp.modRevision);
  return known === undefined ? { anyOf: unrevisioned, modRevision: exp.modRevision } : known.value;
}

/** Values written by ops whose commit revision no response revealed (info writes, mostly). */
function unrevisionedValues(ops: readonly RegisterPaired[], revs: Map<number, { value: KeyValueString }>): Set<string> {
  const revealed = new Set<KeyValueString>();
  for (const { value } of revs.values()) revealed.add(value);
  const out = new Set<string>();
  for (const o of ops) {
    const inv = o.invoke;
    if ((inv.f === 'write' || inv.f === 'cas') && inv.value !== null && o.outcome !== 'fail' && !revealed.has(inv.value)) out.add(inv.value);
  }
  return out;
}

/** The WGL inputs for one key; info reads and plain failures are dropped (they have no effect). */
function toWglOps(ops: readonly RegisterPaired[], revs: Map<number, { value: KeyValueString }>): WglOp<RegisterInput>[] {
  const unrevisioned = unrevisionedValues(ops, revs);
  const out: WglOp<RegisterInput>[] = [];
  for (const op of ops) {
    const inv = op.invoke;
    const c = op.complete;
    if (op.outcome === 'fail') {
      if (c !== undefined && c.f === 'cas' && inv.f === 'cas' && c.observed !== undefined) {
        out.push({ id: op.id, callNs: op.invokeNs, returnNs: op.completeNs, input: { kind: 'cas-failed', expected: expectedValue(inv.expected, revs, unrevisioned), observed: c.observed.value } });
      }
      continue;
    }
    if (inv.f === 'read') {
      if (op.outcome === 'info' || c === undefined || c.f !== 'read') continue;
      out.push({ id: op.id, callNs: op.invokeNs, returnNs: op.completeNs, input: { kind: 'read', value: c.value ?? null } });
    } else if (inv.f === 'write') {
      out.push({ id: op.id, callNs: op.invokeNs, returnNs: op.completeNs, input: { kind: 'write', value: inv.value } });
    } else if (inv.f === 'cas') {
      out.push({ id: op.id, callNs: op.invokeNs, returnNs: op.completeNs, input: { kind: 'cas', expected: expectedValue(inv.expected, revs, unrevisioned), value: inv.value } });
    }
  }
  return tightenUnknownWrites(out);
}

/**
 * Bound the operations with unknown outcome, which otherwise make a failing search exponential (an
 * info op may be linearized anywhere after its call, so every subset of them is a new memo entry).
 * For an info write of a value u written by no other op (values are unique per key):
 * - if no op observes u (a read of u, a cas expecting u, an else-read of u), taking effect can
 *   only make later reads fail until the next write, so "never took effect" is always at least as
 *   good: drop it;
 * - if a determinate op observes u, the write certainly took effect before that op returned: give
 *   it the earliest such return as its return time, which makes it determinate.
 * Writes observed only by other info ops, and deletes (null is not unique), are left as they are.
 */
function tightenUnknownWrites(ops: WglOp<RegisterInput>[]): WglOp<RegisterInput>[] {
  const writers = new Map<string, number>();
  const firstObservedReturn = new Map<string, number>();
  const observedByUnknown = new Set<string>();
  const observe = (v: KeyValueString, op: WglOp<RegisterInput>): void => {
    if (v === null) return;
    if (op.returnNs === Infinity) observedByUnknown.add(v);
    else firstObservedReturn.set(v, Math.min(firstObservedReturn.get(v) ?? Infinity, op.returnNs));
  };
  for (const op of ops) {
    const i = op.input;
    if ((i.kind === 'write' || i.kind === 'cas') && i.value !== null) writers.set(i.value, (writers.get(i.value) ?? 0) + 1);
    if (i.kind === 'read') observe(i.value, op);
    if (i.kind === 'cas-failed') observe(i.observed, op);
    if (i.kind === 'cas') {
      const e = i.expected;
      if (e === null || typeof e === 'string') observe(e, op);
      else for (const v of e.anyOf) observedByUnknown.add(v);
    }
  }
  const out: WglOp<RegisterInput>[] = [];
  for (const op of ops) {
    const i = op.input;
    if (op.returnNs !== Infinity || (i.kind !== 'write' && i.kind !== 'cas') || i.value === null || writers.get(i.value) !== 1 || observedByUnknown.has(i.value)) {
      out.push(op);
      continue;
    }
    const by = firstObservedReturn.get(i.value);
    if (by === undefined) continue;
    out.push({ ...op, returnNs: Math.max(by, op.callNs) });
  }
  return out;
}

function describeInput(i: RegisterInput): string {
  const v = (x: Expected): string =>
    x === null ? 'absent' : typeof x === 'string' ? JSON.stringify(x) : `mod_revision ${x.modRevision} (one of ${x.anyOf.size} values of unknown revision)`;
  switch (i.kind) {
    case 'read':
      return `read → ${v(i.value)}`;
    case 'write':
      return i.value === null ? 'delete' : `write ${v(i.value)}`;
    case 'cas':
      return `cas ${v(i.expected)} → ${i.value === null ? 'delete' : v(i.value)}`;
    case 'cas-failed':
      return `cas ${v(i.expected)} failed, else-read ${v(i.observed)}`;
  }
}

/**
 * Name the violation by what the blocking operation saw. Values are unique per key, so the writer
 * of a value is known; "stale" means another write began after it finished and finished before the
 * reader began, so the value had certainly been overwritten.
 */
function classify(blocking: WglOp<RegisterInput>, all: readonly WglOp<RegisterInput>[]): string {
  const i = blocking.input;
  const seen = i.kind === 'read' ? i.value : i.kind === 'cas-failed' ? i.observed : undefined;
  if (seen === undefined) return i.kind === 'cas' ? 'cas-not-linearizable' : 'not-linearizable';
  const isWrite = (o: WglOp<RegisterInput>): boolean => o.input.kind === 'write' || o.input.kind === 'cas';
  const written = (o: WglOp<RegisterInput>): KeyValueString | undefined => (o.input.kind === 'write' || o.input.kind === 'cas' ? o.input.value : undefined);
  const writer = seen === null ? undefined : all.find((o) => isWrite(o) && written(o) === seen);
  if (seen !== null && writer === undefined) return 'read-of-unwritten-value';
  if (writer !== undefined && writer.callNs > blocking.returnNs) return 'read-from-future';
  const writtenBy = writer === undefined ? -Infinity : writer.returnNs;
  const overwritten = all.some(
    (o) => o.returnNs !== Infinity && o.input.kind === 'write' && written(o) !== seen && o.callNs > writtenBy && o.returnNs < blocking.callNs,
  );
  return overwritten ? 'stale-read' : 'not-linearizable';
}

/** A key with a direct witness gets at most this many reported; the rest are only counted. */
const MAX_WITNESSES_PER_KEY = 5;

/**
 * Violations with a direct, local proof, found in O(n log n) before the search (whose failing runs
 * must exhaust every linearization of the prefix). All rely on values being unique per key:
 * - read-of-unwritten-value: a read returned a value no operation wrote;
 * - read-from-future: the only write of the value began after the read returned;
 * - stale-read: the value's only write W finished, then another write W2 that certainly took
 *   effect began and finished, all before the read began: the register can never hold the value
 *   again. For a read of "absent", W2 is any put and no delete can fall between it and the read.
 */
function findWitnesses(key: string, ops: readonly WglOp<RegisterInput>[], initial: KeyValueString): Anomaly[] {
  const out: Anomaly[] = [];
  const writersOf = new Map<string, WglOp<RegisterInput>[]>();
  const certainWrites: WglOp<RegisterInput>[] = [];
  const nullProducers: WglOp<RegisterInput>[] = [];
  for (const op of ops) {
    const i = op.input;
    if (i.kind !== 'write' && i.kind !== 'cas') continue;
    if (i.value === null) nullProducers.push(op);
    else (writersOf.get(i.value) ?? writersOf.set(i.value, []).get(i.value)!).push(op);
    if (op.returnNs !== Infinity) certainWrites.push(op);
  }
  // certainWrites by call time, with the minimum return time of every suffix.
  certainWrites.sort((a, b) => a.callNs - b.callNs);
  const suffixMinReturn = new Float64Array(certainWrites.length + 1).fill(Infinity);
  const suffixArg = new Int32Array(certainWrites.length + 1).fill(-1);
  for (let j = certainWrites.length - 1; j >= 0; j--) {
    const better = certainWrites[j].returnNs < suffixMinReturn[j + 1];
    suffixMinReturn[j] = better ? certainWrites[j].returnNs : suffixMinReturn[j + 1];
    suffixArg[j] = better ? j : suffixArg[j + 1];
  }
  /** A certain write that began after `afterNs` and finished before `beforeNs`, if any. */
  const writeBetween = (afterNs: number, beforeNs: number): WglOp<RegisterInput> | undefined => {
    let lo = 0;
    let hi = certainWrites.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (certainWrites[mid].callNs > afterNs) hi = mid;
      else lo = mid + 1;
    }
    return suffixMinReturn[lo] < beforeNs ? certainWrites[suffixArg[lo]] : undefined;
  };
  const q = (v: KeyValueString): string => (v === null ? 'absent' : JSON.stringify(v));
  for (const r of ops) {
    const i = r.input;
    const seen = i.kind === 'read' ? i.value : i.kind === 'cas-failed' ? i.observed : undefined;
    if (seen === undefined || r.returnNs === Infinity) continue;
    if (seen === null) {
      const w = writeBetween(-Infinity, r.callNs);
      if (w === undefined) continue;
      // The latest-starting certain put that finished before the read began.
      let latest: WglOp<RegisterInput> | undefined;
      for (const c of certainWrites) {
        if (c.callNs >= r.callNs) break;
        const cv = c.input.kind === 'write' || c.input.kind === 'cas' ? c.input.value : null;
        if (cv !== null && c.returnNs < r.callNs && (latest === undefined || c.callNs > latest.callNs)) latest = c;
      }
      if (latest === undefined) continue;
      // Touching intervals count as concurrent, as in the search.
      const deleteCouldFollow = nullProducers.some((d) => d.returnNs >= latest!.callNs && d.callNs <= r.returnNs);
      if (!deleteCouldFollow) {
        out.push({
          type: 'stale-read',
          message: `key ${JSON.stringify(key)}: op #${r.id} read absent, but put #${latest.id} finished before it began and no delete could have come between.`,
          ops: [r.id, latest.id],
          keys: [key],
          evidence: { read: r.id, put: latest.id },
        });
      }
      continue;
    }
    const writers = writersOf.get(seen) ?? [];
    if (writers.length === 0) {
      if (seen !== initial) {
        out.push({ type: 'read-of-unwritten-value', message: `key ${JSON.stringify(key)}: op #${r.id} read ${q(seen)}, which no operation wrote.`, ops: [r.id], keys: [key], evidence: { read: r.id, value: seen } });
      }
      continue;
    }
    if (writers.length > 1) continue;
    const w = writers[0];
    if (w.callNs > r.returnNs) {
      out.push({ type: 'read-from-future', message: `key ${JSON.stringify(key)}: op #${r.id} read ${q(seen)}, written only by op #${w.id}, which began after the read returned.`, ops: [r.id, w.id], keys: [key], evidence: { read: r.id, writer: w.id } });
      continue;
    }
    const w2 = writeBetween(w.returnNs, r.callNs);
    if (w2 !== undefined) {
      out.push({
        type: 'stale-read',
        message:
          `key ${JSON.stringify(key)}: op #${r.id} read ${q(seen)}, written only by op #${w.id}; but op #${w2.id} (${describeInput(w2.input)}) ` +
          `began after #${w.id} finished and finished before #${r.id} began, so the value had certainly been overwritten.`,
        ops: [r.id, w.id, w2.id],
        keys: [key],
        evidence: { read: r.id, writer: w.id, overwrittenBy: w2.id, value: seen },
      });
    }
  }
  return out;
}

function fmt(x: KeyValueString): JsonValue {
  return x;
}

function checkKey(key: string, ops: readonly RegisterPaired[], sink: AnomalySink, opts: LinearizabilityOptions): { status: 'ok' | 'illegal' | 'unknown'; steps: number; wglOps: number; reason?: string } {
  const revs = revisionValues(ops, key, sink);
  if (usesModRevisionCas(ops) && hasDuplicateWrites(ops)) return { status: 'unknown', steps: 0, wglOps: 0, reason: 'cas on mod_revision with a value written twice (values must be unique per key)' };
  const wglOps = toWglOps(ops, revs);
  const witnesses = opts.witnesses === false ? [] : findWitnesses(key, wglOps, opts.initialValue ?? null);
  if (witnesses.length > 0) {
    for (const w of witnesses.slice(0, MAX_WITNESSES_PER_KEY)) sink.add(w);
    return { status: 'illegal', steps: 0, wglOps: wglOps.length };
  }
  const res = checkWgl(registerModel(opts.initialValue ?? null), wglOps, opts.limits ?? DEFAULT_WGL_LIMITS);
  if (res.result === 'ok') return { status: 'ok', steps: res.steps, wglOps: wglOps.length };
  if (res.result === 'unknown') return { status: 'unknown', steps: res.steps, wglOps: wglOps.length, reason: res.reason };
  const ce = res.counterexample;
  const byId = new Map(wglOps.map((o) => [o.id, o]));
  const blocking = byId.get(ce.blockingOpId)!;
  const type = classify(blocking, wglOps);
  const tailDesc = ce.prefixTail.map((id) => `#${id} ${describeInput(byId.get(id)!.input)}`);
  const pendingDesc = ce.pending.map((id) => `#${id} ${describeInput(byId.get(id)!.input)}`);
  const a: Anomaly = {
    type,
    message:
      `key ${JSON.stringify(key)}: op #${blocking.id} (${describeInput(blocking.input)}) cannot be linearized. ` +
      `After the longest linearizable prefix (${ce.prefixLength} ops) the register holds ` +
      `${ce.stateAfterPrefix === null ? 'nothing (absent)' : JSON.stringify(ce.stateAfterPrefix)}, and no order of the ` +
      `${ce.pending.length} concurrent op(s) makes it possible.`,
    ops: [blocking.id, ...ce.pending, ...ce.prefixTail.slice(-3)],
    keys: [key],
    evidence: {
      blockingOp: blocking.id,
      blocking: describeInput(blocking.input),
      prefixLength: ce.prefixLength,
      prefixTail: tailDesc,
      stateAfterPrefix: fmt(ce.stateAfterPrefix),
      concurrent: pendingDesc,
    },
  };
  sink.add(a);
  return { status: 'illegal', steps: res.steps, wglOps: wglOps.length };
}

/** Check every register key in the history. Non-register operations are ignored. */
export function checkLinearizability(history: History, opts: LinearizabilityOptions = {}): Verdict {
  const t0 = nowMs();
  const byKey = new Map<string, RegisterPaired[]>();
  for (const op of pairOperations(history)) {
    if (!isRegisterOp(op)) continue;
    const k = keyOf(op);
    let list = byKey.get(k);
    if (list === undefined) byKey.set(k, (list = []));
    list.push(op);
  }
  const sink = new AnomalySink();
  let steps = 0;
  let ops = 0;
  let illegalKeys = 0;
  const unknownKeys: string[] = [];
  const unknownReasons = new Set<string>();
  for (const [key, list] of [...byKey].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
    const r = checkKey(key, list, sink, opts);
    steps += r.steps;
    ops += r.wglOps;
    if (r.status === 'illegal') illegalKeys++;
    if (r.status === 'unknown') {
      unknownKeys.push(key);
      unknownReasons.add(r.reason ?? 'unknown');
    }
  }
  const status = sink.count > 0 ? 'fail' : unknownKeys.length > 0 ? 'unknown' : 'pass';
  const summary =
    status === 'pass'
      ? `${byKey.size} keys, ${ops} ops linearizable`
      : status === 'unknown'
        ? `could not decide ${unknownKeys.length} key(s) (${[...unknownReasons].join('; ')}): ${unknownKeys.slice(0, 5).join(', ')}`
        : `${illegalKeys} of ${byKey.size} keys not linearizable (${sink.typesSummary()})`;
  return {
    checker: 'linearizability',
    status,
    summary,
    stats: { keys: byKey.size, ops, searchSteps: steps, illegalKeys, unknownKeys: unknownKeys.length, anomalies: sink.count },
    anomalies: sink.list,
    durationMs: nowMs() - t0,
  };
}
