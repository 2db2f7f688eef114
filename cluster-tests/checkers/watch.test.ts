import { describe, expect, it } from 'vitest';
import { type HistoryEntry, type WatchEvent, type WatchResponseEntry, indexHistory } from '../history';
import { HistoryBuilder, del, kv, put } from './builder';
import { simulateWatches } from './synthetic';
import { checkWatches } from './watch';

// The store's log: rev 2 put /a=1; 3 put /b=1; 4 txn put /a=2, put /b=2; 5 delete /a; 6 put /a=3.
const A1 = put('/a', '1', 2);
const B1 = put('/b', '1', 3, undefined);
const A2 = put('/a', '2', 4, kv('/a', '1', 2));
const B2 = put('/b', '2', 4, kv('/b', '1', 3));
const DA = del('/a', 5, kv('/a', '2', 4));
const A3 = put('/a', '3', 6);

type Resp = { rev: number; events: WatchEvent[]; progress?: boolean; canceled?: boolean; compactRevision?: number };

/** Two watchers: "all" on the prefix "/" from revision 2, and "a" on key /a from `aStart`. */
function scenario(all: Resp[], a: Resp[], aStart = 2, extra?: (b: HistoryBuilder) => void): ReturnType<HistoryBuilder['build']> {
  const b = new HistoryBuilder();
  b.watchOpen(0, { watcher: 'all', process: 10, key: '/', rangeEnd: '0', startRevision: 2, prevKv: true });
  b.watchOpen(0, { watcher: 'a', process: 11, key: '/a', startRevision: aStart, prevKv: true });
  all.forEach((r, i) => b.watchResponse(1 + i, 'all', r.rev, r.events, { progressNotify: r.progress, canceled: r.canceled, compactRevision: r.compactRevision }));
  a.forEach((r, i) => b.watchResponse(1 + i, 'a', r.rev, r.events, { progressNotify: r.progress, canceled: r.canceled, compactRevision: r.compactRevision }));
  extra?.(b);
  return b.build();
}

const GOOD_ALL: Resp[] = [{ rev: 3, events: [A1, B1] }, { rev: 4, events: [A2, B2] }, { rev: 5, events: [DA] }, { rev: 6, events: [A3] }, { rev: 6, events: [], progress: true }];
const GOOD_A: Resp[] = [{ rev: 2, events: [A1] }, { rev: 4, events: [A2] }, { rev: 6, events: [DA, A3] }];

function types(h: ReturnType<typeof scenario>): string[] {
  return checkWatches(h).anomalies.map((a) => a.type);
}

describe('watch: correct streams pass', () => {
  it('two watchers over the same log, with batching and a progress notification, pass', () => {
    const v = checkWatches(scenario(GOOD_ALL, GOOD_A));
    expect(v.status, JSON.stringify(v.anomalies)).toBe('pass');
    expect(v.stats.truthRevisions).toBe(5);
  });

  it('a watch resumed at revision 5 starting with the delete at 5 passes', () => {
    expect(checkWatches(scenario(GOOD_ALL, [{ rev: 6, events: [DA, A3] }], 5)).status).toBe('pass');
  });

  it('a watch canceled because its start revision was compacted passes', () => {
    const h = scenario(GOOD_ALL, [{ rev: 6, events: [], canceled: true, compactRevision: 4 }], 3, (b) => b.compact(20, 4, [0, 0.5]));
    expect(checkWatches(h).status).toBe('pass');
  });

  it('seeded simulated watchers over 300 revisions pass', () => {
    for (let seed = 1; seed <= 10; seed++) {
      const v = checkWatches(indexHistory(simulateWatches({ seed })));
      expect(v.status, `seed ${seed}: ${JSON.stringify(v.anomalies[0])}`).toBe('pass');
    }
  });
});

