/**
 * Records the history (cluster-tests/history.ts) as it happens: kept in memory for the checkers and
 * streamed to `history.jsonl`, so a run that dies still leaves what it saw. Times are monotonic
 * nanoseconds since the recorder was created.
 */
import * as fs from 'node:fs';
import type { HistoryEntry, NemesisEvent, Operation, ProcessId } from './history';

/** Entries buffered before they are appended to the file. */
export const FLUSH_EVERY_ENTRIES = 512;
/** Upper bound on entries in one run, so a runaway workload cannot exhaust memory. */
export const MAX_HISTORY_ENTRIES = 5_000_000;

type Dist<T> = T extends unknown ? Omit<T, 'timeNs'> : never;
type DistOp = Operation extends unknown ? (Operation extends infer O ? (O extends Operation ? Omit<O, 'timeNs' | 'kind'> : never) : never) : never;

export class Recorder {
  readonly entries: HistoryEntry[] = [];
  private readonly t0 = process.hrtime.bigint();
  private pending: string[] = [];
  private nextProcess = 0;
  private fd: number | undefined;

  constructor(readonly file: string) {
    this.fd = fs.openSync(file, 'w');
  }

  nowNs(): number {
    return Number(process.hrtime.bigint() - this.t0);
  }

  /** A fresh Jepsen process id (a client gets a new one after every `info`). */
  newProcess(): ProcessId {
    return this.nextProcess++;
  }

  get full(): boolean {
    return this.entries.length >= MAX_HISTORY_ENTRIES;
  }

  record<T extends HistoryEntry>(e: Dist<T>): T {
    const full = { ...e, timeNs: this.nowNs() } as unknown as T;
    this.entries.push(full);
    this.pending.push(JSON.stringify(full));
    if (this.pending.length >= FLUSH_EVERY_ENTRIES) this.flush();
    return full;
  }

  /** A client operation entry (`kind: 'op'` is added). */
  op(e: DistOp): Operation {
    return this.record<Operation>({ ...e, kind: 'op' } as Dist<Operation>);
  }

  nemesis(fault: string, phase: 'start' | 'stop', targets?: readonly string[], detail?: string): NemesisEvent {
    const e: Dist<NemesisEvent> = { kind: 'nemesis', fault, phase, ...(targets ? { targets } : {}), ...(detail ? { detail } : {}) };
    return this.record<NemesisEvent>(e);
  }

  flush(): void {
    if (this.fd === undefined || this.pending.length === 0) return;
    fs.writeSync(this.fd, this.pending.join('\n') + '\n');
    this.pending = [];
  }

  close(): void {
    this.flush();
    if (this.fd !== undefined) fs.closeSync(this.fd);
    this.fd = undefined;
  }
}
