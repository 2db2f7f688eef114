/**
 * The write transaction (etcd mvcc/kvstore_txn.go storeTxnWrite).
 *
 * Used only by the server's single apply loop, and fully synchronous. Changes are staged inside the
 * txn and become visible (index, live-key set, pending backend batch) at `end()`. Reads in
 * the txn see its own earlier writes: once it has a change they read at beginRev+1, which is the
 * revision every change of this txn gets (sub 0, 1, 2, …).
 */
import assert from 'node:assert/strict';
import { ErrCompacted, ErrFutureRev } from './errors';
import type { KeyIndex } from './key-index';
import { type DeletedKey, EMPTY_BUFFER, type Event, type KeyValue, type RangeResult, type RevRangeOptions } from './kv';
import { encodeKeyValue } from './kv-codec';
import type { LiveKeys } from './live-keys';
import { type KeyRange, type TreeIndex, inRange, resolveRange } from './tree-index';
import { noTxnOps, type TxnOps } from './metrics-hooks';

/** A key this txn has written; `kv` is the key's value in the txn's view (undefined = deleted). */
export interface StagedKey {
  readonly latin1: string;
  /** The key's index entry; created at commit for keys new to the index. */
  ki: KeyIndex | undefined;
  kv: KeyValue | undefined;
}

/** The key's state before a write, as the txn sees it; no value is read to know it. */
interface Before {
  readonly live: boolean;
  readonly createRevision: number;
  readonly version: number;
  readonly lease: bigint;
  /** The previous KeyValue, when it is at hand (written by this txn, or in the value cache). */
  readonly kv: KeyValue | undefined;
}

/** One change, in txn order; its revision is (beginRev + 1, sub). */
export interface StagedChange {
  readonly sub: number;
  readonly tombstone: boolean;
  /** The encoded KeyValue to store under the revision key. */
  readonly record: Buffer;
  /** The PUT kv or the DELETE tombstone kv (views into `record`). */
  readonly kv: KeyValue;
  readonly key: StagedKey;
}

/** What a txn needs from its store; implemented by StoreTxnHost (kv-store-txn-host.ts). */
export interface TxnHost {
  readonly index: TreeIndex;
  readonly live: LiveKeys;
  readonly currentRev: number;
  readonly compactRev: number;
  /** A read at rev < currentRev, synchronously (rare inside a txn; may touch LevelDB). */
  rangeHistoricalSync(range: KeyRange, rev: number, limit: number, countOnly: boolean): { kvs: KeyValue[]; count: number };
  /** The live key's latest KeyValue (read from the backend, synchronously). */
  readLatest(latin1: string, ki: KeyIndex): KeyValue;
  /** The live key's latest KeyValue if the value cache holds it; never reads the backend. */
  cachedLatest(latin1: string, ki: KeyIndex): KeyValue | undefined;
  commit(changes: readonly StagedChange[], consistentIndex: number, events: readonly Event[], ops: TxnOps): void;
  release(txn: TxnWrite): void;
}

const NOT_LIVE: Before = { live: false, createRevision: 0, version: 0, lease: 0n, kv: undefined };

export class TxnWrite {
  /** The store revision when the txn began. */
  readonly beginRev: number;
  private readonly staged = new Map<string, StagedKey>();
  private readonly staging: StagedChange[] = [];
  private readonly events: Event[] = [];
  private ended = false;
  /** This txn's operations, for the store's metrics (etcd's metricsTxnWrite). */
  private readonly ops = noTxnOps();

  constructor(private readonly host: TxnHost) {
    this.beginRev = host.currentRev;
  }

  /** etcd's TxnWrite.Rev(): the revision when the txn began. Its changes commit at rev + 1. */
  get rev(): number {
    return this.beginRev;
  }

  /** The revision reads in this txn observe: beginRev, or beginRev+1 once there are changes. */
  get readRev(): number {
    return this.staging.length === 0 ? this.beginRev : this.beginRev + 1;
  }

  /**
   * Events produced so far, in order. prevKv is set only when the previous KeyValue was at hand
   * (this txn wrote the key before, or the value cache held it): a PUT of version > 1 or a DELETE
   * without one has its prev_kv at modRevision - 1 in the store, where a consumer that needs it
   * reads it (etcd's watch server does the same, and only for watchers that asked for prev_kv).
   */
  get changes(): readonly Event[] {
    return this.events;
  }