describe('watch: violations are caught', () => {
  it('a gap: a watcher misses an event another watcher saw (reliable)', () => {
    const h = scenario(GOOD_ALL, [{ rev: 2, events: [A1] }, { rev: 6, events: [DA, A3] }]);
    const v = checkWatches(h);
    expect(v.anomalies.map((a) => a.type)).toEqual(['watch-gap']);
    expect(v.anomalies[0].evidence).toMatchObject({ revision: 4, key: '/a' });
  });

  it('a gap against an acknowledged write that no watcher delivered', () => {
    const h = scenario(GOOD_ALL.slice(0, 1).concat([{ rev: 5, events: [DA] }, { rev: 6, events: [A3] }]), GOOD_A, 2, (b) => {
      b.write(1, '/b', '2', [0, 0.5], { revision: 4 });
    });
    expect(types(h)).toContain('watch-gap');
  });

  it('a duplicate event (unique)', () => {
    const all = GOOD_ALL.slice();
    all.splice(2, 0, { rev: 4, events: [B2] });
    expect(types(scenario(all, GOOD_A))).toContain('duplicate-watch-event');
  });

  it('a watch that goes back in time (ordered), as after a partition (etcd #15271)', () => {
    const a: Resp[] = [{ rev: 2, events: [A1] }, { rev: 4, events: [A2] }, { rev: 6, events: [DA, A3] }, { rev: 6, events: [A2] }];
    const t = types(scenario(GOOD_ALL, a));
    expect(t).toContain('watch-went-back-in-time');
    expect(t).toContain('duplicate-watch-event');
  });

  it('a revision split across responses, and a revision delivered in part (atomic)', () => {
    const split: Resp[] = [{ rev: 3, events: [A1, B1] }, { rev: 4, events: [A2] }, { rev: 4, events: [B2] }, { rev: 6, events: [DA, A3] }];
    expect(types(scenario(split, GOOD_A))).toContain('watch-not-atomic');
    const partial: Resp[] = [{ rev: 3, events: [A1, B1] }, { rev: 4, events: [A2] }, { rev: 6, events: [DA, A3] }];
    // Detectable only with another source for /b@4: here, the acknowledged put.
    expect(types(scenario(partial, GOOD_A, 2, (b) => b.write(1, '/b', '2', [0, 0.5], { revision: 4 })))).toContain('watch-partial-revision');
  });

  it('a progress notification that overtakes an event (bookmarkable)', () => {
    const all: Resp[] = [{ rev: 3, events: [A1, B1] }, { rev: 4, events: [], progress: true }, { rev: 4, events: [A2, B2] }, { rev: 6, events: [DA, A3] }];
    expect(types(scenario(all, GOOD_A))).toEqual(['bookmark-overtook-event']);
  });

  it('a resumed watch that does not start at the first event at or after its start revision (resumable)', () => {
    expect(types(scenario(GOOD_ALL, [{ rev: 6, events: [A3] }], 4))).toEqual(['watch-not-resumable']);
  });

  it('wrong prev_kv: stale, and missing', () => {
    const stale = put('/a', '2', 4, kv('/a', 'old', 1));
    expect(types(scenario(GOOD_ALL, [{ rev: 2, events: [A1] }, { rev: 4, events: [stale] }, { rev: 6, events: [DA, A3] }]))).toContain('wrong-prev-kv');
    const missing = put('/b', '2', 4);
    const all: Resp[] = [{ rev: 3, events: [A1, B1] }, { rev: 4, events: [A2, missing] }, { rev: 6, events: [DA, A3] }];
    const v = checkWatches(scenario(all, GOOD_A));
    expect(v.anomalies.map((a) => a.type)).toEqual(['wrong-prev-kv']);
    expect(v.anomalies[0].message).toContain('/b');
  });

  it('watchers that disagree on a revision', () => {
    const other = put('/a', 'X', 4, kv('/a', '1', 2));
    expect(types(scenario(GOOD_ALL, [{ rev: 2, events: [A1] }, { rev: 4, events: [other] }, { rev: 6, events: [DA, A3] }]))).toContain('watchers-disagree');
  });

  it('a compaction cancel the stream did not need, or at a compaction nobody requested', () => {
    const h = scenario(GOOD_ALL, [{ rev: 2, events: [A1] }, { rev: 6, events: [], canceled: true, compactRevision: 2 }], 2, (b) => b.compact(20, 2, [0, 0.5]));
    expect(types(h)).toContain('bad-compaction-cancel');
    const h2 = scenario(GOOD_ALL, [{ rev: 6, events: [], canceled: true, compactRevision: 5 }], 3, (b) => b.compact(20, 4, [0, 0.5]));
    expect(types(h2)).toContain('bad-compaction-cancel');
  });

  it('events outside the range or before the start revision (etcd #20221)', () => {
    const t = types(scenario(GOOD_ALL, [{ rev: 3, events: [A1, B1] }, { rev: 4, events: [A2] }, { rev: 6, events: [DA, A3] }], 3));
    expect(t).toContain('event-outside-range');
    expect(t).toContain('event-before-start');
  });

  it('a simulated stream with one event dropped, duplicated or reordered is caught', () => {
    const base = simulateWatches({ seed: 3, revisions: 500, watchers: 5 });
    const firstWithEvents = base.findIndex((e) => e.kind === 'watch-response' && e.events.length > 1 && e.watcher === 'w0');
    const r = base[firstWithEvents] as WatchResponseEntry;
    const withEvents = (events: WatchEvent[]): HistoryEntry[] => base.map((e, i) => (i === firstWithEvents ? { ...r, events } : e));
    expect(checkWatches(indexHistory(withEvents(r.events.slice(1)))).status).toBe('fail');
    expect(checkWatches(indexHistory(withEvents([...r.events, r.events[0]]))).status).toBe('fail');
    expect(checkWatches(indexHistory(withEvents(r.events.slice().reverse()))).status).toBe(r.events[0].modRevision === r.events[r.events.length - 1].modRevision ? 'pass' : 'fail');
  });
});
