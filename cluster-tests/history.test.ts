import { describe, expect, it } from 'vitest';
import { HistoryFormatError, HistoryPairingError, indexHistory, pairOperations, parseJsonLines, toJsonLines } from './history';
import { simulateListAppend, simulateRegisters, simulateWatches } from './checkers/synthetic';

describe('history JSON lines', () => {
  it('round-trips every entry kind, and the line number is the index', () => {
    const entries = [
      ...simulateRegisters({ seed: 1, ops: 50 }),
      ...simulateListAppend({ seed: 1, ops: 20 }),
      ...simulateWatches({ seed: 1, revisions: 10, watchers: 2 }),
      { kind: 'nemesis' as const, fault: 'partition', phase: 'start' as const, timeNs: 5, targets: ['m1'] },
    ];
    const text = toJsonLines(indexHistory(entries));
    expect(text.split('\n').filter(Boolean)).toHaveLength(entries.length);
    expect(text).not.toContain('"index"');
    const back = parseJsonLines(text);
    expect(back.map(({ index: _i, ...rest }) => rest)).toEqual(JSON.parse(JSON.stringify(entries)));
    expect(back.map((e) => e.index)).toEqual(entries.map((_, i) => i));
  });

  it('rejects malformed lines with the line number', () => {
    expect(() => parseJsonLines('{"kind":"op"}\n')).toThrow(HistoryFormatError);
    expect(() => parseJsonLines('\n\nnot json')).toThrow(/line 3/);
    expect(() => parseJsonLines('{"kind":"op","timeNs":1,"process":1,"type":"ok","f":"frobnicate"}')).toThrow(/unknown op f/);
  });

  it('pairs invokes with completions; a missing completion is info; double invokes are rejected', () => {
    const h = parseJsonLines(
      [
        '{"kind":"op","process":1,"type":"invoke","f":"write","key":"x","value":"a","timeNs":1}',
        '{"kind":"op","process":2,"type":"invoke","f":"read","key":"x","timeNs":2}',
        '{"kind":"op","process":1,"type":"ok","f":"write","key":"x","value":"a","timeNs":3,"revision":2}',
      ].join('\n'),
    );
    const ops = pairOperations(h);
    expect(ops.map((o) => [o.id, o.outcome, o.completeNs])).toEqual([
      [0, 'ok', 3],
      [1, 'info', Infinity],
    ]);
    const bad = parseJsonLines(
      ['{"kind":"op","process":1,"type":"invoke","f":"read","key":"x","timeNs":1}', '{"kind":"op","process":1,"type":"invoke","f":"read","key":"x","timeNs":2}'].join('\n'),
    );
    expect(() => pairOperations(bad)).toThrow(HistoryPairingError);
  });
});
