/**
 * The history a cluster-tests run records, and its JSON-lines form.
 *
 * A history is a sequence of entries, one per line of `history.jsonl`, in the order the harness
 * observed them. There are three families:
 *
 * - Client operations, Jepsen style: every operation is an `invoke` entry followed later by one
 *   completion from the same `process`: `ok` (it happened, with this result), `fail` (it certainly
 *   did not happen) or `info` (unknown outcome, e.g. a timeout: it may take effect at any time after
 *   its invoke, or never). A process has at most one operation in flight; after an `info` the
 *   harness should continue that client under a new process id, as Jepsen does, because the old
 *   request may still be in flight.
 * - Nemesis events: the start and stop of each injected fault, so reports can shade fault windows.
 * - Watch observations: each watch stream opened by a watcher, every response it received, and its
 *   close. Those are checked against etcd's watch guarantees (docs/verification.md).
 *
 * Times are monotonic nanoseconds since the start of the run (`process.hrtime.bigint()` minus the
 * start, converted to a number: exact for runs shorter than 104 days). Keys and values are strings;
 * the recorder encodes binary keys and values (utf8 for the workloads here, which use ASCII).
 */
import * as fs from 'node:fs';

/** Monotonic nanoseconds since the start of the run. */
export type TimeNs = number;

/** A client connection's process id, as in Jepsen: one operation in flight per process. */
export type ProcessId = number;

export type OpType = 'invoke' | 'ok' | 'fail' | 'info';

/** A key's value as seen by a client; `null` means the key does not exist (or was deleted). */
export type KeyValueString = string | null;

/** One key as returned by a range read (etcd mvccpb.KeyValue, without lease and version). */
export interface KvSnapshot {
  readonly key: string;
  readonly value: string;
  readonly modRevision: number;
  readonly createRevision?: number;
  readonly version?: number;
}

interface OpBase {
  readonly kind: 'op';
  readonly process: ProcessId;
  readonly type: OpType;
  readonly timeNs: TimeNs;
  /**
   * The response header revision of an `ok` (or `fail` with an else-branch) completion: for a write
   * the revision it committed at, for a read the store's revision when it was served.
   */
  readonly revision?: number;
  /** Optional free text (an error message for `fail`/`info`). */
  readonly error?: string;
}

/** Read one key. Completion: `value` (null = absent) and its `modRevision` (0 = absent). */
export interface ReadOp extends OpBase {
  readonly f: 'read';
  readonly key: string;
  readonly value?: KeyValueString;
  readonly modRevision?: number;
}

/** Put (`value` a string) or delete (`value` null) one key unconditionally. */
export interface WriteOp extends OpBase {
  readonly f: 'write';
  readonly key: string;
  readonly value: KeyValueString;
}

/**
 * Compare-and-set as an etcd txn: `If(compare) Then(put value | delete) Else(get key)`.
 * The compare is on the value or on mod_revision (`modRevision: 0` = the key does not exist, the
 * Kubernetes "create" guard). A compare that did not hold completes as `fail`; if the txn's
 * else-branch read the key, the completion carries what it saw in `observed`, and the checkers treat
 * it as a read.
 */
export interface CasOp extends OpBase {
  readonly f: 'cas';
  readonly key: string;
  readonly expected: CasExpectation;
  /** The new value; null = delete. */
  readonly value: KeyValueString;
  readonly observed?: { readonly value: KeyValueString; readonly modRevision: number };
}

export type CasExpectation = { readonly value: KeyValueString } | { readonly modRevision: number };

/** A list-append micro-operation (Elle): append an element, or read the whole list. */
export type MicroOp =
  | { readonly f: 'append'; readonly key: string; readonly value: number }
  | { readonly f: 'r'; readonly key: string; readonly value: readonly number[] | null };

/**
 * A multi-key transaction of appends and reads (Elle list-append). On invoke, reads have `value:
 * null`; on `ok` they carry the list read (an absent key reads as `[]`).
 */
