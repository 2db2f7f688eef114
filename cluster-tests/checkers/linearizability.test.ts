import { describe, expect, it } from 'vitest';
import { indexHistory } from '../history';
import { HistoryBuilder } from './builder';
import { checkLinearizability } from './linearizability';
import { mutateReadToImpossible, mutateStaleRead, simulateRegisters } from './synthetic';
import { type RegisterInput, registerModel } from './linearizability';
import { rng } from './synthetic';
import { type WglOp, checkWgl } from './wgl';
import type { KeyValueString } from '../history';

describe('linearizability: known-good histories pass', () => {
  it('a sequential history of writes, reads and a cas is linearizable', () => {
    const b = new HistoryBuilder();
    b.write(1, 'x', 'a', [0, 1]);
    b.read(1, 'x', [2, 3], 'a');
    b.cas(1, 'x', { value: 'a' }, 'b', [4, 5]);
    b.read(1, 'x', [6, 7], 'b');
    b.write(1, 'x', null, [8, 9]);
    b.read(1, 'x', [10, 11], null);
    const v = checkLinearizability(b.build());
    expect(v.status).toBe('pass');
    expect(v.stats.ops).toBe(6);
  });

  it('concurrent ops that must be reordered against their invocation order pass', () => {
    const b = new HistoryBuilder();
    // w(a) is invoked first but w(b) must come first: the read after both returns a.
    b.write(1, 'x', 'a', [0, 10]);
    b.write(2, 'x', 'b', [1, 9]);
    b.read(3, 'x', [2, 8], 'b');
    b.read(3, 'x', [11, 12], 'a');
    expect(checkLinearizability(b.build()).status).toBe('pass');
  });

  it('an info write that took effect (a later read sees it) passes', () => {
    const b = new HistoryBuilder();
    b.write(1, 'x', 'a', [0, 1]);
    b.write(2, 'x', 'b', [2, 3], { outcome: 'info' });
    b.read(3, 'x', [50, 51], 'b');
    expect(checkLinearizability(b.build()).status).toBe('pass');
  });

  it('an info write that never took effect passes', () => {
    const b = new HistoryBuilder();
    b.write(1, 'x', 'a', [0, 1]);
    b.write(2, 'x', 'b', [2, 3], { outcome: 'info' });
    b.read(3, 'x', [50, 51], 'a');
    b.read(3, 'x', [52, 53], 'a');
    expect(checkLinearizability(b.build()).status).toBe('pass');
  });

  it('an info write may take effect long after its client gave up', () => {
    const b = new HistoryBuilder();
    b.write(1, 'x', 'a', [0, 1]);
    b.write(2, 'x', 'b', [2, 3], { outcome: 'info' });
    b.read(3, 'x', [10, 11], 'a');
    b.read(3, 'x', [20, 21], 'b');
    expect(checkLinearizability(b.build()).status).toBe('pass');
  });

  it('failed cas ops have no effect, and their else-read is checked as a read', () => {
    const b = new HistoryBuilder();
    b.write(1, 'x', 'a', [0, 1], { revision: 5 });
    b.cas(2, 'x', { value: 'zzz' }, 'b', [2, 3], { outcome: 'fail', observed: { value: 'a', modRevision: 5 } });
    b.read(3, 'x', [4, 5], 'a', { modRevision: 5 });
    expect(checkLinearizability(b.build()).status).toBe('pass');
  });

  it('cas on mod_revision (the Kubernetes guard) is checked through the value written at that revision', () => {
    const b = new HistoryBuilder();
    b.cas(1, 'x', { modRevision: 0 }, 'a', [0, 1], { revision: 7 }); // create
    b.cas(2, 'x', { modRevision: 7 }, 'b', [2, 3], { revision: 8 }); // update guarded by mod_revision
    b.cas(3, 'x', { modRevision: 7 }, 'c', [4, 5], { outcome: 'fail', observed: { value: 'b', modRevision: 8 } });
    b.read(1, 'x', [6, 7], 'b', { modRevision: 8 });
    expect(checkLinearizability(b.build()).status).toBe('pass');
  });

  it('keys are independent: each is checked on its own', () => {
    const b = new HistoryBuilder();
    b.write(1, 'x', 'a', [0, 1]);
    b.write(2, 'y', 'b', [0, 1]);
    b.read(1, 'x', [2, 3], 'a');
    b.read(2, 'y', [2, 3], 'b');
    const v = checkLinearizability(b.build());
    expect(v.status).toBe('pass');
    expect(v.stats.keys).toBe(2);
  });
});

