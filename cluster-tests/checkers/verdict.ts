/**
 * What every checker returns. A verdict is JSON (it is written to verdicts.json as is) and points
 * back into the history by entry index, so the report can highlight the operations involved.
 */

export type JsonValue = string | number | boolean | null | readonly JsonValue[] | { readonly [k: string]: JsonValue };

export type CheckerName = 'linearizability' | 'list-append' | 'revision-order' | 'watch' | 'durability' | 'lock';

/**
 * - `pass`: no violation found.
 * - `fail`: at least one violation; see `anomalies`.
 * - `unknown`: the checker gave up (a search limit was hit) without finding a violation.
 * - `warn`: only known, documented unsafety was found (leases used as locks); does not fail a run.
 */
export type VerdictStatus = 'pass' | 'fail' | 'unknown' | 'warn';

/** A reference to a watch response: the watcher and the response's history index. */
export interface WatchRef {
  readonly watcher: string;
  readonly entryIndex: number;
}

export interface Anomaly {
  /** Stable name, e.g. 'stale-read', 'G-single', 'watch-gap', 'lost-write'. */
  readonly type: string;
  /** One or two sentences a human can act on. */
  readonly message: string;
  /** The operations involved (invoke entry indices), most important first. */
  readonly ops: readonly number[];
  readonly watches?: readonly WatchRef[];
  /** Key(s) involved, when the anomaly is about keys. */
  readonly keys?: readonly string[];
  /** Checker-specific evidence: the counterexample (a cycle, the linearization prefix, …). */
  readonly evidence?: { readonly [k: string]: JsonValue };
}

export interface Verdict {
  readonly checker: CheckerName;
  readonly status: VerdictStatus;
  /** One line for the summary table. */
  readonly summary: string;
  /** Counts that say how much was checked (ops, keys, edges, watchers, …). */
  readonly stats: { readonly [k: string]: number };
  /** At most MAX_ANOMALIES_REPORTED, in the order found; `stats.anomalies` has the full count. */
  readonly anomalies: readonly Anomaly[];
  readonly durationMs: number;
}

/** Verdicts stay small enough to read: beyond this many anomalies only the count is kept. */
export const MAX_ANOMALIES_REPORTED = 50;

/** Collects anomalies up to the limit while counting all of them. */
export class AnomalySink {
  readonly list: Anomaly[] = [];
  count = 0;
  readonly byType = new Map<string, number>();

  add(a: Anomaly): void {
    this.count++;
    this.byType.set(a.type, (this.byType.get(a.type) ?? 0) + 1);
    if (this.list.length < MAX_ANOMALIES_REPORTED) this.list.push(a);
  }

  typesSummary(): string {
    return [...this.byType].map(([t, n]) => `${t}×${n}`).join(', ');
  }
}

export function nowMs(): number {
  return performance.now();
}
