import { describe, expect, it } from 'vitest';
import { indexHistory } from '../history';
import { HistoryBuilder, kv } from './builder';
import { checkDurability } from './durability';
import { checkLocks } from './lock';
import { checkRevisionOrder } from './revision-order';
import { simulateListAppend, simulateRegisters } from './synthetic';

describe('revision order (Kubernetes-style traffic)', () => {
  it('creates, guarded updates with else-get, and a pinned list that follow real time pass', () => {
    const b = new HistoryBuilder();
    b.cas(1, '/pods/a', { modRevision: 0 }, 'a1', [0, 1], { revision: 2 });
    b.cas(2, '/pods/b', { modRevision: 0 }, 'b1', [0.5, 1.5], { revision: 3 });
    b.cas(1, '/pods/a', { modRevision: 2 }, 'a2', [2, 3], { revision: 4 });
    b.cas(2, '/pods/a', { modRevision: 2 }, 'a3', [2.5, 3.5], { outcome: 'fail', revision: 4, observed: { value: 'a2', modRevision: 4 } });
    b.list(3, '/pods/', '/pods0', 3, [4, 5], [kv('/pods/a', 'a1', 2), kv('/pods/b', 'b1', 3)], 4);
    b.read(3, '/pods/a', [6, 7], 'a2', { modRevision: 4, revision: 4 });
    const v = checkRevisionOrder(b.build());
    expect(v.status, JSON.stringify(v.anomalies)).toBe('pass');
  });

  it('the simulated register history (global revisions) passes', () => {
    expect(checkRevisionOrder(indexHistory(simulateRegisters({ seed: 2, ops: 3_000 }))).status).toBe('pass');
  });

  it('a read that goes back in revision, a write that does not advance it, a stale pinned list, a wrong value', () => {
    const b = new HistoryBuilder();
    b.write(1, '/k', 'v1', [0, 1], { revision: 5 });
    b.read(2, '/k', [2, 3], 'v0', { modRevision: 4, revision: 4 });
    b.write(3, '/j', 'x', [4, 5], { revision: 5 });
    b.list(4, '/', '0', 5, [6, 7], [kv('/k', 'v0', 4)], 6);
    b.read(5, '/k', [8, 9], 'other', { modRevision: 5, revision: 6 });
    const types = checkRevisionOrder(b.build()).anomalies.map((a) => a.type);
    for (const t of ['revision-went-back', 'write-revision-not-increasing', 'duplicate-write-revision', 'stale-list', 'value-mismatch-at-revision']) expect(types).toContain(t);
  });
});

describe('durability', () => {
  it('every acknowledged write present or superseded passes; info writes may or may not be there', () => {
    const b = new HistoryBuilder();
    b.write(1, 'x', 'a', [0, 1], { revision: 2 });
    b.write(1, 'x', 'b', [2, 3], { revision: 3 });
    b.write(2, 'y', 'c', [0, 1], { outcome: 'info' });
    b.write(4, 'z', 'd', [0, 1], { revision: 4 });
    b.write(3, 'z', null, [5, 6], { outcome: 'info' });
    b.finalRead(9, [10, 11], { kvs: [kv('x', 'b', 3), kv('y', 'c', 5)] });
    const v = checkDurability(b.build());
    expect(v.status, JSON.stringify(v.anomalies)).toBe('pass');
    expect(v.stats.acknowledgedWrites).toBe(3);
  });

  it('a lost write (acknowledged, then missing), a phantom value and a failed write that became visible', () => {
    const b = new HistoryBuilder();
    b.write(1, 'x', 'a', [0, 1], { revision: 2 });
    const lost = b.write(1, 'x', 'b', [2, 3], { revision: 3 });
    const gone = b.write(2, 'y', 'c', [0, 1], { revision: 4 });
    b.write(4, 'w', 'f', [0, 1], { outcome: 'fail' });
    b.finalRead(9, [10, 11], { kvs: [kv('x', 'a', 2), kv('q', 'ghost', 7), kv('w', 'f', 8)] });
    const v = checkDurability(b.build());
    const lostIds = v.anomalies.filter((a) => a.type === 'lost-write').map((a) => a.ops[0]);
    expect(lostIds.sort()).toEqual([b.idOf(lost), b.idOf(gone)].sort());
    expect(v.anomalies.map((a) => a.type)).toContain('phantom-value');
    expect(v.anomalies.map((a) => a.type)).toContain('failed-write-visible');
  });

  it('list-append: the simulated history passes; a dropped acknowledged append is reported', () => {
    const entries = simulateListAppend({ seed: 9, ops: 1_000 });
    expect(checkDurability(indexHistory(entries)).status).toBe('pass');
    const last = entries[entries.length - 1];
    if (last.kind !== 'op' || last.f !== 'final-read' || last.lists === undefined) throw new Error('no final read');
    const lists = last.lists.map((l, i) => (i === 0 ? { key: l.key, value: l.value.slice(0, -1) } : l));
    const v = checkDurability(indexHistory([...entries.slice(0, -1), { ...last, lists }]));
    expect(v.status).toBe('fail');
    expect(v.anomalies[0].type).toBe('lost-append');
  });

  it('is unknown without a final read', () => {
    const b = new HistoryBuilder();
    b.write(1, 'x', 'a', [0, 1]);
    expect(checkDurability(b.build()).status).toBe('unknown');
  });
});

describe('locks (leases as locks)', () => {
  it('overlapping holders are reported as a warning (known unsafety), not hidden', () => {
    const b = new HistoryBuilder();
    b.lock(1, 'lock-acquire', 'L', [0, 1], { revision: 10 });
    b.lock(2, 'lock-acquire', 'L', [0, 5], { revision: 12 }); // p1's lease expired while it was paused
    b.lock(1, 'lock-release', 'L', [6, 7]);
    b.lock(2, 'lock-release', 'L', [8, 9]);
    const v = checkLocks(b.build());
    expect(v.status).toBe('warn');
    expect(v.anomalies[0].type).toBe('overlapping-holders');
    expect(v.anomalies[0].message).toContain('fenced');
  });

  it('a fencing revision that does not increase across holders fails', () => {
    const b = new HistoryBuilder();
    b.lock(1, 'lock-acquire', 'L', [0, 1], { revision: 10 });
    b.lock(1, 'lock-release', 'L', [2, 3]);
    b.lock(2, 'lock-acquire', 'L', [4, 5], { revision: 9 });
    b.lock(2, 'lock-release', 'L', [6, 7]);
    const v = checkLocks(b.build());
    expect(v.status).toBe('fail');
    expect(v.anomalies[0].type).toBe('fencing-token-not-increasing');
  });
});