describe('linearizability: known violations are caught with a counterexample', () => {
  it('a stale read (a value overwritten before the read began)', () => {
    const b = new HistoryBuilder();
    const w1 = b.write(1, 'x', 'a', [0, 1]);
    const w2 = b.write(1, 'x', 'b', [2, 3]);
    const r = b.read(2, 'x', [4, 5], 'a');
    const h = b.build();
    const v = checkLinearizability(h);
    expect(v.status).toBe('fail');
    expect(v.anomalies[0].type).toBe('stale-read');
    expect(v.anomalies[0].ops).toEqual([b.idOf(r), b.idOf(w1), b.idOf(w2)]);
    // The full search finds it too, and names the read as the op that cannot be linearized.
    const s = checkLinearizability(h, { witnesses: false });
    expect(s.status).toBe('fail');
    expect(s.anomalies[0].ops[0]).toBe(b.idOf(r));
    expect(s.anomalies[0].type).toBe('stale-read');
    expect(s.anomalies[0].evidence?.stateAfterPrefix).toBe('b');
  });

  it('a lost write: acknowledged, then a later read sees the value before it', () => {
    const b = new HistoryBuilder();
    b.write(1, 'x', 'a', [0, 1]);
    b.read(2, 'x', [2, 3], 'a');
    const lost = b.write(1, 'x', 'b', [4, 5]);
    const r = b.read(2, 'x', [6, 7], 'a');
    const v = checkLinearizability(b.build());
    expect(v.status).toBe('fail');
    expect(v.anomalies[0].ops).toContain(b.idOf(lost));
    expect(v.anomalies[0].ops[0]).toBe(b.idOf(r));
  });

  it('a read of absent after an acknowledged create', () => {
    const b = new HistoryBuilder();
    b.cas(1, 'x', { modRevision: 0 }, 'a', [0, 1], { revision: 3 });
    b.read(2, 'x', [2, 3], null);
    const v = checkLinearizability(b.build());
    expect(v.status).toBe('fail');
    expect(v.anomalies[0].type).toBe('stale-read');
  });

  it('two cas from the same expected value both succeed (a lost update), found by the search', () => {
    const b = new HistoryBuilder();
    b.write(1, 'x', 'a', [0, 1]);
    b.cas(2, 'x', { value: 'a' }, 'b', [2, 5]);
    b.cas(3, 'x', { value: 'a' }, 'c', [3, 6]);
    const v = checkLinearizability(b.build());
    expect(v.status).toBe('fail');
    expect(v.anomalies[0].type).toBe('cas-not-linearizable');
    expect(v.anomalies[0].evidence?.prefixLength).toBe(2);
  });

  it('a read of a value nobody wrote, and a read from the future', () => {
    const b = new HistoryBuilder();
    b.read(1, 'x', [0, 1], 'ghost');
    b.read(2, 'y', [0, 1], 'later');
    b.write(3, 'y', 'later', [5, 6]);
    const v = checkLinearizability(b.build());
    expect(v.status).toBe('fail');
    expect(v.anomalies.map((a) => a.type).sort()).toEqual(['read-from-future', 'read-of-unwritten-value']);
  });

  it('a cas whose compare failed although its else-read shows the expected value', () => {
    const b = new HistoryBuilder();
    b.write(1, 'x', 'a', [0, 1], { revision: 4 });
    b.cas(2, 'x', { modRevision: 4 }, 'b', [2, 3], { outcome: 'fail', observed: { value: 'a', modRevision: 4 } });
    expect(checkLinearizability(b.build()).status).toBe('fail');
  });

  it('two values at one mod_revision are reported', () => {
    const b = new HistoryBuilder();
    b.write(1, 'x', 'a', [0, 1], { revision: 4 });
    b.read(2, 'x', [2, 3], 'b', { modRevision: 4 });
    b.write(1, 'x', 'b', [1.5, 1.8], { revision: 5 });
    const v = checkLinearizability(b.build());
    expect(v.anomalies.some((a) => a.type === 'revision-value-mismatch')).toBe(true);
  });
});

