/**
 * Strict serializability of list-append transactions, in the spirit of Elle (Kingsbury & Alvaro,
 * "Elle: Inferring Isolation Anomalies from Experimental Observations", VLDB 2020).
 *
 * Each key holds a list; transactions append unique elements and read whole lists. Because every
 * read returns the full list, the version order of a key is the longest list read, and every other
 * read must be a prefix of it. From that order:
 * - ww: the appender of element i precedes the appender of element i+1;
 * - wr: the appender of a read's last element precedes the reader;
 * - rw: a reader precedes the appender of the first element it did not see (and of any committed
 *   append never seen at all, which must come after every read of its key);
 * - rt: a transaction that completed before another was invoked precedes it (strict).
 * A cycle is an anomaly; it is named by its edges (graph.ts). Non-cyclic anomalies are found
 * directly: G1a (read of an aborted append), G1b (read of an intermediate state of a transaction),
 * internal inconsistency, duplicate elements or appends, reads of elements nobody appended, and
 * reads incompatible with the version order.
 */
import { type History, type MicroOp, type PairedOp, type TxnOp, pairOperations } from '../history';
import { type CycleStep, DepGraph, RW, WR, WW, addRealtimeEdges, classifyCycle, findCycle } from './graph';
import { AnomalySink, type JsonValue, type Verdict, nowMs } from './verdict';

type TxnPaired = PairedOp<TxnOp>;

interface Append {
  readonly op: TxnPaired;
  /** True if this is the transaction's last append to the key. */
  readonly lastInTxn: boolean;
}

interface Read {
  readonly op: TxnPaired;
  readonly key: string;
  readonly list: readonly number[];
  /** The list without the reader's own appends (made earlier in the same transaction). */
  readonly external: readonly number[];
}

export interface ListAppendOptions {
  /** Add real-time edges (strict serializability). Default true; false checks serializability. */
  readonly realtime?: boolean;
}

