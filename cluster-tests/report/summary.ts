/** The plain-text summary the CLI prints: one row per checker, then the first anomalies of each failure. */
import type { Verdict } from '../checkers/verdict';

/** How many anomalies per checker the text summary shows (the rest are in verdicts.json). */
export const SUMMARY_ANOMALIES_PER_CHECKER = 3;

export function summaryTable(verdicts: readonly Verdict[]): string {
  const rows = verdicts.map((v) => [v.checker, v.status.toUpperCase(), `${v.durationMs.toFixed(0)} ms`, v.summary]);
  const header = ['checker', 'status', 'time', 'summary'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: readonly string[]): string => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]))).join('  ');
  const out = [line(header), widths.map((w) => '-'.repeat(Math.min(w, 80))).join('  '), ...rows.map(line)];
  for (const v of verdicts) {
    if (v.anomalies.length === 0 || v.status === 'pass') continue;
    out.push('', `${v.checker}: ${v.stats.anomalies ?? v.anomalies.length} anomalies`);
    for (const a of v.anomalies.slice(0, SUMMARY_ANOMALIES_PER_CHECKER)) out.push(`  [${a.type}] ${a.message}`);
  }
  return out.join('\n');
}
