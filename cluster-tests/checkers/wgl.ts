/**
 * The Wing–Gong linearizability search with Lowe's memoisation ("Testing for linearizability",
 * Lowe 2017), as used by Porcupine and Knossos' `wgl` checker. Generic over a sequential model.
 *
 * The history is a doubly linked list of call and return entries sorted by time. The search walks
 * the list: at a call it tries to linearize that operation now (the model accepts it and the
 * (linearized set, state) pair was not explored before), removing ("lifting") its call and return
 * from the list; at a return whose operation is not linearized yet, the current prefix is a dead end
 * and it backtracks. The history is linearizable when every determinate operation is lifted.
 *
 * Operations with unknown outcome (Jepsen `info`) have their return at +Infinity: they may take
 * effect at any point after their call, or never. Because those returns sort after every real one,
 * reaching one means every determinate operation has been linearized, so the search succeeds there.
 *
 * Interchangeable unknown-outcome operations (same symmetry key, e.g. several timed-out deletes of
 * one key) would otherwise multiply the search by every subset of them. Since their returns are all
 * at +Infinity, any linearization can be rewritten so that the ones linearized are the earliest-
 * called (match the sorted linearization points to the sorted calls), so the search only lets the
 * i-th of a class take effect after the (i-1)-th has.
 *
 * Read-only operations (model.isReadOnly) that are legal in the current state are linearized at
 * once and are not choice points: if a linearization exists with such a read later, moving the read
 * to now keeps it valid, because the read leaves the state unchanged. Without this rule the search
 * branches on every order of concurrent reads and writes, which blows up at 15+ concurrent clients.
 *
 * The memo key is the linearized set as a bitset plus the interned model state. The set's hash is
 * kept incrementally (Zobrist: XOR of one random word per operation), so a step costs O(1) except
 * on a hash hit, which compares the full bitset.
 */

export interface SequentialModel<S, I> {
  readonly init: S;
  /** The state after applying `input` in `state`, or undefined if the model forbids it. */
  step(state: S, input: I): S | undefined;
  /** A string or number equal for equal states, used to intern states. */
  stateKey(state: S): string | number;
  /**
   * Optional: equal keys for inputs whose effect is the same in every state (e.g. two deletes of
   * one key). Operations with unknown outcome and equal keys are interchangeable (see checkWgl).
   */
  symmetryKey?(input: I): string | undefined;
  /** Optional: true for inputs that never change the state (reads). Enables the read-only rule. */
  isReadOnly?(input: I): boolean;
}

export interface WglOp<I> {
  /** Caller's id for this operation (the history index of its invoke). */
  readonly id: number;
  readonly callNs: number;
  /** Infinity for operations with unknown outcome. */
  readonly returnNs: number;
  readonly input: I;
}

/** Search limits; hitting one gives `unknown`, never a false verdict. */
export interface WglLimits {
  /** Distinct (linearized set, state) configurations memoised. */
  readonly maxCacheEntries: number;
  /** Search steps (a step = one call tried or one backtrack). */
  readonly maxSteps: number;
}

export const DEFAULT_WGL_LIMITS: WglLimits = { maxCacheEntries: 4_000_000, maxSteps: 200_000_000 };

/** How much of the linearization prefix a counterexample keeps (its tail). */
export const COUNTEREXAMPLE_PREFIX_TAIL = 12;
/** How many pending (concurrent, not linearized) operations a counterexample lists. */
export const COUNTEREXAMPLE_MAX_PENDING = 20;

export interface WglCounterexample<S> {
  /** The operation that could not be linearized after the longest linearizable prefix found. */
  readonly blockingOpId: number;
  /** Length of that prefix, in operations. */
  readonly prefixLength: number;
  /** The last operations of the prefix, in linearization order (ids). */
  readonly prefixTail: readonly number[];
  /** The model state after the prefix. */
  readonly stateAfterPrefix: S;
  /** Operations called before the blocking op returned and not in the prefix (ids). */
  readonly pending: readonly number[];
}

export type WglResult<S> =
  | { readonly result: 'ok'; readonly steps: number; readonly cacheEntries: number }
  | { readonly result: 'illegal'; readonly steps: number; readonly cacheEntries: number; readonly counterexample: WglCounterexample<S> }
  | { readonly result: 'unknown'; readonly steps: number; readonly cacheEntries: number; readonly reason: string };