export function checkListAppend(history: History, opts: ListAppendOptions = {}): Verdict {
  const t0 = nowMs();
  const sink = new AnomalySink();
  const txns = pairOperations(history).filter((o): o is TxnPaired => o.f === 'txn');

  // 1. Who appended what.
  const appends = new Map<string, Map<number, Append>>();
  for (const op of txns) {
    const mine = op.invoke.value.filter((m): m is Extract<MicroOp, { f: 'append' }> => m.f === 'append');
    mine.forEach((m, i) => {
      const perKey = appends.get(m.key) ?? appends.set(m.key, new Map()).get(m.key)!;
      const dup = perKey.get(m.value);
      if (dup !== undefined) {
        sink.add({ type: 'duplicate-appends', message: `element ${m.value} appended to ${JSON.stringify(m.key)} twice (#${dup.op.id}, #${op.id}); appends must be unique`, ops: [op.id, dup.op.id], keys: [m.key] });
        return;
      }
      const lastInTxn = !mine.slice(i + 1).some((n) => n.key === m.key);
      perKey.set(m.value, { op, lastInTxn });
    });
  }

  // 2. Reads, with direct (non-cycle) anomalies.
  const reads: Read[] = [];
  for (const op of txns) {
    if (op.outcome !== 'ok' || op.complete === undefined) continue;
    const own = new Map<string, number[]>();
    const firstRead = new Map<string, readonly number[]>();
    for (const m of op.complete.value) {
      if (m.f === 'append') {
        (own.get(m.key) ?? own.set(m.key, []).get(m.key)!).push(m.value);
        continue;
      }
      const list = m.value ?? [];
      const mineSoFar = own.get(m.key) ?? [];
      checkInternal(op, m.key, list, mineSoFar, firstRead.get(m.key), sink);
      if (!firstRead.has(m.key)) firstRead.set(m.key, list.slice(0, list.length - mineSoFar.length));
      const external = endsWith(list, mineSoFar) ? list.slice(0, list.length - mineSoFar.length) : list;
      checkReadElements(op, m.key, list, appends.get(m.key), sink);
      reads.push({ op, key: m.key, list, external });
    }
  }

  // 3. Version order per key: the longest read; every read must be a prefix of it.
  const order = new Map<string, readonly number[]>();
  const compatible: Read[] = [];
  const byKey = new Map<string, Read[]>();
  for (const r of reads) (byKey.get(r.key) ?? byKey.set(r.key, []).get(r.key)!).push(r);
  for (const [key, rs] of byKey) {
    let longest = rs[0];
    for (const r of rs) if (r.list.length > longest.list.length) longest = r;
    order.set(key, longest.list);
    for (const r of rs) {
      if (isPrefix(r.list, longest.list)) compatible.push(r);
      else {
        sink.add({
          type: 'incompatible-order',
          message: `reads of ${JSON.stringify(key)} disagree on the order of elements: #${r.op.id} read ${JSON.stringify(r.list)}, #${longest.op.id} read ${JSON.stringify(longest.list)}`,
          ops: [r.op.id, longest.op.id],
          keys: [key],
          evidence: { read: r.list as number[], longest: longest.list as number[] },
        });
      }
    }
  }

  // 4. The dependency graph over committed (ok, or info but observed) transactions.
  const g = new DepGraph();
  const committed = new Set<number>();
  for (const op of txns) if (op.outcome === 'ok') committed.add(op.id);
  for (const [key, els] of order) for (const e of els) {
    const a = appends.get(key)?.get(e);
    if (a !== undefined && a.op.outcome === 'info') committed.add(a.op.id);
  }
  const writerOf = (key: string, e: number): TxnPaired | undefined => appends.get(key)?.get(e)?.op;
  for (const [key, els] of order) {
    for (let i = 0; i + 1 < els.length; i++) {
      const a = writerOf(key, els[i]);
      const b = writerOf(key, els[i + 1]);
      if (a !== undefined && b !== undefined) g.add(a.id, b.id, WW, { key, detail: `#${a.id} appended ${els[i]} to ${key}, then #${b.id} appended ${els[i + 1]}` });
    }
  }
  for (const r of compatible) {
    const els = order.get(r.key)!;
    const m = r.external.length;
    if (m > 0) {
      const w = writerOf(r.key, r.external[m - 1]);
      if (w !== undefined) g.add(w.id, r.op.id, WR, { key: r.key, detail: `#${r.op.id} read ${r.key} = ${shortList(r.external)}, whose last element #${w.id} appended` });
    }
    if (m < els.length) {
      const w = writerOf(r.key, els[m]);
      if (w !== undefined) g.add(r.op.id, w.id, RW, { key: r.key, detail: `#${r.op.id} read ${r.key} = ${shortList(r.external)}, without ${els[m]} that #${w.id} appended next` });
    }
  }
  // Committed appends nobody ever saw come after every read of their key that did not see them.
  for (const [key, perKey] of appends) {
    const seen = new Set(order.get(key) ?? []);
    const unseen = [...perKey].filter(([e, a]) => !seen.has(e) && a.op.outcome === 'ok');
    if (unseen.length === 0) continue;
    for (const r of byKey.get(key) ?? []) {
      for (const [e, a] of unseen) {
        if (r.op.id !== a.op.id) g.add(r.op.id, a.op.id, RW, { key, detail: `#${r.op.id} read ${key} = ${shortList(r.external)}, without ${e} that #${a.op.id} appended (never read by anyone)` });
      }
    }
  }
  for (const id of committed) g.addNode(id);
  const dataEdges = g.edgeCount;
  if (opts.realtime !== false) {
    addRealtimeEdges(g, txns.filter((t) => committed.has(t.id)));
  }

  // 5. Cycles.
  const components = g.sccs();
  for (const comp of components) {
    const cycle = findCycle(g, comp);
    if (cycle === undefined) continue;
    const type = classifyCycle(cycle);
    sink.add({
      type,
      message: `${type} cycle of ${cycle.length} transactions: ${cycle.map((s) => `#${s.from} -${s.type}→ #${s.to}`).join(', ')}`,
      ops: cycle.map((s) => s.from),
      keys: [...new Set(cycle.map((s) => s.reason.key).filter((k): k is string => k !== undefined))],
      evidence: { cycle: cycle.map(stepJson), componentSize: comp.length },
    });
  }

  const status = sink.count > 0 ? 'fail' : 'pass';
  return {
    checker: 'list-append',
    status,
    summary: status === 'pass' ? `${txns.length} txns over ${order.size} keys: no anomalies` : `${sink.count} anomalies: ${sink.typesSummary()}`,
    stats: { txns: txns.length, committed: committed.size, keys: order.size, reads: reads.length, dataEdges, edges: g.edgeCount, cyclicComponents: components.length, anomalies: sink.count },
    anomalies: sink.list,
    durationMs: nowMs() - t0,
  };
}

