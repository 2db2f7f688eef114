/**
 * The data model shared by the store, the watch hub and the server (etcd mvccpb.KeyValue / Event).
 *
 * Objects handed out by the store are shared with its in-memory cache: treat them (and their
 * Buffers) as immutable.
 */

export interface KeyValue {
  readonly key: Buffer;
  /** Revision of the put that created this generation of the key; 0 in a DELETE event. */
  readonly createRevision: number;
  /** Revision of the last modification (the deletion revision in a DELETE event). */
  readonly modRevision: number;
  /** 1 for the put that created the generation, +1 per later put; 0 in a DELETE event. */
  readonly version: number;
  readonly value: Buffer;
  /** Attached lease id; 0n = none. */
  readonly lease: bigint;
}

export type EventType = 'PUT' | 'DELETE';

export interface Event {
  readonly type: EventType;
  /** For DELETE only key and modRevision (= deletion revision) are set, as in etcd. */
  readonly kv: KeyValue;
  /**
   * The key's previous value, when the producer had it at hand. Absent on a PUT of version 1 (there
   * is none) and possibly on any other event: a write txn reads no value to fill it (see
   * TxnWrite.changes), the store's readEvents never does; the value is the key's at modRevision - 1.
   */
  readonly prevKv?: KeyValue;
}

/** A key a DeleteRange removed, with the lease it had (0n = none): what the lessor detaches. */
export interface DeletedKey {
  readonly key: Buffer;
  readonly lease: bigint;
}

export const EMPTY_BUFFER: Buffer = Buffer.alloc(0);

/** Options for reads at the current revision (and inside a write txn). */
export interface RangeOptions {
  /** Maximum number of kvs to return; 0 or absent = no limit. `count` ignores it. */
  readonly limit?: number;
  /** Return no kvs, only `count`. */
  readonly countOnly?: boolean;
}

export interface RevRangeOptions extends RangeOptions {
  /** Revision to read at; 0 or absent = current. */
  readonly rev?: number;
}

export interface RangeResult {
  /** Keys in ascending bytewise order, at most `limit`. */
  readonly kvs: KeyValue[];
  /** Number of keys in the range at the read revision, regardless of limit. */
  readonly count: number;
  /**
   * The store's current revision (etcd RangeResult.Rev), even for a historical read. Inside a write
   * txn that has changes, the revision the txn will commit at.
   */
  readonly rev: number;
}