interface Entry {
  readonly isCall: boolean;
  /** Index into the ops array. */
  readonly op: number;
  readonly timeNs: number;
  /** For a call: its return entry. */
  match: Entry | null;
  prev: Entry | null;
  next: Entry | null;
}

/** Memo of visited (bitset, state) configurations, bucketed by a 32-bit hash. */
class ConfigCache {
  private readonly buckets = new Map<number, { bits: Uint32Array; state: number }[]>();
  size = 0;

  /** Adds the configuration; false if it was already present. */
  add(hash: number, bits: Uint32Array, state: number): boolean {
    const h = (hash ^ Math.imul(state + 1, 0x9e3779b1)) >>> 0;
    let bucket = this.buckets.get(h);
    if (bucket === undefined) {
      bucket = [];
      this.buckets.set(h, bucket);
    } else {
      for (const c of bucket) if (c.state === state && sameBits(c.bits, bits)) return false;
    }
    bucket.push({ bits: bits.slice(), state });
    this.size++;
    return true;
  }
}

function sameBits(a: Uint32Array, b: Uint32Array): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Deterministic per-operation random words for the Zobrist hash. */
function zobristWords(n: number): Uint32Array {
  const z = new Uint32Array(n);
  let x = 0x2545f491;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    z[i] = x >>> 0;
  }
  return z;
}

function buildEntries<I>(ops: readonly WglOp<I>[]): Entry {
  const entries: Entry[] = [];
  for (let i = 0; i < ops.length; i++) {
    const op = ops[i];
    if (!(op.returnNs >= op.callNs)) throw new Error(`wgl: op ${op.id} returns before it is called`);
    const call: Entry = { isCall: true, op: i, timeNs: op.callNs, match: null, prev: null, next: null };
    const ret: Entry = { isCall: false, op: i, timeNs: op.returnNs, match: null, prev: null, next: null };
    call.match = ret;
    entries.push(call, ret);
  }
  // Ties: calls before returns, so operations that touch in time count as concurrent (the
  // permissive reading; nanosecond ties are rare).
  entries.sort((a, b) => a.timeNs - b.timeNs || Number(a.isCall === false) - Number(b.isCall === false) || a.op - b.op);
  const head: Entry = { isCall: false, op: -1, timeNs: -Infinity, match: null, prev: null, next: null };
  let prev = head;
  for (const e of entries) {
    prev.next = e;
    e.prev = prev;
    prev = e;
  }
  return head;
}

function lift(call: Entry): void {
  const ret = call.match!;
  call.prev!.next = call.next;
  call.next!.prev = call.prev;
  ret.prev!.next = ret.next;
  if (ret.next !== null) ret.next.prev = ret.prev;
}

function unlift(call: Entry): void {
  const ret = call.match!;
  ret.prev!.next = ret;
  if (ret.next !== null) ret.next.prev = ret;
  call.prev!.next = call;
  call.next!.prev = call;
}

