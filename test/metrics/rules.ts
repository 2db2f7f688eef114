import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Scrape } from './prom-text';
import type { Series, Snapshot } from './promql';

export interface Rule {
  file: string;
  alert: string;
  expr: string;
}

/** The alert name and expression of each rule in a vendored rules file (inline or `|` block). */
export function readRules(file: string): Rule[] {
  const lines = fs.readFileSync(path.join(__dirname, 'fixtures', file), 'utf8').split('\n');
  const rules: Rule[] = [];
  let alert = '';
  for (let i = 0; i < lines.length; i++) {
    const a = /^\s*- alert: (.*)$/.exec(lines[i]);
    if (a) alert = a[1].trim();
    const e = /^(\s*)expr: ?(.*)$/.exec(lines[i]);
    if (!e) continue;
    if (e[2].trim() !== '|') {
      rules.push({ file, alert, expr: e[2].trim() });
      continue;
    }
    const body: string[] = [];
    while (i + 1 < lines.length && (lines[i + 1].trim() === '' || lines[i + 1].length - lines[i + 1].trimStart().length > e[1].length)) body.push(lines[++i].trim());
    rules.push({ file, alert, expr: body.join(' ').trim() });
  }
  return rules;
}

/**
 * Series with the target labels Prometheus attaches (job, instance), plus `up` for every target:
 * 1 for the scraped ones, 0 for those that could not be scraped.
 */
export function snapshot(scrapes: { instance: string; scrape: Scrape | undefined }[]): Snapshot {
  const series: Series[] = [];
  for (const { instance, scrape } of scrapes) {
    series.push({ labels: { __name__: 'up', job: 'etcd', instance }, value: scrape ? 1 : 0 });
    for (const f of scrape?.values() ?? []) {
      for (const s of f.samples) series.push({ labels: { ...s.labels, __name__: s.name, job: 'etcd', instance }, value: s.value });
    }
  }
  return { t: Date.now() / 1000, series };
}
