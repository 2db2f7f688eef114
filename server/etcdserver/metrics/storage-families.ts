import type * as prom from 'prom-client';
import { counter, exp, gauge, histogram } from './families';

/** What the scrape reads from the store at collection time (bound once the store is open). */
export interface StorageSource {
  readonly currentRevision: number;
  /** -1 before the first compaction; etcd's gauge then reads 0. */
  readonly compactRevision: number;
  /** Keys with a current value, as etcd's keys_total counts them. */
  readonly keyCount: number;
  readonly openReadTxns: number;
  readonly pendingEvents: number;
  dbSizeBytes(): Promise<number>;
  dbSizeInUseBytes(): Promise<number>;
}

/**
 * etcd_disk_*, etcd_mvcc_*, etcd_debugging_mvcc_*, etcd_debugging_lease_* and etcd_snap_* (etcd 3.4
 * wal/metrics.go, mvcc/backend/metrics.go, mvcc/metrics.go, lease/metrics.go, snap/metrics.go),
 * with etcd's names, help and buckets. Not here: bbolt's commit phases
 * (etcd_debugging_disk_backend_commit_{rebalance,spill,write}_duration_seconds), see docs/metrics.md.
 */
export function storageFamilies(r: prom.Registry, source: () => StorageSource | undefined) {
  const read = (f: (s: StorageSource) => number) => (g: prom.Gauge) => {
    const s = source();
    if (s) g.set(f(s));
  };
  const size = (f: (s: StorageSource) => Promise<number>) => (g: prom.Gauge) => {
    const s = source();
    return s ? f(s).then((v) => g.set(v)) : undefined;
  };
  const asyncGauge = (name: string, help: string, f: (s: StorageSource) => Promise<number>) =>
    gauge(r, name, help, size(f) as (g: prom.Gauge) => void);
  return {
    walFsyncSeconds: histogram(r, 'etcd_disk_wal_fsync_duration_seconds', 'The latency distributions of fsync called by WAL.', exp(0.001, 2, 14)),
    // A gauge in etcd 3.4 (walWriteBytes = prometheus.NewGauge), although its name ends in _total.
    walWriteBytes: gauge(r, 'etcd_disk_wal_write_bytes_total', 'Total number of bytes written in WAL.'),
    backendCommitSeconds: histogram(r, 'etcd_disk_backend_commit_duration_seconds', 'The latency distributions of commit called by backend.', exp(0.001, 2, 14)),
    backendDefragSeconds: histogram(r, 'etcd_disk_backend_defrag_duration_seconds', 'The latency distribution of backend defragmentation.', exp(0.1, 2, 13)),
    backendSnapshotSeconds: histogram(r, 'etcd_disk_backend_snapshot_duration_seconds', 'The latency distribution of backend snapshots.', exp(0.01, 2, 17)),
    defragInflight: gauge(r, 'etcd_disk_defrag_inflight', 'Whether or not defrag is active on the member. 1 means active, 0 means not.'),

    dbTotalSizeBytes: asyncGauge('etcd_mvcc_db_total_size_in_bytes', 'Total size of the underlying database physically allocated in bytes.', (s) => s.dbSizeBytes()),
    debuggingDbTotalSizeBytes: asyncGauge('etcd_debugging_mvcc_db_total_size_in_bytes', 'Total size of the underlying database physically allocated in bytes.', (s) => s.dbSizeBytes()),
    dbTotalSizeInUseBytes: asyncGauge('etcd_mvcc_db_total_size_in_use_in_bytes', 'Total size of the underlying database logically in use in bytes.', (s) => s.dbSizeInUseBytes()),
    dbOpenReadTxns: gauge(r, 'etcd_mvcc_db_open_read_transactions', 'The number of currently open read transactions', read((s) => s.openReadTxns)),
    putTotal: counter(r, 'etcd_mvcc_put_total', 'Total number of puts seen by this member.'),
    deleteTotal: counter(r, 'etcd_mvcc_delete_total', 'Total number of deletes seen by this member.'),
    rangeTotal: counter(r, 'etcd_mvcc_range_total', 'Total number of ranges seen by this member.'),
    txnTotal: counter(r, 'etcd_mvcc_txn_total', 'Total number of txns seen by this member.'),
    hashSeconds: histogram(r, 'etcd_mvcc_hash_duration_seconds', 'The latency distribution of storage hash operation.', exp(0.01, 2, 15)),
    hashRevSeconds: histogram(r, 'etcd_mvcc_hash_rev_duration_seconds', 'The latency distribution of storage hash by revision operation.', exp(0.01, 2, 15)),

    debuggingPutTotal: counter(r, 'etcd_debugging_mvcc_put_total', 'Total number of puts seen by this member.'),
    debuggingDeleteTotal: counter(r, 'etcd_debugging_mvcc_delete_total', 'Total number of deletes seen by this member.'),
    debuggingRangeTotal: counter(r, 'etcd_debugging_mvcc_range_total', 'Total number of ranges seen by this member.'),
    debuggingTxnTotal: counter(r, 'etcd_debugging_mvcc_txn_total', 'Total number of txns seen by this member.'),
    totalPutSizeBytes: gauge(r, 'etcd_debugging_mvcc_total_put_size_in_bytes', 'The total size of put kv pairs seen by this member.'),
    keysTotal: gauge(r, 'etcd_debugging_mvcc_keys_total', 'Total number of keys.', read((s) => s.keyCount)),
    currentRevision: gauge(r, 'etcd_debugging_mvcc_current_revision', 'The current revision of store.', read((s) => s.currentRevision)),
    compactRevision: gauge(r, 'etcd_debugging_mvcc_compact_revision', 'The revision of the last compaction in store.', read((s) => Math.max(0, s.compactRevision))),
    watchStreamTotal: gauge(r, 'etcd_debugging_mvcc_watch_stream_total', 'Total number of watch streams.'),
    watcherTotal: gauge(r, 'etcd_debugging_mvcc_watcher_total', 'Total number of watchers.'),
    slowWatcherTotal: gauge(r, 'etcd_debugging_mvcc_slow_watcher_total', 'Total number of unsynced slow watchers.'),
    pendingEventsTotal: gauge(r, 'etcd_debugging_mvcc_pending_events_total', 'Total number of pending events to be sent.', read((s) => s.pendingEvents)),
    eventsTotal: counter(r, 'etcd_debugging_mvcc_events_total', 'Total number of events sent by this member.'),
    compactionKeys: counter(r, 'etcd_debugging_mvcc_db_compaction_keys_total', 'Total number of db keys compacted.'),
    dbCompactionPauseMs: histogram(r, 'etcd_debugging_mvcc_db_compaction_pause_duration_milliseconds', 'Bucketed histogram of db compaction pause duration.', exp(1, 2, 13)),
    dbCompactionTotalMs: histogram(r, 'etcd_debugging_mvcc_db_compaction_total_duration_milliseconds', 'Bucketed histogram of db compaction total duration.', exp(100, 2, 14)),
    indexCompactionPauseMs: histogram(r, 'etcd_debugging_mvcc_index_compaction_pause_duration_milliseconds', 'Bucketed histogram of index compaction pause duration.', exp(0.5, 2, 14)),

    leaseGranted: counter(r, 'etcd_debugging_lease_granted_total', 'The total number of granted leases.'),
    leaseRevoked: counter(r, 'etcd_debugging_lease_revoked_total', 'The total number of revoked leases.'),
    leaseRenewed: counter(r, 'etcd_debugging_lease_renewed_total', 'The number of renewed leases seen by the leader.'),
    leaseTtl: histogram(r, 'etcd_debugging_lease_ttl_total', 'Bucketed histogram of lease TTLs.', exp(1, 2, 24)),

    snapDbFsyncSeconds: histogram(r, 'etcd_snap_db_fsync_duration_seconds', 'The latency distributions of fsyncing .snap.db file', exp(0.001, 2, 14)),
    snapDbSaveSeconds: histogram(r, 'etcd_snap_db_save_total_duration_seconds', 'The total latency distributions of v3 snapshot save', exp(0.1, 2, 10)),
    snapFsyncSeconds: histogram(r, 'etcd_snap_fsync_duration_seconds', 'The latency distributions of fsync called by snap.', exp(0.001, 2, 14)),
    snapSaveSeconds: histogram(r, 'etcd_debugging_snap_save_total_duration_seconds', 'The total latency distributions of save called by snapshot.', exp(0.001, 2, 14)),
    snapMarshallingSeconds: histogram(r, 'etcd_debugging_snap_save_marshalling_duration_seconds', 'The marshalling cost distributions of save called by snapshot.', exp(0.001, 2, 14)),
  };
}

export type StorageFamilies = ReturnType<typeof storageFamilies>;
