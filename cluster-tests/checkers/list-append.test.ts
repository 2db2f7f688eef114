import { describe, expect, it } from 'vitest';
import { type HistoryEntry, type MicroOp, indexHistory } from '../history';
import { HistoryBuilder } from './builder';
import { checkListAppend } from './list-append';
import { simulateListAppend } from './synthetic';

function types(v: ReturnType<typeof checkListAppend>): string[] {
  return v.anomalies.map((a) => a.type);
}

describe('list-append: known-good histories pass', () => {
  it('concurrent transactions with a consistent serial order pass', () => {
    const b = new HistoryBuilder();
    b.txn(1, [['append', 'x', 1], ['r', 'y', []]], [0, 10]);
    b.txn(2, [['append', 'y', 1], ['r', 'x', [1]]], [1, 11]);
    b.txn(3, [['r', 'x', [1]], ['r', 'y', [1]], ['append', 'x', 2]], [12, 13]);
    b.txn(1, [['r', 'x', [1, 2]]], [14, 15]);
    const v = checkListAppend(b.build());
    expect(v.status, JSON.stringify(v.anomalies)).toBe('pass');
  });

  it('a transaction reads its own appends', () => {
    const b = new HistoryBuilder();
    b.txn(1, [['append', 'x', 1], ['r', 'x', [1]], ['append', 'x', 2], ['r', 'x', [1, 2]]], [0, 1]);
    b.txn(2, [['r', 'x', [1, 2]]], [2, 3]);
    expect(checkListAppend(b.build()).status).toBe('pass');
  });

  it('an info transaction that committed (seen later) or did not (never seen) passes', () => {
    const b = new HistoryBuilder();
    b.txn(1, [['append', 'x', 1]], [0, 1], 'info');
    b.txn(2, [['append', 'y', 1]], [0, 1], 'info');
    b.txn(3, [['r', 'x', [1]], ['r', 'y', []]], [5, 6]);
    expect(checkListAppend(b.build()).status).toBe('pass');
  });

  it('property: seeded simulated histories pass, serializable and strict', () => {
    for (let seed = 1; seed <= 25; seed++) {
      const h = indexHistory(simulateListAppend({ seed, clients: 2 + (seed % 9), keys: 1 + (seed % 5), ops: 400, pInfo: (seed % 4) * 0.03 }));
      const v = checkListAppend(h);
      expect(v.status, `seed ${seed}: ${JSON.stringify(v.anomalies[0])}`).toBe('pass');
    }
  });

  it('10,000 simulated transactions over 8 keys with timeouts pass', () => {
    const v = checkListAppend(indexHistory(simulateListAppend({ seed: 3, clients: 10, keys: 8, ops: 10_000, pInfo: 0.03 })));
    expect(v.status).toBe('pass');
    expect(v.stats.txns).toBe(10_001 - 1);
  });
});