function stepJson(s: CycleStep): JsonValue {
  return { from: s.from, to: s.to, type: s.type, key: s.reason.key ?? null, why: s.reason.detail };
}

function checkReadElements(op: TxnPaired, key: string, list: readonly number[], perKey: Map<number, Append> | undefined, sink: AnomalySink): void {
  const seen = new Set<number>();
  list.forEach((e, i) => {
    if (seen.has(e)) sink.add({ type: 'duplicate-elements', message: `#${op.id} read ${key} with ${e} twice: ${shortList(list)}`, ops: [op.id], keys: [key] });
    seen.add(e);
    const a = perKey?.get(e);
    if (a === undefined) {
      sink.add({ type: 'garbage-read', message: `#${op.id} read element ${e} in ${key}, which no transaction appended`, ops: [op.id], keys: [key] });
      return;
    }
    if (a.op.outcome === 'fail') {
      sink.add({ type: 'G1a', message: `#${op.id} read element ${e} in ${key}, appended by #${a.op.id}, which failed (aborted read)`, ops: [op.id, a.op.id], keys: [key] });
    }
    if (i === list.length - 1 && a.op.id !== op.id && !a.lastInTxn) {
      sink.add({
        type: 'G1b',
        message: `#${op.id} read ${key} ending in ${e}, an intermediate state of #${a.op.id}, which appended more to ${key} afterwards`,
        ops: [op.id, a.op.id],
        keys: [key],
      });
    }
  });
}

/** A read inside a transaction must see the transaction's own earlier appends, after what it read before. */
function checkInternal(op: TxnPaired, key: string, list: readonly number[], mine: readonly number[], earlier: readonly number[] | undefined, sink: AnomalySink): void {
  const expected = earlier === undefined ? undefined : [...earlier, ...mine];
  const bad = expected !== undefined ? !sameList(list, expected) : !endsWith(list, mine);
  if (bad) {
    sink.add({
      type: 'internal',
      message: `#${op.id} read ${key} = ${shortList(list)} inside the txn, inconsistent with its own appends ${shortList(mine)}${earlier === undefined ? '' : ` after reading ${shortList(earlier)}`}`,
      ops: [op.id],
      keys: [key],
    });
  }
}

function isPrefix(a: readonly number[], b: readonly number[]): boolean {
  if (a.length > b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function endsWith(a: readonly number[], suffix: readonly number[]): boolean {
  if (suffix.length > a.length) return false;
  for (let i = 0; i < suffix.length; i++) if (a[a.length - suffix.length + i] !== suffix[i]) return false;
  return true;
}

function sameList(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && isPrefix(a, b);
}

/** Lists in messages: the last few elements only. */
function shortList(l: readonly number[]): string {
  return l.length <= 6 ? `[${l.join(',')}]` : `[…${l.slice(-5).join(',')}] (${l.length})`;
}
