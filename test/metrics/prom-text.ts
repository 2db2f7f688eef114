/**
 * A parser for the Prometheus text exposition format (version 0.0.4), enough to compare two
 * members' /metrics: families with their type and help, and every sample with its labels.
 */

export interface Sample {
  /** The sample's own name: the family name, or it plus _bucket / _sum / _count. */
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Family {
  name: string;
  type: string;
  help: string;
  samples: Sample[];
}

export type Scrape = Map<string, Family>;

const SUFFIXES = ['_bucket', '_sum', '_count'];

function parseLabels(text: string): Record<string, string> {
  const labels: Record<string, string> = {};
  const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
  for (let m = re.exec(text); m; m = re.exec(text)) labels[m[1]] = m[2].replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\');
  return labels;
}

function parseValue(v: string): number {
  if (v === '+Inf') return Infinity;
  if (v === '-Inf') return -Infinity;
  return Number(v);
}

export function parseScrape(text: string): Scrape {
  const families: Scrape = new Map();
  const family = (name: string): Family => {
    let f = families.get(name);
    if (!f) {
      f = { name, type: 'untyped', help: '', samples: [] };
      families.set(name, f);
    }
    return f;
  };
  for (const line of text.split('\n')) {
    if (line.startsWith('# HELP ')) {
      const [, , name, ...help] = line.split(' ');
      family(name).help = help.join(' ');
    } else if (line.startsWith('# TYPE ')) {
      const [, , name, type] = line.split(' ');
      family(name).type = type;
    } else if (line.trim() !== '' && !line.startsWith('#')) {
      const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
      if (!m) throw new Error(`unparsable metrics line: ${line}`);
      const name = m[1];
      const base = SUFFIXES.map((s) => (name.endsWith(s) ? name.slice(0, -s.length) : '')).find((b) => b !== '' && families.has(b) && families.get(b)!.type !== 'untyped');
      family(base ?? name).samples.push({ name, labels: parseLabels(m[3] ?? ''), value: parseValue(m[4]) });
    }
  }
  return families;
}

/** The label names a family's samples carry (histogram `le` and summary `quantile` left out). */
export function labelNames(f: Family): string[] {
  const names = new Set<string>();
  for (const s of f.samples) for (const k of Object.keys(s.labels)) if (k !== 'le' && k !== 'quantile') names.add(k);
  return [...names].sort();
}

/** The value of the one sample named `name` whose labels include `labels`, summed over matches. */
export function valueOf(scrape: Scrape, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  let found = false;
  for (const f of scrape.values()) {
    for (const s of f.samples) {
      if (s.name !== name) continue;
      if (!Object.entries(labels).every(([k, v]) => s.labels[k] === v)) continue;
      sum += s.value;
      found = true;
    }
  }
  return found ? sum : NaN;
}

export async function scrape(clientUrl: string): Promise<Scrape> {
  const res = await fetch(`${clientUrl}/metrics`);
  if (res.status !== 200) throw new Error(`GET ${clientUrl}/metrics: ${res.status}`);
  return parseScrape(await res.text());
}