export interface TxnOp extends OpBase {
  readonly f: 'txn';
  readonly value: readonly MicroOp[];
}

/**
 * A range read, possibly one page of a paginated list pinned to a revision (Kubernetes style).
 * `rangeEnd` follows etcd: absent = the single key, '\0' = every key >= `key`.
 */
export interface ListOp extends OpBase {
  readonly f: 'list';
  readonly key: string;
  readonly rangeEnd?: string;
  /** The revision the read was pinned to (0 or absent = current). */
  readonly atRevision?: number;
  readonly value?: readonly KvSnapshot[];
}

/** Compaction request to `atRevision`. */
export interface CompactOp extends OpBase {
  readonly f: 'compact';
  readonly atRevision: number;
}

/**
 * The read at the end of a run, after faults healed, that durability is checked against. Registers
 * give `kvs` (every key in the workload's range); list-append gives `lists`.
 */
export interface FinalReadOp extends OpBase {
  readonly f: 'final-read';
  readonly kvs?: readonly KvSnapshot[];
  readonly lists?: readonly { readonly key: string; readonly value: readonly number[] }[];
}

/** Lease/lock workload: acquire with the etcd lock recipe; `revision` of the ok = fencing token. */
export interface LockOp extends OpBase {
  readonly f: 'lock-acquire' | 'lock-release';
  readonly lockName: string;
  readonly leaseId?: string;
}

export type Operation = ReadOp | WriteOp | CasOp | TxnOp | ListOp | CompactOp | FinalReadOp | LockOp;
export type OperationF = Operation['f'];

/** A fault injected by the nemesis; `phase: 'start'` opens its window and `'stop'` closes it. */
export interface NemesisEvent {
  readonly kind: 'nemesis';
  readonly fault: string;
  readonly phase: 'start' | 'stop';
  readonly timeNs: TimeNs;
  /** Member names affected, when known. */
  readonly targets?: readonly string[];
  readonly detail?: string;
}

/** One watch event as delivered (etcd mvccpb.Event). For DELETE, `value` is ''. */
export interface WatchEvent {
  readonly type: 'PUT' | 'DELETE';
  readonly key: string;
  readonly value: string;
  readonly modRevision: number;
  readonly createRevision?: number;
  readonly version?: number;
  /** Present only if the watch asked for prev_kv and the key existed at modRevision - 1. */
  readonly prevKv?: KvSnapshot;
}

/** A watcher opened a watch stream (one `WatchCreateRequest`). */
export interface WatchOpen {
  readonly kind: 'watch-open';
  /** Unique per watch stream in the run; one client may open many over time. */
  readonly watcher: string;
  readonly process: ProcessId;
  readonly timeNs: TimeNs;
  readonly key: string;
  readonly rangeEnd?: string;
  /** Requested start revision; 0 = "from now" (current revision + 1, as etcd does). */
  readonly startRevision: number;
  readonly prevKv: boolean;
  readonly progressNotify?: boolean;
  /** Which member the stream is connected to, when known. */
  readonly member?: string;
}

/** One `WatchResponse` received on a watch stream. */
export interface WatchResponseEntry {
  readonly kind: 'watch-response';
  readonly watcher: string;
  readonly timeNs: TimeNs;
  /** Response header revision. */
  readonly revision: number;
  readonly events: readonly WatchEvent[];
  readonly created?: boolean;
  /** A progress notification (bookmark): no events, not created, not canceled. */
  readonly progressNotify?: boolean;
  readonly canceled?: boolean;
  /** Set with `canceled` when the start revision had been compacted. */
  readonly compactRevision?: number;
  readonly cancelReason?: string;
}

/** The watcher stopped observing (closed by the client, the stream broke, or the run ended). */
export interface WatchClose {
  readonly kind: 'watch-close';
  readonly watcher: string;
  readonly timeNs: TimeNs;
  readonly reason?: string;
}

