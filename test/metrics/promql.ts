/**
 * A tiny PromQL subset, enough to evaluate etcd's published alert rules and dashboard queries
 * against two scrapes of real members: selectors with =, !=, =~, !~; rate, increase, changes and
 * last_over_time over the two scrapes (the range's length is ignored: the two scrapes are the
 * window); histogram_quantile; sum, max, min, count, avg with by / without; arithmetic and
 * comparisons (with bool) between scalars and one-to-one vectors; and, or. Anything else (absent,
 * predict_linear, subqueries) throws Unsupported, and the test falls back to checking the series.
 */

export type Labels = Record<string, string>;
export interface Series {
  labels: Labels;
  value: number;
}
/** One scrape of every target, at a time in seconds; every sample carries __name__, job, instance. */
export interface Snapshot {
  t: number;
  series: Series[];
}
type Value = { kind: 'scalar'; v: number } | { kind: 'vector'; s: Series[] } | { kind: 'range'; sel: Selector };

export class Unsupported extends Error {}

interface Matcher {
  name: string;
  op: '=' | '!=' | '=~' | '!~';
  value: string;
}
export interface Selector {
  metric: string;
  matchers: Matcher[];
}

type Node =
  | { t: 'num'; v: number }
  | { t: 'sel'; sel: Selector; range: boolean }
  | { t: 'call'; fn: string; args: Node[] }
  | { t: 'agg'; op: string; mode: 'by' | 'without' | undefined; labels: string[]; arg: Node }
  | { t: 'bin'; op: string; bool: boolean; l: Node; r: Node }
  | { t: 'neg'; e: Node }
  | { t: 'subq'; e: Node };

const TOKEN = /\s*(?:(\d+(?:\.\d+)?(?:e[+-]?\d+)?)|("(?:[^"\\]|\\.)*")|(\[[^\]]*\])|(==|!=|>=|<=|=~|!~|[-+*/(){},<>=])|([a-zA-Z_:][a-zA-Z0-9_:]*))/y;

function tokenize(src: string): string[] {
  const out: string[] = [];
  TOKEN.lastIndex = 0;
  while (TOKEN.lastIndex < src.length) {
    if (/^\s*$/.test(src.slice(TOKEN.lastIndex))) break;
    const m = TOKEN.exec(src);
    if (!m) throw new Error(`cannot tokenize ${src.slice(TOKEN.lastIndex)}`);
    out.push(m[0].trim());
  }
  return out;
}

const AGGS = new Set(['sum', 'max', 'min', 'count', 'avg']);
const PRECEDENCE: Record<string, number> = { or: 1, and: 2, unless: 2, '==': 3, '!=': 3, '>': 3, '<': 3, '>=': 3, '<=': 3, '+': 4, '-': 4, '*': 5, '/': 5 };

