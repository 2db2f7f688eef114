/**
 * A small builder for hand-written histories (checker tests, examples in docs). Times are given in
 * milliseconds for readability and stored in nanoseconds. Each operation method returns a handle;
 * after build(), `idOf(handle)` is the operation's id (its invoke entry's index) as verdicts use it.
 */
import type { CasExpectation, History, HistoryEntry, KeyValueString, KvSnapshot, MicroOp, Operation, WatchEvent, WatchOpen } from '../history';
import { indexHistory } from '../history';

export type Outcome = 'ok' | 'fail' | 'info';
/** [invoke ms, complete ms]; for info the completion is when the client gave up. */
export type Span = readonly [number, number];

const NS_PER_MS = 1_000_000;

interface Pending {
  readonly timeNs: number;
  readonly seq: number;
  readonly entry: HistoryEntry;
  readonly handle?: number;
}

export type MicroOpSpec = readonly ['append', string, number] | readonly ['r', string, readonly number[] | null];

export class HistoryBuilder {
  private readonly pending: Pending[] = [];
  private seq = 0;
  private handles = 0;
  private ids: number[] = [];

  private push(timeMs: number, entry: HistoryEntry, handle?: number): void {
    this.pending.push({ timeNs: Math.round(timeMs * NS_PER_MS), seq: this.seq++, entry: { ...entry, timeNs: Math.round(timeMs * NS_PER_MS) }, handle });
  }

  private pair(process: number, span: Span, invoke: Operation, complete: Operation | undefined): number {
    const h = this.handles++;
    this.push(span[0], invoke, h);
    if (complete !== undefined) this.push(span[1], complete);
    return h;
  }

  read(process: number, key: string, span: Span, value: KeyValueString, o: { outcome?: Outcome; modRevision?: number; revision?: number } = {}): number {
    const base = { kind: 'op' as const, process, timeNs: 0, f: 'read' as const, key };
    const outcome = o.outcome ?? 'ok';
    return this.pair(process, span, { ...base, type: 'invoke' }, { ...base, type: outcome, value: outcome === 'ok' ? value : undefined, modRevision: o.modRevision, revision: o.revision });
  }

  write(process: number, key: string, value: KeyValueString, span: Span, o: { outcome?: Outcome; revision?: number } = {}): number {
    const base = { kind: 'op' as const, process, timeNs: 0, f: 'write' as const, key, value };
    return this.pair(process, span, { ...base, type: 'invoke' }, { ...base, type: o.outcome ?? 'ok', revision: o.revision });
  }

  cas(
    process: number,
    key: string,
    expected: CasExpectation,
    value: KeyValueString,
    span: Span,
    o: { outcome?: Outcome; revision?: number; observed?: { value: KeyValueString; modRevision: number } } = {},
  ): number {
    const base = { kind: 'op' as const, process, timeNs: 0, f: 'cas' as const, key, expected, value };
    return this.pair(process, span, { ...base, type: 'invoke' }, { ...base, type: o.outcome ?? 'ok', revision: o.revision, observed: o.observed });
  }

  txn(process: number, mops: readonly MicroOpSpec[], span: Span, outcome: Outcome = 'ok'): number {
    const toMop = (m: MicroOpSpec, done: boolean): MicroOp => (m[0] === 'append' ? { f: 'append', key: m[1], value: m[2] } : { f: 'r', key: m[1], value: done ? m[2] : null });
    const base = { kind: 'op' as const, process, timeNs: 0, f: 'txn' as const };
    return this.pair(process, span, { ...base, type: 'invoke', value: mops.map((m) => toMop(m, false)) }, { ...base, type: outcome, value: mops.map((m) => toMop(m, outcome === 'ok')) });
  }

  list(process: number, key: string, rangeEnd: string | undefined, atRevision: number, span: Span, kvs: readonly KvSnapshot[], revision: number): number {
    const base = { kind: 'op' as const, process, timeNs: 0, f: 'list' as const, key, rangeEnd, atRevision };
    return this.pair(process, span, { ...base, type: 'invoke' }, { ...base, type: 'ok', value: kvs, revision });
  }

  compact(process: number, atRevision: number, span: Span, outcome: Outcome = 'ok'): number {
    const base = { kind: 'op' as const, process, timeNs: 0, f: 'compact' as const, atRevision };
    return this.pair(process, span, { ...base, type: 'invoke' }, { ...base, type: outcome });
  }

  finalRead(process: number, span: Span, r: { kvs?: readonly KvSnapshot[]; lists?: readonly { key: string; value: readonly number[] }[] }): number {
    const base = { kind: 'op' as const, process, timeNs: 0, f: 'final-read' as const };
    return this.pair(process, span, { ...base, type: 'invoke' }, { ...base, type: 'ok', ...r });
  }

  lock(process: number, f: 'lock-acquire' | 'lock-release', lockName: string, span: Span, o: { outcome?: Outcome; revision?: number } = {}): number {
    const base = { kind: 'op' as const, process, timeNs: 0, f, lockName };
    return this.pair(process, span, { ...base, type: 'invoke' }, { ...base, type: o.outcome ?? 'ok', revision: o.revision });
  }

  nemesis(fault: string, fromMs: number, toMs: number | undefined, detail?: string): void {
    this.push(fromMs, { kind: 'nemesis', fault, phase: 'start', timeNs: 0, detail });
    if (toMs !== undefined) this.push(toMs, { kind: 'nemesis', fault, phase: 'stop', timeNs: 0 });
  }

  watchOpen(atMs: number, o: Omit<WatchOpen, 'kind' | 'timeNs'>): void {
    this.push(atMs, { kind: 'watch-open', timeNs: 0, ...o });
  }

  /** A response; returns nothing (responses are referred to by entry index: see responseIndex). */
  watchResponse(atMs: number, watcher: string, revision: number, events: readonly WatchEvent[], o: { progressNotify?: boolean; created?: boolean; canceled?: boolean; compactRevision?: number } = {}): void {
    this.push(atMs, { kind: 'watch-response', watcher, timeNs: 0, revision, events, ...o });
  }

  watchClose(atMs: number, watcher: string): void {
    this.push(atMs, { kind: 'watch-close', watcher, timeNs: 0 });
  }

  build(): History {
    const sorted = this.pending.slice().sort((a, b) => a.timeNs - b.timeNs || a.seq - b.seq);
    this.ids = [];
    sorted.forEach((p, i) => {
      if (p.handle !== undefined) this.ids[p.handle] = i;
    });
    return indexHistory(sorted.map((p) => p.entry));
  }

  /** The operation id (invoke index) of a handle; valid after build(). */
  idOf(handle: number): number {
    const id = this.ids[handle];
    if (id === undefined) throw new Error('HistoryBuilder.idOf: call build() first');
    return id;
  }
}

/** Watch event shorthand for tests: put(key, value, rev, prev?) and del(key, rev, prev?). */
export function put(key: string, value: string, modRevision: number, prevKv?: KvSnapshot): WatchEvent {
  return { type: 'PUT', key, value, modRevision, prevKv };
}

export function del(key: string, modRevision: number, prevKv?: KvSnapshot): WatchEvent {
  return { type: 'DELETE', key, value: '', modRevision, prevKv };
}

export function kv(key: string, value: string, modRevision: number): KvSnapshot {
  return { key, value, modRevision };
}