describe('linearizability: large and generated histories', () => {
  it('10,000 ops on 5 keys with 10 clients and timeouts pass; one injected stale read is caught', () => {
    const entries = simulateRegisters({ seed: 11, clients: 10, keys: 5, ops: 10_000, pInfo: 0.03 });
    const v = checkLinearizability(indexHistory(entries));
    expect(v.status).toBe('pass');
    expect(v.stats.ops).toBeGreaterThan(9_000);
    const { entries: bad, readIndex } = mutateStaleRead(entries, Math.floor(entries.length / 2));
    const f = checkLinearizability(indexHistory(bad));
    expect(f.status).toBe('fail');
    expect(f.anomalies[0].type).toBe('stale-read');
    expect(f.anomalies[0].ops[0]).toBe(readIndex);
  });

  it('10,000 ops on a single key with 10 clients pass the full search', () => {
    const entries = simulateRegisters({ seed: 5, clients: 10, keys: 1, ops: 10_000, pInfo: 0.02 });
    const v = checkLinearizability(indexHistory(entries), { witnesses: false });
    expect(v.status).toBe('pass');
    expect(v.stats.ops).toBeGreaterThan(9_000);
  });

  it('the full search alone (no witness shortcut) catches a stale read injected in 10,000 ops', () => {
    const entries = simulateRegisters({ seed: 6, clients: 10, keys: 5, ops: 10_000, pInfo: 0.02 });
    const { entries: bad, readIndex } = mutateStaleRead(entries, Math.floor(entries.length * 0.8));
    const f = checkLinearizability(indexHistory(bad), { witnesses: false });
    expect(f.status).toBe('fail');
    expect(f.anomalies[0].ops[0]).toBe(readIndex);
    expect(f.stats.illegalKeys).toBe(1);
  });

  it('property: every seeded simulated register history is accepted; with one impossible read it is rejected', () => {
    for (let seed = 1; seed <= 40; seed++) {
      const clients = 2 + (seed % 9);
      const entries = simulateRegisters({ seed, clients, keys: 1 + (seed % 4), ops: 300, pInfo: (seed % 5) * 0.02 });
      const v = checkLinearizability(indexHistory(entries));
      expect(v.status, `seed ${seed}: ${v.summary}`).toBe('pass');
      const bad = mutateReadToImpossible(entries, seed % 20);
      const searched = checkLinearizability(indexHistory(bad), { witnesses: false });
      expect(searched.status, `seed ${seed} (search)`).toBe('fail');
      expect(checkLinearizability(indexHistory(bad)).status, `seed ${seed}`).toBe('fail');
    }
  });

  it('a search limit gives unknown, never a verdict', () => {
    const entries = simulateRegisters({ seed: 3, clients: 8, keys: 1, ops: 2_000 });
    const v = checkLinearizability(indexHistory(entries), { limits: { maxSteps: 100, maxCacheEntries: 1_000_000 } });
    expect(v.status).toBe('unknown');
  });
});

/** Every order of the ops that respects real time, each info op placed or left out: the definition. */
function bruteForceLinearizable(ops: readonly WglOp<RegisterInput>[]): boolean {
  const model = registerModel(null);
  const n = ops.length;
  const used = new Array<boolean>(n).fill(false);
  const search = (state: KeyValueString, done: number): boolean => {
    // Every determinate op must be placed; info ops may be left out.
    if (ops.every((o, i) => used[i] || o.returnNs === Infinity)) return true;
    for (let i = 0; i < n; i++) {
      if (used[i]) continue;
      // i may go next only if no unplaced op returned before i was called.
      if (ops.some((o, j) => !used[j] && j !== i && o.returnNs < ops[i].callNs)) continue;
      const next = model.step(state, ops[i].input);
      if (next === undefined) continue;
      used[i] = true;
      const ok = search(next, done + 1);
      used[i] = false;
      if (ok) return true;
    }
    return false;
  };
  return search(null, 0);
}

