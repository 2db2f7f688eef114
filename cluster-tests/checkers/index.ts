/**
 * The checkers' public API, and `runCheckers`, which runs every checker that applies to a history.
 * Each checker is a pure function of the history; none does I/O.
 */
import type { History } from '../history';
import { checkDurability } from './durability';
import { checkLinearizability, type LinearizabilityOptions } from './linearizability';
import { checkListAppend, type ListAppendOptions } from './list-append';
import { checkLocks } from './lock';
import { checkRevisionOrder } from './revision-order';
import type { Verdict } from './verdict';
import { checkWatches } from './watch';

export { checkDurability, checkLinearizability, checkListAppend, checkLocks, checkRevisionOrder, checkWatches };
export type { LinearizabilityOptions, ListAppendOptions };
export type { Anomaly, CheckerName, JsonValue, Verdict, VerdictStatus, WatchRef } from './verdict';

export interface RunOptions {
  readonly linearizability?: LinearizabilityOptions;
  readonly listAppend?: ListAppendOptions;
}

/** Which checkers have something to check in this history. */
export function applicableCheckers(history: History): Set<Verdict['checker']> {
  const out = new Set<Verdict['checker']>();
  for (const e of history) {
    if (e.kind === 'watch-open') out.add('watch');
    if (e.kind !== 'op') continue;
    if (e.f === 'read' || e.f === 'write' || e.f === 'cas') out.add('linearizability');
    if (e.f === 'txn') out.add('list-append');
    if (e.f === 'final-read') out.add('durability');
    if (e.f === 'lock-acquire') out.add('lock');
    if (e.type === 'ok' && e.revision !== undefined && e.f !== 'final-read') out.add('revision-order');
  }
  return out;
}

export function runCheckers(history: History, opts: RunOptions = {}): Verdict[] {
  const which = applicableCheckers(history);
  const out: Verdict[] = [];
  if (which.has('linearizability')) out.push(checkLinearizability(history, opts.linearizability));
  if (which.has('list-append')) out.push(checkListAppend(history, opts.listAppend));
  if (which.has('revision-order')) out.push(checkRevisionOrder(history));
  if (which.has('watch')) out.push(checkWatches(history));
  if (which.has('durability')) out.push(checkDurability(history));
  if (which.has('lock')) out.push(checkLocks(history));
  return out;
}

/** A run fails on any `fail` verdict; `unknown` is inconclusive (exit code 2 in the CLI); `warn` passes. */
export function overallStatus(verdicts: readonly Verdict[]): 'pass' | 'fail' | 'unknown' {
  if (verdicts.some((v) => v.status === 'fail')) return 'fail';
  if (verdicts.some((v) => v.status === 'unknown')) return 'unknown';
  return 'pass';
}
