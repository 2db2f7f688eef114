/**
 * Dependency graphs between transactions (Adya's DSG, as Elle builds it): nodes are transactions,
 * edges are typed ww / wr / rw (data dependencies) or rt (real time: one finished before the other
 * began). Strongly connected components (Tarjan) locate cycles; a breadth-first search inside a
 * component, restricted to some edge types, finds a shortest cycle of the kind asked for.
 */

export const WW = 1;
export const WR = 2;
export const RW = 4;
export const RT = 8;
export type EdgeMask = number;

export function edgeName(t: number): 'ww' | 'wr' | 'rw' | 'rt' {
  return t === WW ? 'ww' : t === WR ? 'wr' : t === RW ? 'rw' : 'rt';
}

/** Why an edge exists, for the counterexample (the first reason found is kept). */
export interface EdgeReason {
  readonly key?: string;
  readonly detail: string;
}

export class DepGraph {
  /** from → (to → bitmask of edge types). */
  readonly out = new Map<number, Map<number, number>>();
  private readonly reasons = new Map<string, EdgeReason>();
  edgeCount = 0;

  addNode(n: number): void {
    if (!this.out.has(n)) this.out.set(n, new Map());
  }

  add(from: number, to: number, type: number, reason: EdgeReason): void {
    if (from === to) return;
    this.addNode(from);
    this.addNode(to);
    const m = this.out.get(from)!;
    const prev = m.get(to) ?? 0;
    if ((prev & type) === 0) {
      m.set(to, prev | type);
      this.edgeCount++;
      this.reasons.set(`${from}>${to}>${type}`, reason);
    }
  }

  reason(from: number, to: number, type: number): EdgeReason | undefined {
    return this.reasons.get(`${from}>${to}>${type}`);
  }

  /** Strongly connected components with more than one node (iterative Tarjan). */
  sccs(): number[][] {
    const index = new Map<number, number>();
    const low = new Map<number, number>();
    const onStack = new Set<number>();
    const stack: number[] = [];
    const result: number[][] = [];
    let counter = 0;
    for (const root of this.out.keys()) {
      if (index.has(root)) continue;
      const work: { node: number; it: Iterator<number> }[] = [];
      const visit = (v: number): void => {
        index.set(v, counter);
        low.set(v, counter);
        counter++;
        stack.push(v);
        onStack.add(v);
        work.push({ node: v, it: this.out.get(v)!.keys() });
      };
      visit(root);
      while (work.length > 0) {
        const top = work[work.length - 1];
        const nx = top.it.next();
        if (!nx.done) {
          const w = nx.value;
          if (!index.has(w)) visit(w);
          else if (onStack.has(w)) low.set(top.node, Math.min(low.get(top.node)!, index.get(w)!));
          continue;
        }
        work.pop();
        if (work.length > 0) {
          const parent = work[work.length - 1].node;
          low.set(parent, Math.min(low.get(parent)!, low.get(top.node)!));
        }
        if (low.get(top.node) === index.get(top.node)) {
          const comp: number[] = [];
          let w: number;
          do {
            w = stack.pop()!;
            onStack.delete(w);
            comp.push(w);
          } while (w !== top.node);
          if (comp.length > 1) result.push(comp);
        }
      }
    }
    return result;
  }

  /**
   * Shortest path from `from` to `to` inside `within`, using only edges whose type is in `mask`.
   * Returns the nodes (from … to) or undefined.
   */
  path(from: number, to: number, mask: EdgeMask, within: ReadonlySet<number>): number[] | undefined {
    const parent = new Map<number, number>([[from, from]]);
    let frontier = [from];
    while (frontier.length > 0) {
      const next: number[] = [];
      for (const v of frontier) {
        for (const [w, types] of this.out.get(v) ?? []) {
          if ((types & mask) === 0 || !within.has(w) || parent.has(w)) continue;
          parent.set(w, v);
          if (w === to) {
            const p = [to];
            for (let x = to; x !== from; ) {
              x = parent.get(x)!;
              p.push(x);
            }
            return p.reverse();
          }
          next.push(w);
        }
      }
      frontier = next;
    }
    return undefined;
  }

  types(from: number, to: number): number {
    return this.out.get(from)?.get(to) ?? 0;
  }
}

/** Limits on cycle search inside one component, so a huge component stays cheap. */
export const MAX_CYCLE_SEARCH_STARTS = 64;

export interface CycleStep {
  readonly from: number;
  readonly to: number;
  readonly type: 'ww' | 'wr' | 'rw' | 'rt';
  readonly reason: EdgeReason;
}