describe('wgl core', () => {
  it('agrees with brute force on 3,000 small random histories (reads, writes, cas, deletes, timeouts)', () => {
    const r = rng(99);
    let illegal = 0;
    for (let t = 0; t < 3_000; t++) {
      const n = 2 + Math.floor(r() * 6);
      const values = ['a', 'b', 'c', null];
      const pick = (): KeyValueString => values[Math.floor(r() * values.length)];
      const ops: WglOp<RegisterInput>[] = [];
      for (let i = 0; i < n; i++) {
        const callNs = Math.floor(r() * 20);
        const returnNs = r() < 0.15 ? Infinity : callNs + 1 + Math.floor(r() * 8);
        const d = r();
        const input: RegisterInput =
          d < 0.4 ? { kind: 'read', value: pick() } : d < 0.75 ? { kind: 'write', value: pick() } : d < 0.9 ? { kind: 'cas', expected: pick(), value: pick() } : { kind: 'cas-failed', expected: pick(), observed: pick() };
        if (returnNs === Infinity && (input.kind === 'read' || input.kind === 'cas-failed')) continue;
        ops.push({ id: i, callNs, returnNs, input });
      }
      const expected = bruteForceLinearizable(ops);
      const got = checkWgl(registerModel(null), ops).result;
      if (!expected) illegal++;
      expect(got, JSON.stringify(ops)).toBe(expected ? 'ok' : 'illegal');
    }
    expect(illegal).toBeGreaterThan(300);
  });

  it('with unique values, the full checker (witnesses, info-write tightening) agrees with brute force', () => {
    const r = rng(7);
    for (let t = 0; t < 2_000; t++) {
      const b = new HistoryBuilder();
      const raw: WglOp<RegisterInput>[] = [];
      const written: string[] = [];
      const n = 2 + Math.floor(r() * 6);
      for (let i = 0; i < n; i++) {
        const call = Math.floor(r() * 20);
        const info = r() < 0.25;
        const ret = call + 1 + Math.floor(r() * 8);
        const d = r();
        if (d < 0.45 && !info) {
          const value = r() < 0.2 || written.length === 0 ? null : written[Math.floor(r() * written.length)];
          b.read(i, 'x', [call, ret], value);
          raw.push({ id: i, callNs: call, returnNs: ret, input: { kind: 'read', value } });
        } else if (d < 0.85) {
          const value = r() < 0.15 ? null : `v${i}`;
          if (value !== null) written.push(value);
          b.write(i, 'x', value, [call, ret], { outcome: info ? 'info' : 'ok' });
          raw.push({ id: i, callNs: call, returnNs: info ? Infinity : ret, input: { kind: 'write', value } });
        } else {
          const expected = written.length === 0 || r() < 0.2 ? null : written[Math.floor(r() * written.length)];
          const value = `v${i}`;
          written.push(value);
          b.cas(i, 'x', { value: expected }, value, [call, ret], { outcome: info ? 'info' : 'ok' });
          raw.push({ id: i, callNs: call, returnNs: info ? Infinity : ret, input: { kind: 'cas', expected, value } });
        }
      }
      const expected = bruteForceLinearizable(raw) ? 'pass' : 'fail';
      const h = b.build();
      expect(checkLinearizability(h).status, JSON.stringify(raw)).toBe(expected);
      expect(checkLinearizability(h, { witnesses: false }).status, JSON.stringify(raw)).toBe(expected);
    }
  });

  it('returns the blocking op, the prefix and the state for an illegal history', () => {
    const model = registerModel(null);
    const r = checkWgl(model, [
      { id: 10, callNs: 0, returnNs: 1, input: { kind: 'write', value: 'a' } },
      { id: 11, callNs: 2, returnNs: 3, input: { kind: 'write', value: 'b' } },
      { id: 12, callNs: 4, returnNs: 5, input: { kind: 'read', value: 'a' } },
    ]);
    expect(r.result).toBe('illegal');
    if (r.result !== 'illegal') return;
    expect(r.counterexample).toEqual({ blockingOpId: 12, prefixLength: 2, prefixTail: [10, 11], stateAfterPrefix: 'b', pending: [] });
  });

  it('timed-out deletes are interchangeable and do not blow up the search', () => {
    const model = registerModel(null);
    const ops = [];
    for (let i = 0; i < 40; i++) ops.push({ id: i, callNs: i, returnNs: Infinity, input: { kind: 'write' as const, value: null } });
    ops.push({ id: 100, callNs: 50, returnNs: 51, input: { kind: 'write' as const, value: 'a' } });
    ops.push({ id: 101, callNs: 52, returnNs: 53, input: { kind: 'read' as const, value: 'zzz' } });
    const r = checkWgl(model, ops);
    expect(r.result).toBe('illegal');
    expect(r.cacheEntries).toBeLessThan(10_000);
  });
});