export type WatchEntry = WatchOpen | WatchResponseEntry | WatchClose;
export type HistoryEntry = Operation | NemesisEvent | WatchEntry;

/** A history entry with its position (0-based line number), which every report refers to. */
export type Indexed<T extends HistoryEntry = HistoryEntry> = T & { readonly index: number };

export type History = readonly Indexed[];

/** Attach positions to entries produced in memory (tests, the simulator, the harness). */
export function indexHistory(entries: readonly HistoryEntry[]): History {
  return entries.map((e, index) => ({ ...e, index }));
}

/** Serialise to JSON lines, without the `index` field (the position in the file is the index). */
export function toJsonLines(entries: readonly HistoryEntry[]): string {
  let out = '';
  for (const e of entries) {
    const { index: _drop, ...rest } = e as HistoryEntry & { index?: number };
    out += JSON.stringify(rest) + '\n';
  }
  return out;
}

export class HistoryFormatError extends Error {
  readonly code = 'CAIRN_HISTORY_FORMAT';
  constructor(
    readonly line: number,
    message: string,
  ) {
    super(`history line ${line + 1}: ${message}`);
  }
}

const OP_FS: ReadonlySet<string> = new Set<OperationF>([
  'read', 'write', 'cas', 'txn', 'list', 'compact', 'final-read', 'lock-acquire', 'lock-release',
]);
const OP_TYPES: ReadonlySet<string> = new Set<OpType>(['invoke', 'ok', 'fail', 'info']);

/**
 * Parse JSON lines into an indexed history. Validates the envelope of each entry (kind, times,
 * process, f, type); the checkers validate the payloads they use.
 */
export function parseJsonLines(text: string): History {
  const out: Indexed[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line === '') continue;
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch (e) {
      throw new HistoryFormatError(i, `not JSON: ${(e as Error).message}`);
    }
    out.push({ ...validateEntry(parsed, i), index: out.length });
  }
  return out;
}

export function readHistoryFile(path: string): History {
  return parseJsonLines(fs.readFileSync(path, 'utf8'));
}

export function writeHistoryFile(path: string, entries: readonly HistoryEntry[]): void {
  fs.writeFileSync(path, toJsonLines(entries));
}