/** Pick the edge type to show for a step: the most specific allowed one (ww, wr, rw, then rt). */
function labelStep(g: DepGraph, from: number, to: number, mask: EdgeMask): CycleStep {
  const t = g.types(from, to) & mask;
  for (const type of [WW, WR, RW, RT]) {
    if ((t & type) !== 0) return { from, to, type: edgeName(type), reason: g.reason(from, to, type) ?? { detail: '' } };
  }
  throw new Error(`graph: no edge ${from}→${to} in mask ${mask}`);
}

function stepsOf(g: DepGraph, nodes: readonly number[], mask: EdgeMask, rwOnce?: { from: number; to: number }): CycleStep[] {
  const steps: CycleStep[] = [];
  for (let i = 0; i < nodes.length - 1; i++) {
    const from = nodes[i];
    const to = nodes[i + 1];
    if (rwOnce !== undefined && from === rwOnce.from && to === rwOnce.to) steps.push({ from, to, type: 'rw', reason: g.reason(from, to, RW) ?? { detail: '' } });
    else steps.push(labelStep(g, from, to, mask));
  }
  return steps;
}

/** Elle's names: G0 (ww only), G1c (ww+wr), G-single (one rw), G2 (several rw); "-realtime" if it needs rt. */
export function classifyCycle(steps: readonly CycleStep[]): string {
  const rw = steps.filter((s) => s.type === 'rw').length;
  const wr = steps.some((s) => s.type === 'wr');
  const rt = steps.some((s) => s.type === 'rt');
  const base = rw === 0 ? (wr ? 'G1c' : 'G0') : rw === 1 ? 'G-single' : 'G2';
  return rt ? `${base}-realtime` : base;
}

/**
 * The most specific cycle in a component, trying in order: G0, G1c, G-single, G2, and then the same
 * with real-time edges allowed. Returns the cycle's steps (closing back to the first node).
 */
export function findCycle(g: DepGraph, component: readonly number[]): CycleStep[] | undefined {
  const within = new Set(component);
  const starts = component.slice(0, MAX_CYCLE_SEARCH_STARTS);
  const simple = (mask: EdgeMask): CycleStep[] | undefined => {
    let best: number[] | undefined;
    for (const s of starts) {
      for (const [w, types] of g.out.get(s) ?? []) {
        if ((types & mask) === 0 || !within.has(w)) continue;
        const p = w === s ? [s] : g.path(w, s, mask, within);
        if (p !== undefined && (best === undefined || p.length + 1 < best.length)) best = [s, ...p];
      }
      if (best !== undefined && best.length <= 3) break;
    }
    return best === undefined ? undefined : stepsOf(g, best, mask);
  };
  const single = (mask: EdgeMask): CycleStep[] | undefined => {
    let tried = 0;
    for (const a of component) {
      for (const [b, types] of g.out.get(a) ?? []) {
        if ((types & RW) === 0 || !within.has(b)) continue;
        if (++tried > MAX_CYCLE_SEARCH_STARTS * 4) return undefined;
        const p = g.path(b, a, mask, within);
        if (p !== undefined) return stepsOf(g, [a, ...p], mask, { from: a, to: b });
      }
    }
    return undefined;
  };
  return (
    simple(WW) ??
    simple(WW | WR) ??
    single(WW | WR) ??
    simple(WW | WR | RW) ??
    simple(WW | RT) ??
    simple(WW | WR | RT) ??
    single(WW | WR | RT) ??
    simple(WW | WR | RW | RT)
  );
}

/**
 * Real-time edges without the quadratic blow-up (Elle's approach): keep the frontier of completed
 * operations not yet implied by a later one. A call gets an edge from each frontier op; a completion
 * removes the ops its call already followed, then joins the frontier.
 */
export function addRealtimeEdges(g: DepGraph, ops: readonly { id: number; invokeNs: number; completeNs: number }[]): void {
  const events: { t: number; call: boolean; id: number }[] = [];
  for (const o of ops) {
    events.push({ t: o.invokeNs, call: true, id: o.id });
    if (o.completeNs !== Infinity) events.push({ t: o.completeNs, call: false, id: o.id });
  }
  // At equal times calls go first: touching intervals count as concurrent.
  events.sort((a, b) => a.t - b.t || Number(b.call) - Number(a.call));
  let frontier = new Set<number>();
  const predsAtCall = new Map<number, Set<number>>();
  for (const e of events) {
    if (e.call) {
      predsAtCall.set(e.id, new Set(frontier));
      for (const p of frontier) g.add(p, e.id, RT, { detail: `#${p} completed before #${e.id} was invoked` });
    } else {
      const preds = predsAtCall.get(e.id) ?? new Set<number>();
      const next = new Set<number>();
      for (const f of frontier) if (!preds.has(f)) next.add(f);
      next.add(e.id);
      frontier = next;
    }
  }
}