describe('list-append: anomalies are caught and classified', () => {
  it('G0: two transactions append to x and y in opposite orders', () => {
    const b = new HistoryBuilder();
    const t1 = b.txn(1, [['append', 'x', 1], ['append', 'y', 1]], [0, 10]);
    const t2 = b.txn(2, [['append', 'x', 2], ['append', 'y', 2]], [0, 10]);
    b.txn(3, [['r', 'x', [1, 2]], ['r', 'y', [2, 1]]], [11, 12]);
    const v = checkListAppend(b.build());
    expect(types(v)).toContain('G0');
    const g0 = v.anomalies.find((a) => a.type === 'G0')!;
    expect(new Set(g0.ops)).toEqual(new Set([b.idOf(t1), b.idOf(t2)]));
    expect(g0.evidence?.cycle).toHaveLength(2);
  });

  it('G1c: each transaction reads the other one\'s append', () => {
    const b = new HistoryBuilder();
    b.txn(1, [['append', 'x', 1], ['r', 'y', [1]]], [0, 10]);
    b.txn(2, [['append', 'y', 1], ['r', 'x', [1]]], [0, 10]);
    expect(types(checkListAppend(b.build()))).toEqual(['G1c']);
  });

  it('G-single: a non-atomic transaction — a reader sees one of its appends but not the other', () => {
    const b = new HistoryBuilder();
    const w = b.txn(1, [['append', 'x', 1], ['append', 'y', 1]], [0, 10]);
    const r = b.txn(2, [['r', 'x', [1]], ['r', 'y', []]], [0, 10]);
    const v = checkListAppend(b.build());
    expect(types(v)).toEqual(['G-single']);
    const cycle = v.anomalies[0].evidence?.cycle as { from: number; to: number; type: string; key: string }[];
    expect(cycle.map((s) => s.type).sort()).toEqual(['rw', 'wr']);
    expect(new Set(cycle.map((s) => s.from))).toEqual(new Set([b.idOf(w), b.idOf(r)]));
  });

  it('G2: write skew, two anti-dependencies', () => {
    const b = new HistoryBuilder();
    b.txn(1, [['r', 'x', []], ['append', 'y', 1]], [0, 10]);
    b.txn(2, [['r', 'y', []], ['append', 'x', 1]], [0, 10]);
    b.txn(3, [['r', 'x', [1]], ['r', 'y', [1]]], [11, 12]);
    expect(types(checkListAppend(b.build()))).toEqual(['G2']);
  });

  it('G-single-realtime: a stale read, consistent only if real time is ignored', () => {
    const b = new HistoryBuilder();
    b.txn(1, [['append', 'x', 1]], [0, 1]);
    b.txn(2, [['append', 'x', 2]], [2, 3]);
    b.txn(3, [['r', 'x', [1]]], [4, 5]);
    b.txn(4, [['r', 'x', [1, 2]]], [6, 7]);
    const h = b.build();
    expect(types(checkListAppend(h))).toEqual(['G-single-realtime']);
    expect(checkListAppend(h, { realtime: false }).status).toBe('pass');
  });

  it('a lost append: acknowledged, then a later read does not contain it and nobody ever does', () => {
    const b = new HistoryBuilder();
    const w = b.txn(1, [['append', 'x', 1]], [0, 1]);
    const r = b.txn(2, [['r', 'x', []]], [2, 3]);
    const v = checkListAppend(b.build());
    expect(types(v)).toEqual(['G-single-realtime']);
    expect(new Set(v.anomalies[0].ops)).toEqual(new Set([b.idOf(w), b.idOf(r)]));
  });

  it('G1a aborted read and G1b intermediate read', () => {
    const b = new HistoryBuilder();
    b.txn(1, [['append', 'x', 1]], [0, 1], 'fail');
    b.txn(2, [['r', 'x', [1]]], [2, 3]);
    b.txn(3, [['append', 'y', 1], ['append', 'y', 2]], [0, 10]);
    b.txn(4, [['r', 'y', [1]]], [0, 10]);
    const t = types(checkListAppend(b.build()));
    expect(t).toContain('G1a');
    expect(t).toContain('G1b');
  });

  it('internal inconsistency, incompatible orders, duplicates and garbage reads', () => {
    const b = new HistoryBuilder();
    b.txn(1, [['append', 'x', 1], ['r', 'x', []]], [0, 1]);
    b.txn(2, [['append', 'y', 1]], [0, 1]);
    b.txn(3, [['append', 'y', 2]], [0, 1]);
    b.txn(4, [['r', 'y', [1, 2]]], [2, 3]);
    b.txn(5, [['r', 'y', [2, 1]]], [2, 3]);
    b.txn(6, [['r', 'z', [7, 7]]], [2, 3]);
    b.txn(7, [['append', 'w', 1]], [0, 1]);
    b.txn(8, [['append', 'w', 1]], [0, 1]);
    const t = new Set(types(checkListAppend(b.build())));
    for (const x of ['internal', 'incompatible-order', 'duplicate-elements', 'garbage-read', 'duplicate-appends']) expect(t).toContain(x);
  });

  it('a 10,000-transaction history with one read made stale is caught', () => {
    const entries = simulateListAppend({ seed: 4, clients: 10, keys: 8, ops: 10_000, pInfo: 0.02 });
    const mutated = dropLastElementOfAReadAfter(entries, Math.floor(entries.length / 2));
    const v = checkListAppend(indexHistory(mutated.entries));
    expect(v.status).toBe('fail');
    // The stale read closes a cycle through real time (it may also end on an intermediate state: G1b).
    expect(v.anomalies.some((a) => /^G-single/.test(a.type) && a.ops.includes(mutated.readerId)), JSON.stringify(v.anomalies)).toBe(true);
  });
});

/**
 * Find an ok read whose last element was appended by a txn that completed before the read began,
 * and drop that element: the read is then stale in real time.
 */
function dropLastElementOfAReadAfter(entries: readonly HistoryEntry[], from: number): { entries: HistoryEntry[]; readerId: number } {
  const out = entries.slice();
  const completedAppend = new Map<string, number>(); // key/element → completion time
  const invokeAt = new Map<number, { idx: number; timeNs: number }>();
  for (let i = 0; i < out.length; i++) {
    const e = out[i];
    if (e.kind !== 'op' || e.f !== 'txn') continue;
    if (e.type === 'invoke') {
      invokeAt.set(e.process, { idx: i, timeNs: e.timeNs });
      continue;
    }
    const inv = invokeAt.get(e.process)!;
    if (e.type !== 'ok') continue;
    if (i >= from) {
      for (let j = 0; j < e.value.length; j++) {
        const m = e.value[j];
        if (m.f !== 'r' || m.value === null || m.value.length === 0) continue;
        if (e.value.some((n) => n.f === 'append' && n.key === m.key)) continue;
        const last = m.value[m.value.length - 1];
        const done = completedAppend.get(`${m.key}/${last}`);
        if (done !== undefined && done < inv.timeNs) {
          const value: MicroOp[] = e.value.slice();
          value[j] = { f: 'r', key: m.key, value: m.value.slice(0, -1) };
          out[i] = { ...e, value };
          return { entries: out, readerId: inv.idx };
        }
      }
    }
    for (const m of e.value) if (m.f === 'append') completedAppend.set(`${m.key}/${m.value}`, e.timeNs);
  }
  throw new Error('no candidate read');
}
