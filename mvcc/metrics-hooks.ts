/**
 * What the store reports for etcd's mvcc and backend metrics (etcd mvcc/metrics.go,
 * mvcc/metrics_txn.go, mvcc/backend/metrics.go). mvcc/ stays free of the server: the server passes
 * an implementation in (server/etcdserver/metrics binds it to Prometheus); every hook is optional.
 */

/** The operations of one txn, counted as etcd's metricsTxnWrite counts them. */
export interface TxnOps {
  ranges: number;
  puts: number;
  deletes: number;
  /** Bytes of key plus value over the txn's puts (etcd_debugging_mvcc_total_put_size_in_bytes). */
  putBytes: number;
}

export interface StoreMetricsHooks {
  /** A txn ended (etcd_mvcc_{range,put,delete,txn}_total). */
  txn?(ops: TxnOps): void;
  /** A backend batch was written to disk (etcd_disk_backend_commit_duration_seconds). */
  backendCommit?(seconds: number): void;
  /** Defragmentation started (true) or finished (false), with its duration when finished. */
  defrag?(inflight: boolean, seconds?: number): void;
  /** A compaction finished: the index pause, each backend chunk's pause, the total, keys deleted. */
  compaction?(c: { indexPauseMs: number; dbPauseMs: readonly number[]; totalMs: number; keysCompacted: number }): void;
  /** Hash (the whole backend) or HashKV (by revision) took this long. */
  hash?(kind: 'hash' | 'hashRev', seconds: number): void;
}

export const noTxnOps = (): TxnOps => ({ ranges: 0, puts: 0, deletes: 0, putBytes: 0 });