export function checkWgl<S, I>(model: SequentialModel<S, I>, ops: readonly WglOp<I>[], limits: WglLimits = DEFAULT_WGL_LIMITS): WglResult<S> {
  const n = ops.length;
  const head = buildEntries(ops);
  const bits = new Uint32Array(Math.max(1, Math.ceil(n / 32)));
  const zobrist = zobristWords(n);
  const cache = new ConfigCache();
  const stateIds = new Map<string | number, number>();
  const intern = (s: S): number => {
    const k = model.stateKey(s);
    let id = stateIds.get(k);
    if (id === undefined) {
      id = stateIds.size;
      stateIds.set(k, id);
    }
    return id;
  };

  let state = model.init;
  let hash = 0;
  /** The current linearization; `forced` entries were not choices (see the read-only rule). */
  const stack: { call: Entry; stateBefore: S; forced: boolean }[] = [];
  let steps = 0;
  let best: WglCounterexample<S> | undefined;

  // For each op, the previous interchangeable op (in call order) that must be linearized first.
  const mustFollow = new Int32Array(n).fill(-1);
  if (model.symmetryKey !== undefined) {
    const last = new Map<string, number>();
    const order = ops.map((_, i) => i).sort((a, b) => ops[a].callNs - ops[b].callNs || a - b);
    for (const i of order) {
      if (ops[i].returnNs !== Infinity) continue;
      const k = model.symmetryKey(ops[i].input);
      if (k === undefined) continue;
      const prev = last.get(k);
      if (prev !== undefined) mustFollow[i] = prev;
      last.set(k, i);
    }
  }
  const isLinearized = (i: number): boolean => (bits[i >>> 5] & (1 << (i & 31))) !== 0;

  const readOnly = new Uint8Array(n);
  if (model.isReadOnly !== undefined) for (let i = 0; i < n; i++) readOnly[i] = model.isReadOnly(ops[i].input) ? 1 : 0;
  const setBit = (i: number): void => {
    bits[i >>> 5] |= 1 << (i & 31);
    hash ^= zobrist[i];
  };
  const clearBit = (i: number): void => {
    bits[i >>> 5] &= ~(1 << (i & 31));
    hash ^= zobrist[i];
  };
  const mayTry = (i: number): boolean => mustFollow[i] < 0 || isLinearized(mustFollow[i]);

  let entry: Entry | null = head.next;
  /** Undo to the last real choice and move past it; false when there is none left. */
  const backtrack = (): boolean => {
    for (;;) {
      const top = stack.pop();
      if (top === undefined) return false;
      state = top.stateBefore;
      clearBit(top.call.op);
      unlift(top.call);
      if (!top.forced) {
        entry = top.call.next;
        return true;
      }
    }
  };

  let fresh = true;
  while (head.next !== null) {
    if (++steps > limits.maxSteps) return { result: 'unknown', steps, cacheEntries: cache.size, reason: `search exceeded ${limits.maxSteps} steps` };
    if (cache.size > limits.maxCacheEntries) {
      return { result: 'unknown', steps, cacheEntries: cache.size, reason: `memo exceeded ${limits.maxCacheEntries} configurations` };
    }
    if (fresh) {
      // Read-only ops that are legal now are linearized now, without a choice point: a state-
      // preserving op legal at this point could only be moved here from any later point.
      fresh = false;
      let dead = false;
      for (let f: Entry | null = head.next; f !== null && f.isCall; ) {
        // Stop at the first return entry: ops called after it cannot precede it.
        let nx: Entry | null = f.next;
        if (readOnly[f.op] === 1 && ops[f.op].returnNs !== Infinity && mayTry(f.op) && model.step(state, ops[f.op].input) !== undefined) {
          setBit(f.op);
          if (!cache.add(hash, bits, intern(state))) {
            clearBit(f.op);
            dead = true;
            break;
          }
          stack.push({ call: f, stateBefore: state, forced: true });
          lift(f);
          // f's own pointers still name its old neighbours; skip its (now removed) return.
          nx = f.next === f.match ? f.match!.next : f.next;
        }
        f = nx;
      }
      entry = head.next;
      if (dead && !backtrack()) return { result: 'illegal', steps, cacheEntries: cache.size, counterexample: best ?? counterexampleAt(head, head.next!, stack, state, ops) };
      continue;
    }
    const e: Entry = entry!;
    if (e.isCall) {
      const next = mayTry(e.op) ? model.step(state, ops[e.op].input) : undefined;
      if (next !== undefined) {
        setBit(e.op);
        if (cache.add(hash, bits, intern(next))) {
          stack.push({ call: e, stateBefore: state, forced: false });
          state = next;
          lift(e);
          fresh = true;
          continue;
        }
        clearBit(e.op);
      }
      entry = e.next;
      continue;
    }
    // A return whose operation is not linearized yet.
    if (ops[e.op].returnNs === Infinity) return { result: 'ok', steps, cacheEntries: cache.size };
    if (best === undefined || stack.length > best.prefixLength) best = counterexampleAt(head, e, stack, state, ops);
    if (!backtrack()) return { result: 'illegal', steps, cacheEntries: cache.size, counterexample: best };
  }
  return { result: 'ok', steps, cacheEntries: cache.size };
}

function counterexampleAt<S, I>(head: Entry, blocking: Entry, stack: readonly { call: Entry }[], state: S, ops: readonly WglOp<I>[]): WglCounterexample<S> {
  const pending: number[] = [];
  for (let e = head.next; e !== null && e !== blocking && pending.length < COUNTEREXAMPLE_MAX_PENDING; e = e.next) {
    if (e.isCall && e.op !== blocking.op) pending.push(ops[e.op].id);
  }
  const tail = stack.slice(-COUNTEREXAMPLE_PREFIX_TAIL).map((s) => ops[s.call.op].id);
  return { blockingOpId: ops[blocking.op].id, prefixLength: stack.length, prefixTail: tail, stateAfterPrefix: state, pending };
}
