/**
 * The store side of the write txn (etcd mvcc/kvstore_txn.go: store.Write, storeTxnWrite.put and
 * delete's writes into the backend and the key index, and End's revision bump). TxnWrite stages
 * its changes; at `end()` they land here in one synchronous step: the pending backend batch, the
 * index, the live-key set and the value cache, then the new revision and the consistent index.
 */
import assert from 'node:assert/strict';
import { KeyIndex } from './key-index';
import type { Event, KeyValue } from './kv';
import { type ReadContext, fetchRevisionsSync, pickAt, readLatestSync } from './kv-store-read';
import { type StagedChange, type TxnHost, TxnWrite } from './kv-store-txn';
import { encodeUint64 } from './kv-store-meta';
import type { StoreMetricsHooks, TxnOps } from './metrics-hooks';
import type { KeyRange, TreeIndex } from './tree-index';
import type { LiveKeys } from './live-keys';

/** The store's revision bookkeeping (etcd store.currentRev, compactMainRev, consistentIndex). */
export interface StoreRevisions {
  /** The current revision; 1 on a fresh store, +1 per write txn with changes. */
  currentRev: number;
  /** The compacted-to revision; -1 if never compacted. */
  compactMainRev: number;
  /** The raft index of the last applied entry; 0 on a fresh store. */
  appliedIndex: number;
}

/** Where a txn's changes are written, besides `reads` (index, live set, cache, backend). */
export interface TxnTarget {
  readonly reads: ReadContext;
  readonly revs: StoreRevisions;
  /** The full backend key of revision (main, sub) in the key bucket, tombstone marked. */
  readonly revisionKey: (main: number, sub: number, tombstone: boolean) => Buffer;
  /** The full key of meta's consistent_index. */
  readonly consistentIndexKey: Buffer;
  readonly metrics: StoreMetricsHooks;
  /** Tells the watch hub of a committed txn's events (etcd's watchableStore notify). */
  readonly notify: (events: readonly Event[], rev: number) => void;
}

/** Runs one write txn at a time over the store (KvStore.write) and commits it. */
export class StoreTxnHost implements TxnHost {
  readonly index: TreeIndex;
  readonly live: LiveKeys;
  private readonly reads: ReadContext;
  private readonly revs: StoreRevisions;
  private activeTxn: TxnWrite | null = null;

  constructor(private readonly target: TxnTarget) {
    this.index = target.reads.index;
    this.live = target.reads.live;
    this.reads = target.reads;
    this.revs = target.revs;
  }

  get currentRev(): number {
    return this.revs.currentRev;
  }

  get compactRev(): number {
    return this.revs.compactMainRev;
  }

  /** True while a txn started by `begin` has not ended. */
  get busy(): boolean {
    return this.activeTxn !== null;
  }

  /** Starts the write txn. One at a time; it must be ended before the next. */
  begin(): TxnWrite {
    assert(this.activeTxn === null, 'a write txn is already active');
    const txn = new TxnWrite(this);
    this.activeTxn = txn;
    return txn;
  }

  rangeHistoricalSync(range: KeyRange, rev: number, limit: number, countOnly: boolean): { kvs: KeyValue[]; count: number } {
    const picks = pickAt(this.reads, range, rev, limit, countOnly);
    return { kvs: fetchRevisionsSync(this.reads, picks), count: picks.count };
  }

  readLatest(latin1: string, ki: KeyIndex): KeyValue {
    return readLatestSync(this.reads, latin1, ki);
  }

  cachedLatest(latin1: string, ki: KeyIndex): KeyValue | undefined {
    const latest = ki.latest;
    return latest === undefined ? undefined : this.reads.cache.peek(latin1, latest.main);
  }

  commit(changes: readonly StagedChange[], consistentIndex: number, events: readonly Event[], ops: TxnOps): void {
    this.apply(changes, consistentIndex);
    this.target.metrics.txn?.(ops);
    // etcd's watchableStore: the store that committed the write notifies its own watchers,
    // right after the write became readable and before the next one starts.
    if (events.length > 0) this.target.notify(events, this.revs.currentRev);
  }

  release(txn: TxnWrite): void {
    assert(this.activeTxn === txn, 'ending a txn that is not active');
    this.activeTxn = null;
  }

  recordConsistentIndex(consistentIndex: number): void {
    assert(Number.isSafeInteger(consistentIndex) && consistentIndex >= 0, 'consistentIndex out of range');
    this.revs.appliedIndex = consistentIndex;
    this.reads.backend.putKey(this.target.consistentIndexKey, encodeUint64(consistentIndex));
  }

  private apply(changes: readonly StagedChange[], consistentIndex: number): void {
    const { reads, revs } = this;
    if (changes.length > 0) {
      const main = revs.currentRev + 1;
      for (const change of changes) {
        reads.backend.putKey(this.target.revisionKey(main, change.sub, change.tombstone), change.record);
        const staged = change.key;
        let ki = staged.ki;
        if (ki === undefined) {
          ki = new KeyIndex();
          staged.ki = ki;
          reads.index.set(staged.latin1, ki);
        }
        if (change.tombstone) {
          ki.tombstone(main, change.sub);
          reads.live.delete(staged.latin1);
          reads.cache.delete(staged.latin1);
        } else {
          // A key live already is in the live set: an update skips the tree walk of adding it.
          const wasLive = ki.isLive;
          ki.put(main, change.sub, change.kv.lease);
          // The txn took both from the index (or its own earlier write); they must agree.
          assert(ki.createRevision === change.kv.createRevision && ki.version === change.kv.version, 'key index generation out of step');
          if (!wasLive) reads.live.add(staged.latin1);
          reads.cache.set(staged.latin1, change.kv);
        }
      }
      revs.currentRev = main;
    }
    this.recordConsistentIndex(consistentIndex);
    reads.backend.commitIfFull();
  }
}