function validateEntry(v: unknown, line: number): HistoryEntry {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new HistoryFormatError(line, 'not an object');
  const o = v as Record<string, unknown>;
  if (typeof o.timeNs !== 'number' || !Number.isFinite(o.timeNs)) throw new HistoryFormatError(line, 'timeNs must be a finite number');
  switch (o.kind) {
    case 'op':
      if (typeof o.process !== 'number') throw new HistoryFormatError(line, 'op without a numeric process');
      if (typeof o.type !== 'string' || !OP_TYPES.has(o.type)) throw new HistoryFormatError(line, `bad op type ${String(o.type)}`);
      if (typeof o.f !== 'string' || !OP_FS.has(o.f)) throw new HistoryFormatError(line, `unknown op f ${String(o.f)}`);
      return o as unknown as Operation;
    case 'nemesis':
      if (typeof o.fault !== 'string' || (o.phase !== 'start' && o.phase !== 'stop')) throw new HistoryFormatError(line, 'nemesis needs fault and phase start|stop');
      return o as unknown as NemesisEvent;
    case 'watch-open':
    case 'watch-response':
    case 'watch-close':
      if (typeof o.watcher !== 'string') throw new HistoryFormatError(line, `${o.kind} without a watcher id`);
      if (o.kind === 'watch-response' && (!Array.isArray(o.events) || typeof o.revision !== 'number')) {
        throw new HistoryFormatError(line, 'watch-response needs events[] and revision');
      }
      if (o.kind === 'watch-open' && (typeof o.key !== 'string' || typeof o.startRevision !== 'number')) {
        throw new HistoryFormatError(line, 'watch-open needs key and startRevision');
      }
      return o as unknown as WatchEntry;
    default:
      throw new HistoryFormatError(line, `unknown kind ${String(o.kind)}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Pairing invokes with completions.

/**
 * One client operation: its invoke and its completion. `complete` is undefined when the history
 * ended with the operation in flight; checkers treat that exactly like `info`.
 */
export interface PairedOp<T extends Operation = Operation> {
  /** The invoke entry's index: the operation's identity in verdicts and reports. */
  readonly id: number;
  readonly process: ProcessId;
  readonly f: T['f'];
  readonly invoke: Indexed<T>;
  readonly complete?: Indexed<T>;
  /** ok | fail | info; in-flight-at-end is reported as info. */
  readonly outcome: 'ok' | 'fail' | 'info';
  readonly invokeNs: TimeNs;
  /** Completion time; Infinity for info (it may take effect at any time after invoke). */
  readonly completeNs: TimeNs;
}

export class HistoryPairingError extends Error {
  readonly code = 'CAIRN_HISTORY_PAIRING';
}

/** Pair every invoke with the next completion of the same process. Throws on malformed pairing. */
export function pairOperations(history: History): PairedOp[] {
  const open = new Map<ProcessId, Indexed<Operation>>();
  const out: PairedOp[] = [];
  const byInvoke = new Map<number, number>();
  for (const e of history) {
    if (e.kind !== 'op') continue;
    if (e.type === 'invoke') {
      const prev = open.get(e.process);
      if (prev !== undefined) {
        throw new HistoryPairingError(`process ${e.process} invoked entry ${e.index} while entry ${prev.index} is in flight`);
      }
      open.set(e.process, e);
      continue;
    }
    const inv = open.get(e.process);
    if (inv === undefined) throw new HistoryPairingError(`entry ${e.index}: ${e.type} from process ${e.process} with nothing in flight`);
    if (inv.f !== e.f) throw new HistoryPairingError(`entry ${e.index}: completion f=${e.f} does not match invoke f=${inv.f} (entry ${inv.index})`);
    if (e.timeNs < inv.timeNs) throw new HistoryPairingError(`entry ${e.index}: completes before its invoke`);
    open.delete(e.process);
    byInvoke.set(inv.index, out.length);
    out.push({
      id: inv.index,
      process: e.process,
      f: inv.f,
      invoke: inv,
      complete: e,
      outcome: e.type,
      invokeNs: inv.timeNs,
      completeNs: e.type === 'info' ? Infinity : e.timeNs,
    });
  }
  for (const inv of open.values()) {
    out.push({ id: inv.index, process: inv.process, f: inv.f, invoke: inv, outcome: 'info', invokeNs: inv.timeNs, completeNs: Infinity });
  }
  out.sort((a, b) => a.id - b.id);
  return out;
}

/** Type guard narrowing a paired operation by `f`. */
export function isOpF<F extends OperationF>(op: PairedOp, f: F): op is PairedOp<Extract<Operation, { f: F }>> {
  return op.f === f;
}

/** etcd range membership: `rangeEnd` absent = the single key; '\0' = every key >= key. */
export function inRange(key: string, rangeKey: string, rangeEnd: string | undefined): boolean {
  if (rangeEnd === undefined || rangeEnd === '') return key === rangeKey;
  if (rangeEnd === '\0') return key >= rangeKey;
  return key >= rangeKey && key < rangeEnd;
}

/** The history's time span, for reports. */
export function timeSpanNs(history: History): { startNs: TimeNs; endNs: TimeNs } {
  let startNs = Infinity;
  let endNs = -Infinity;
  for (const e of history) {
    if (e.timeNs < startNs) startNs = e.timeNs;
    if (e.timeNs > endNs) endNs = e.timeNs;
  }
  if (startNs === Infinity) return { startNs: 0, endNs: 0 };
  return { startNs, endNs };
}