export function parse(src: string): Node {
  const toks = tokenize(src);
  let i = 0;
  const peek = (): string | undefined => toks[i];
  const next = (): string => {
    const t = toks[i++];
    if (t === undefined) throw new Error(`unexpected end of ${src}`);
    return t;
  };
  const expect = (t: string): void => {
    const got = next();
    if (got !== t) throw new Error(`expected ${t}, got ${got} in ${src}`);
  };
  const labelList = (): string[] => {
    expect('(');
    const names: string[] = [];
    while (peek() !== ')') {
      names.push(next());
      if (peek() === ',') next();
    }
    expect(')');
    return names;
  };
  const binary = (minPrec: number): Node => {
    let l = unaryExpr();
    for (;;) {
      const op = peek()?.toLowerCase();
      if (op === undefined || !(op in PRECEDENCE) || PRECEDENCE[op] < minPrec) return l;
      next();
      let bool = false;
      if (peek() === 'bool') {
        next();
        bool = true;
      }
      if (peek() === 'on' || peek() === 'ignoring' || peek() === 'group_left' || peek() === 'group_right') throw new Unsupported('vector matching modifiers');
      const r = binary(PRECEDENCE[op] + 1);
      l = { t: 'bin', op, bool, l, r };
    }
  };
  const unaryExpr = (): Node => {
    if (peek() === '-') {
      next();
      return { t: 'neg', e: unaryExpr() };
    }
    return primary();
  };
  const primary = (): Node => {
    const t = next();
    if (/^\d/.test(t)) return { t: 'num', v: Number(t) };
    if (t === '(') {
      const e = binary(0);
      expect(')');
      // A subquery parses (its selectors are checked) but does not evaluate.
      if (peek()?.startsWith('[')) {
        next();
        return { t: 'subq', e };
      }
      return e;
    }
    if (AGGS.has(t)) {
      let mode: 'by' | 'without' | undefined;
      let labels: string[] = [];
      if (peek() === 'by' || peek() === 'without') {
        mode = next() as 'by' | 'without';
        labels = labelList();
      }
      expect('(');
      const arg = binary(0);
      expect(')');
      if (peek()?.toLowerCase() === 'by' || peek()?.toLowerCase() === 'without') {
        mode = next().toLowerCase() as 'by' | 'without';
        labels = labelList();
      }
      return { t: 'agg', op: t, mode, labels, arg };
    }
    if (peek() === '(' ) {
      next();
      const args: Node[] = [];
      while (peek() !== ')') {
        args.push(binary(0));
        if (peek() === ',') next();
      }
      expect(')');
      return { t: 'call', fn: t, args };
    }
    const matchers: Matcher[] = [];
    if (peek() === '{') {
      next();
      while (peek() !== '}') {
        const name = next();
        const op = next() as Matcher['op'];
        const value = JSON.parse(next()) as string;
        matchers.push({ name, op, value });
        if (peek() === ',') next();
      }
      expect('}');
    }
    let range = false;
    if (peek()?.startsWith('[')) {
      const sel: Node = { t: 'sel', sel: { metric: t, matchers }, range: false };
      if (next().includes(':')) return { t: 'subq', e: sel };
      range = true;
    }
    return { t: 'sel', sel: { metric: t, matchers }, range };
  };
  const root = binary(0);
  if (i !== toks.length) throw new Error(`trailing ${toks.slice(i).join(' ')} in ${src}`);
  return root;
}

/** Every metric selector in an expression (for the series-presence check). */
export function selectors(n: Node): Selector[] {
  switch (n.t) {
    case 'sel':
      return [n.sel];
    case 'call':
      return n.args.flatMap(selectors);
    case 'agg':
      return selectors(n.arg);
    case 'bin':
      return [...selectors(n.l), ...selectors(n.r)];
    case 'neg':
    case 'subq':
      return selectors(n.e);
    default:
      return [];
  }
}

/** Label names an expression groups by or aggregates away (they must exist on its series). */
export function groupingLabels(n: Node): string[] {
  switch (n.t) {
    case 'call':
      return n.args.flatMap(groupingLabels);
    case 'agg':
      return [...n.labels, ...groupingLabels(n.arg)];
    case 'bin':
      return [...groupingLabels(n.l), ...groupingLabels(n.r)];
    case 'neg':
    case 'subq':
      return groupingLabels(n.e);
    default:
      return [];
  }
}

function matches(s: Series, sel: Selector): boolean {
  if (s.labels.__name__ !== sel.metric) return false;
  return sel.matchers.every((m) => {
    const v = s.labels[m.name] ?? '';
    if (m.op === '=') return v === m.value;
    if (m.op === '!=') return v !== m.value;
    const re = new RegExp(`^(?:${m.value})$`);
    return m.op === '=~' ? re.test(v) : !re.test(v);
  });
}

const key = (l: Labels, drop: string[] = ['__name__']): string =>
  JSON.stringify(Object.entries(l).filter(([k]) => !drop.includes(k)).sort(([a], [b]) => (a < b ? -1 : 1)));
const withoutName = (l: Labels): Labels => Object.fromEntries(Object.entries(l).filter(([k]) => k !== '__name__'));