  /**
   * Puts key = value with `lease` (0n = none). A live key keeps its create_revision and its version
   * goes up by one; a missing or deleted key starts a new generation at version 1. Returns the
   * lease the key had (0n = none) if it was live, else undefined, for the lessor to detach.
   *
   * As etcd's storeTxnWrite.put (kvindex.Get for created and version, the lessor for the old lease),
   * this reads no value: create_revision, version and lease come from the index, or from this
   * txn's own earlier write of the key. The Put request's prev_kv is the caller's read (`range`).
   */
  put(key: Buffer, value: Buffer, lease: bigint = 0n): bigint | undefined {
    this.assertActive();
    this.ops.puts++;
    this.ops.putBytes += key.length + value.length;
    const latin1 = key.toString('latin1');
    const { staged, before } = this.touch(latin1);
    const main = this.beginRev + 1;
    const { record, kv } = before.live
      ? encodeKeyValue(key, value, before.createRevision, main, before.version + 1, lease)
      : encodeKeyValue(key, value, main, main, 1, lease);
    this.stage(staged, record, kv, false);
    this.events.push(before.kv === undefined ? { type: 'PUT', kv } : { type: 'PUT', kv, prevKv: before.kv });
    staged.kv = kv;
    return before.live ? before.lease : undefined;
  }

  /**
   * Deletes every live key in the range (etcd range conventions), writing a tombstone for each.
   * Returns the deleted keys, in key order, with the lease each had; a delete that matches nothing
   * changes nothing. Reads no value (etcd's deleteRange needs only the index's keys and revisions):
   * a DeleteRange with prev_kv reads them with `range` first, as etcd's applier does.
   */
  deleteRange(key: Buffer, end: Buffer | null | undefined): DeletedKey[] {
    this.assertActive();
    this.ops.deletes++;
    const victims: string[] = [];
    this.forEachLive(resolveRange(key, end), (latin1) => victims.push(latin1) > 0);
    const main = this.beginRev + 1;
    const deleted: DeletedKey[] = [];
    for (const latin1 of victims) {
      const { staged, before } = this.touch(latin1);
      assert(before.live, 'deleteRange victim must be live');
      const keyBytes = before.kv?.key ?? Buffer.from(latin1, 'latin1');
      const { record, kv } = encodeKeyValue(keyBytes, EMPTY_BUFFER, 0, main, 0, 0n);
      this.stage(staged, record, kv, true);
      this.events.push(before.kv === undefined ? { type: 'DELETE', kv } : { type: 'DELETE', kv, prevKv: before.kv });
      staged.kv = undefined;
      deleted.push({ key: kv.key, lease: before.lease });
    }
    return deleted;
  }

  /**
   * Reads the range as this txn sees it (its own writes included). `rev` 0/absent reads at
   * `this.readRev`; an older rev reads history (ErrCompacted below the compact revision); a newer
   * one is ErrFutureRev. The result's `rev` is `this.readRev` (as etcd's storeTxnWrite.Range).
   */
  range(key: Buffer, end: Buffer | null | undefined, opts: RevRangeOptions = {}): RangeResult {
    this.assertActive();
    this.ops.ranges++;
    const viewRev = this.readRev;
    const rev = opts.rev ?? 0;
    if (rev > viewRev) throw new ErrFutureRev();
    if (rev > 0 && rev < this.host.compactRev) throw new ErrCompacted();
    const range = resolveRange(key, end);
    const limit = opts.limit !== undefined && opts.limit > 0 ? opts.limit : Infinity;
    const countOnly = opts.countOnly === true;
    if (rev > 0 && rev < viewRev) {
      const { kvs, count } = this.host.rangeHistoricalSync(range, rev, limit, countOnly);
      return { kvs, count, rev: viewRev };
    }
    const kvs: KeyValue[] = [];
    if (!countOnly) {
      this.forEachLive(range, (latin1, ki, staged) => {
        kvs.push(staged !== undefined ? (staged.kv as KeyValue) : this.host.readLatest(latin1, ki as KeyIndex));
        return kvs.length < limit;
      });
    }
    // Without a limit the walk saw every live key; otherwise count from the live-key set.
    const count = !countOnly && limit === Infinity ? kvs.length : this.countLive(range);
    return { kvs, count, rev: viewRev };
  }

