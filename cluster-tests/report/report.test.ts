import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { EXIT_PASS, EXIT_USAGE, EXIT_VIOLATION, main } from '../check';
import { HistoryBuilder, put } from '../checkers/builder';
import { runCheckers } from '../checkers';
import { mutateStaleRead, simulateRegisters } from '../checkers/synthetic';
import { type HistoryEntry, indexHistory, toJsonLines } from '../history';
import { faultWindows, renderHtmlReport } from './html';
import { summaryTable } from './summary';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-report-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** A small failing run: a stale read during a partition, and a watch that misses an event. */
function failingHistory(): { entries: HistoryEntry[]; staleRead: number } {
  const b = new HistoryBuilder();
  b.nemesis('partition', 1.5, 6, 'm1 | m2 m3');
  b.write(1, 'x', 'a', [0, 1], { revision: 2 });
  b.write(2, 'x', 'b', [2, 3], { revision: 3 });
  const stale = b.read(3, 'x', [4, 5], 'a', { modRevision: 2, revision: 2 });
  b.watchOpen(0, { watcher: 'w1', process: 10, key: 'x', startRevision: 2, prevKv: false });
  b.watchResponse(1.2, 'w1', 2, [put('x', 'a', 2)]);
  b.watchResponse(7, 'w1', 4, [], { progressNotify: true });
  b.write(4, 'x', 'c', [6, 7], { revision: 4 });
  const h = b.build();
  return { entries: h.map(({ index: _i, ...e }) => e as HistoryEntry), staleRead: b.idOf(stale) };
}

describe('HTML report', () => {
  it('is one self-contained file with the timeline, fault windows and the violation highlighted', () => {
    const { entries, staleRead } = failingHistory();
    const history = indexHistory(entries);
    const verdicts = runCheckers(history);
    const html = renderHtmlReport(history, verdicts, { subtitle: 'unit test' });
    expect(html.startsWith('<!doctype html>')).toBe(true);
    // Nothing loaded from elsewhere.
    expect(html).not.toMatch(/<script[^>]+src=|<link |@import|url\(/);
    expect(html.replace('http://www.w3.org/2000/svg', '')).not.toContain('http');
    expect(html).toContain('<svg id="timeline"');
    expect(html).toContain('class="fault"');
    expect(html).toMatch(new RegExp(`id="op${staleRead}" class="op ok bad"`));
    expect(html).toContain('stale-read');
    expect(html).toContain('watch-gap');
    expect(faultWindows(history)).toEqual([{ fault: 'partition', startNs: 1.5e6, endNs: 6e6, detail: 'm1 | m2 m3' }]);
    fs.writeFileSync(path.join(tmp, 'unit.html'), html);
  });

  it('cuts a large history to a window around the first violation', () => {
    const { entries, readIndex } = mutateStaleRead(simulateRegisters({ seed: 2, ops: 10_000 }), 12_000);
    const history = indexHistory(entries);
    const html = renderHtmlReport(history, runCheckers(history));
    expect(/Showing 400\d of 10000 operations/.test(html)).toBe(true);
    expect(html.includes(`id="op${readIndex}" class="op ok bad"`)).toBe(true);
  });

  it('the text summary has a row per checker and the first anomalies', () => {
    const history = indexHistory(failingHistory().entries);
    const text = summaryTable(runCheckers(history));
    expect(text).toMatch(/linearizability\s+FAIL/);
    expect(text).toMatch(/watch\s+FAIL/);
    expect(text).toContain('[stale-read]');
  });
});

describe('check CLI', () => {
  it('writes verdicts.json and report.html and exits 1 on a violation, 0 when clean, 3 on bad input', () => {
    const lines: string[] = [];
    const bad = path.join(tmp, 'bad.jsonl');
    fs.writeFileSync(bad, toJsonLines(failingHistory().entries));
    expect(main([bad, '--out', path.join(tmp, 'bad-out')], (l) => lines.push(l))).toBe(EXIT_VIOLATION);
    const verdicts = JSON.parse(fs.readFileSync(path.join(tmp, 'bad-out', 'verdicts.json'), 'utf8'));
    expect(verdicts.overall).toBe('fail');
    expect(fs.existsSync(path.join(tmp, 'bad-out', 'report.html'))).toBe(true);
    expect(lines.join('\n')).toContain('overall: FAIL');

    const good = path.join(tmp, 'good.jsonl');
    fs.writeFileSync(good, toJsonLines(simulateRegisters({ seed: 4, ops: 500 })));
    expect(main([good, '--out', path.join(tmp, 'good-out')], () => {})).toBe(EXIT_PASS);

    const garbage = path.join(tmp, 'garbage.jsonl');
    fs.writeFileSync(garbage, 'nope\n');
    expect(main([garbage], () => {})).toBe(EXIT_USAGE);
    expect(main([], () => {})).toBe(EXIT_USAGE);
  });
});