function compare(op: string, a: number, b: number): boolean {
  return op === '==' ? a === b : op === '!=' ? a !== b : op === '>' ? a > b : op === '<' ? a < b : op === '>=' ? a >= b : a <= b;
}
function arith(op: string, a: number, b: number): number {
  return op === '+' ? a + b : op === '-' ? a - b : op === '*' ? a * b : a / b;
}

/** Evaluates `src` at the later of two snapshots; ranges span the two. Returns the result vector. */
export function evaluate(src: string, before: Snapshot, now: Snapshot): Series[] {
  const v = evalNode(parse(src), before, now);
  if (v.kind === 'vector') return v.s;
  if (v.kind === 'scalar') return [{ labels: {}, value: v.v }];
  throw new Error('a range vector is not a result');
}

function evalNode(n: Node, before: Snapshot, now: Snapshot): Value {
  switch (n.t) {
    case 'num':
      return { kind: 'scalar', v: n.v };
    case 'neg': {
      const e = evalNode(n.e, before, now);
      if (e.kind === 'scalar') return { kind: 'scalar', v: -e.v };
      if (e.kind === 'vector') return { kind: 'vector', s: e.s.map((s) => ({ labels: withoutName(s.labels), value: -s.value })) };
      throw new Error('negated range');
    }
    case 'sel':
      if (n.range) return { kind: 'range', sel: n.sel };
      return { kind: 'vector', s: now.series.filter((s) => matches(s, n.sel)) };
    case 'call':
      return call(n.fn, n.args.map((a) => evalNode(a, before, now)), before, now);
    case 'agg': {
      const arg = evalNode(n.arg, before, now);
      if (arg.kind !== 'vector') throw new Error(`${n.op} of a non-vector`);
      const groups = new Map<string, { labels: Labels; values: number[] }>();
      for (const s of arg.s) {
        const labels: Labels = {};
        for (const [k, v] of Object.entries(s.labels)) {
          if (k === '__name__') continue;
          if (n.mode === 'by' ? n.labels.includes(k) : n.mode === 'without' ? !n.labels.includes(k) : false) labels[k] = v;
        }
        const g = groups.get(key(labels)) ?? { labels, values: [] };
        g.values.push(s.value);
        groups.set(key(labels), g);
      }
      const agg = (xs: number[]): number =>
        n.op === 'sum' ? xs.reduce((a, b) => a + b, 0) : n.op === 'max' ? Math.max(...xs) : n.op === 'min' ? Math.min(...xs) : n.op === 'count' ? xs.length : xs.reduce((a, b) => a + b, 0) / xs.length;
      return { kind: 'vector', s: [...groups.values()].map((g) => ({ labels: g.labels, value: agg(g.values) })) };
    }
    case 'bin':
      return binaryOp(n.op, n.bool, evalNode(n.l, before, now), evalNode(n.r, before, now));
    case 'subq':
      throw new Unsupported('subquery');
  }
}

function binaryOp(op: string, bool: boolean, l: Value, r: Value): Value {
  if (l.kind === 'range' || r.kind === 'range') throw new Error('binary op on a range');
  const isCmp = ['==', '!=', '>', '<', '>=', '<='].includes(op);
  if (op === 'and' || op === 'or' || op === 'unless') {
    if (l.kind !== 'vector' || r.kind !== 'vector') throw new Error(`${op} needs vectors`);
    const rk = new Set(r.s.map((s) => key(s.labels)));
    if (op === 'and') return { kind: 'vector', s: l.s.filter((s) => rk.has(key(s.labels))) };
    if (op === 'unless') return { kind: 'vector', s: l.s.filter((s) => !rk.has(key(s.labels))) };
    const lk = new Set(l.s.map((s) => key(s.labels)));
    return { kind: 'vector', s: [...l.s, ...r.s.filter((s) => !lk.has(key(s.labels)))] };
  }
  if (l.kind === 'scalar' && r.kind === 'scalar') return { kind: 'scalar', v: isCmp ? Number(compare(op, l.v, r.v)) : arith(op, l.v, r.v) };
  const pairs: { labels: Labels; a: number; b: number; keepName: Labels }[] = [];
  if (l.kind === 'vector' && r.kind === 'scalar') for (const s of l.s) pairs.push({ labels: s.labels, a: s.value, b: r.v, keepName: s.labels });
  else if (l.kind === 'scalar' && r.kind === 'vector') for (const s of r.s) pairs.push({ labels: s.labels, a: l.v, b: s.value, keepName: s.labels });
  else if (l.kind === 'vector' && r.kind === 'vector') {
    const right = new Map(r.s.map((s) => [key(s.labels), s]));
    for (const s of l.s) {
      const o = right.get(key(s.labels));
      if (o) pairs.push({ labels: s.labels, a: s.value, b: o.value, keepName: s.labels });
    }
  }
  const out: Series[] = [];
  for (const p of pairs) {
    if (!isCmp) out.push({ labels: withoutName(p.labels), value: arith(op, p.a, p.b) });
    else if (bool) out.push({ labels: withoutName(p.labels), value: Number(compare(op, p.a, p.b)) });
    else if (compare(op, p.a, p.b)) out.push({ labels: p.keepName, value: p.a });
  }
  return { kind: 'vector', s: out };
}