  /**
   * Commits: the changes become visible, the revision goes up by one if there were any, and
   * `consistentIndex` (the raft index this txn applies) is persisted in the same backend batch —
   * also when there were no changes, so the apply loop's progress is recorded.
   */
  end(opts: { consistentIndex: number }): void {
    this.assertActive();
    this.ended = true;
    try {
      this.host.commit(this.staging, opts.consistentIndex, this.events, this.ops);
    } finally {
      this.host.release(this);
    }
  }

  private assertActive(): void {
    assert(!this.ended, 'write txn already ended');
  }

  /**
   * The key's staged entry (created on its first write in this txn) and its state before this
   * write, from the txn's own earlier write or else the index; no backend read.
   */
  private touch(latin1: string): { staged: StagedKey; before: Before } {
    let staged = this.staged.get(latin1);
    if (staged !== undefined) {
      const kv = staged.kv;
      const before: Before = kv === undefined
        ? NOT_LIVE
        : { live: true, createRevision: kv.createRevision, version: kv.version, lease: kv.lease, kv };
      return { staged, before };
    }
    const ki = this.host.index.get(latin1);
    staged = { latin1, ki, kv: undefined };
    this.staged.set(latin1, staged);
    if (ki === undefined || !ki.isLive) return { staged, before: NOT_LIVE };
    const kv = this.host.cachedLatest(latin1, ki);
    return { staged, before: { live: true, createRevision: ki.createRevision, version: ki.version, lease: ki.lease, kv } };
  }

  private stage(key: StagedKey, record: Buffer, kv: KeyValue, tombstone: boolean): void {
    this.staging.push({ sub: this.staging.length, tombstone, record, kv, key });
  }

  /** Live keys of the txn's view in the range: the store's live set corrected by staged writes. */
  private countLive(range: KeyRange): number {
    let count = this.host.live.count(range);
    for (const staged of this.staged.values()) {
      if (!inRange(range, staged.latin1)) continue;
      count += (staged.kv !== undefined ? 1 : 0) - (staged.ki?.isLive === true ? 1 : 0);
    }
    return count;
  }

  /**
   * Visits live keys of the txn's view in key order (the index merged with staged writes), with the
   * key's index entry or, for a key this txn wrote, its staged state; stops when `visit` returns
   * false. No values are read here.
   */
  private forEachLive(range: KeyRange, visit: (latin1: string, ki: KeyIndex | undefined, staged: StagedKey | undefined) => boolean): void {
    const index = this.host.index;
    if (this.staged.size === 0) {
      index.forRangeWhile(range, (latin1, ki) => !ki.isLive || visit(latin1, ki, undefined));
      return;
    }
    if (range.high === undefined) {
      const staged = this.staged.get(range.low);
      if (staged !== undefined) {
        if (staged.kv !== undefined) visit(range.low, staged.ki, staged);
      } else {
        const ki = index.get(range.low);
        if (ki?.isLive === true) visit(range.low, ki, undefined);
      }
      return;
    }
    const overlay: StagedKey[] = [];
    for (const staged of this.staged.values()) if (inRange(range, staged.latin1)) overlay.push(staged);
    overlay.sort((a, b) => (a.latin1 < b.latin1 ? -1 : 1));
    let j = 0;
    let go = true;
    const visitStaged = (s: StagedKey): void => {
      if (go && s.kv !== undefined) go = visit(s.latin1, s.ki, s);
    };
    index.forRangeWhile(range, (latin1, ki) => {
      while (go && j < overlay.length && overlay[j].latin1 < latin1) visitStaged(overlay[j++]);
      if (!go) return false;
      if (j < overlay.length && overlay[j].latin1 === latin1) visitStaged(overlay[j++]);
      else if (ki.isLive) go = visit(latin1, ki, undefined);
      return go;
    });
    while (go && j < overlay.length) visitStaged(overlay[j++]);
  }
}