function call(fn: string, args: Value[], before: Snapshot, now: Snapshot): Value {
  if (fn === 'histogram_quantile') {
    const [q, v] = args;
    if (q.kind !== 'scalar' || v.kind !== 'vector') throw new Error('histogram_quantile(scalar, vector)');
    return { kind: 'vector', s: histogramQuantile(q.v, v.s) };
  }
  const [r] = args;
  if (!['rate', 'increase', 'changes', 'last_over_time'].includes(fn)) throw new Unsupported(fn);
  if (r?.kind !== 'range') throw new Error(`${fn} needs a range vector`);
  const old = new Map(before.series.filter((s) => matches(s, r.sel)).map((s) => [key(s.labels, []), s.value]));
  const out: Series[] = [];
  for (const s of now.series.filter((x) => matches(x, r.sel))) {
    if (fn === 'last_over_time') {
      out.push({ labels: withoutName(s.labels), value: s.value });
      continue;
    }
    const prev = old.get(key(s.labels, []));
    if (prev === undefined) continue; // one sample in the window: no rate
    const delta = s.value >= prev ? s.value - prev : s.value; // a counter reset
    const value = fn === 'rate' ? delta / (now.t - before.t) : fn === 'increase' ? delta : Number(s.value !== prev);
    out.push({ labels: withoutName(s.labels), value });
  }
  return { kind: 'vector', s: out };
}

/** Prometheus' histogram_quantile: linear interpolation inside the bucket holding the rank. */
function histogramQuantile(q: number, buckets: Series[]): Series[] {
  const groups = new Map<string, { labels: Labels; b: { le: number; c: number }[] }>();
  for (const s of buckets) {
    const labels = Object.fromEntries(Object.entries(s.labels).filter(([k]) => k !== 'le' && k !== '__name__'));
    const g = groups.get(key(labels)) ?? { labels, b: [] };
    g.b.push({ le: s.labels.le === '+Inf' ? Infinity : Number(s.labels.le), c: s.value });
    groups.set(key(labels), g);
  }
  const out: Series[] = [];
  for (const g of groups.values()) {
    const b = g.b.sort((x, y) => x.le - y.le);
    const total = b[b.length - 1]?.c ?? 0;
    if (b.length < 2 || b[b.length - 1].le !== Infinity || total === 0) {
      out.push({ labels: g.labels, value: NaN });
      continue;
    }
    const rank = q * total;
    const i = b.findIndex((x) => x.c >= rank);
    if (b[i].le === Infinity) {
      // In the +Inf bucket: the upper bound of the highest finite bucket.
      out.push({ labels: g.labels, value: b[b.length - 2].le });
      continue;
    }
    const lower = i === 0 ? 0 : b[i - 1].le;
    const below = i === 0 ? 0 : b[i - 1].c;
    const inBucket = b[i].c - below;
    out.push({ labels: g.labels, value: inBucket === 0 ? b[i].le : lower + ((b[i].le - lower) * (rank - below)) / inBucket });
  }
  return out;
}
