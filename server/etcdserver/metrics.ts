import * as prom from 'prom-client';

/**
 * Prometheus metrics under etcd's own names and buckets, so existing dashboards and alerts work.
 * One registry per member (several members may share a process in tests and embedding).
 */
export class ServerMetrics {
  readonly registry = new prom.Registry();
  readonly hasLeader = this.gauge('etcd_server_has_leader', 'Whether or not a leader exists. 1 is existence, 0 is not.');
  readonly isLeader = this.gauge('etcd_server_is_leader', 'Whether or not this member is a leader. 1 if is, 0 otherwise.');
  readonly leaderChanges = this.counter('etcd_server_leader_changes_seen_total', 'The number of leader changes seen.');
  readonly proposalsCommitted = this.gauge('etcd_server_proposals_committed_total', 'The total number of consensus proposals committed.');
  readonly proposalsApplied = this.gauge('etcd_server_proposals_applied_total', 'The total number of consensus proposals applied.');
  readonly proposalsPending = this.gauge('etcd_server_proposals_pending', 'The current number of pending proposals to commit.');
  readonly proposalsFailed = this.counter('etcd_server_proposals_failed_total', 'The total number of failed proposals seen.');
  readonly slowApplies = this.counter('etcd_server_slow_apply_total', 'The total number of slow apply requests (likely overloaded from slow disk).');
  readonly slowReadIndexes = this.counter('etcd_server_slow_read_indexes_total', "The total number of pending read indexes not in sync with leader's or timed out read index requests.");
  readonly readIndexFailed = this.counter('etcd_server_read_indexes_failed_total', 'The total number of failed read indexes seen.');
  readonly heartbeatSendFailures = this.counter('etcd_server_heartbeat_send_failures_total', 'The total number of leader heartbeat send failures (likely overloaded from slow disk).');
  readonly authRevision = this.gauge('etcd_debugging_auth_revision', 'The current revision of auth store.');
  readonly quotaBackendBytes = this.gauge('etcd_server_quota_backend_bytes', 'Current backend storage quota size in bytes.');
  readonly serverId = new prom.Gauge({ name: 'etcd_server_id', help: 'Server or member ID in hexadecimal format. 1 for \'server_id\' label with current ID.', labelNames: ['server_id'], registers: [this.registry] });
  readonly serverVersion = new prom.Gauge({ name: 'etcd_server_version', help: 'Which version is running. 1 for \'server_version\' label with current version.', labelNames: ['server_version'], registers: [this.registry] });
  readonly activePeers = new prom.Gauge({ name: 'etcd_network_active_peers', help: 'The current number of active peer connections.', labelNames: ['Local', 'Remote'], registers: [this.registry] });
  readonly walFsyncSeconds = new prom.Histogram({
    name: 'etcd_disk_wal_fsync_duration_seconds',
    help: 'The latency distributions of fsync called by WAL.',
    buckets: prom.exponentialBuckets(0.001, 2, 14),
    registers: [this.registry],
  });
  readonly backendCommitSeconds = new prom.Histogram({
    name: 'etcd_disk_backend_commit_duration_seconds',
    help: 'The latency distributions of commit called by backend.',
    buckets: prom.exponentialBuckets(0.001, 2, 14),
    registers: [this.registry],
  });
  readonly applySeconds = new prom.Histogram({
    name: 'etcd_server_apply_duration_seconds',
    help: 'The latency distributions of v2 apply called by backend.',
    labelNames: ['version', 'op', 'success'],
    buckets: prom.exponentialBuckets(0.0001, 2, 20),
    registers: [this.registry],
  });
  readonly dbTotalSizeBytes = this.gauge('etcd_mvcc_db_total_size_in_bytes', 'Total size of the underlying database physically allocated in bytes.');
  readonly dbTotalSizeInUseBytes = this.gauge('etcd_mvcc_db_total_size_in_use_in_bytes', 'Total size of the underlying database logically in use in bytes.');
  readonly putTotal = this.counter('etcd_mvcc_put_total', 'Total number of puts seen by this member.');
  readonly deleteTotal = this.counter('etcd_mvcc_delete_total', 'Total number of deletes seen by this member.');
  readonly rangeTotal = this.counter('etcd_mvcc_range_total', 'Total number of ranges seen by this member.');
  readonly txnTotal = this.counter('etcd_mvcc_txn_total', 'Total number of txns seen by this member.');
  readonly keysTotal = this.gauge('etcd_debugging_mvcc_keys_total', 'Total number of keys.');
  readonly currentRevision = this.gauge('etcd_debugging_mvcc_current_revision', 'The current revision of store.');
  readonly compactRevision = this.gauge('etcd_debugging_mvcc_compact_revision', 'The revision of the last compaction in store.');
  readonly watchStreamTotal = this.gauge('etcd_debugging_mvcc_watch_stream_total', 'Total number of watch streams.');
  readonly watcherTotal = this.gauge('etcd_debugging_mvcc_watcher_total', 'Total number of watchers.');
  readonly slowWatcherTotal = this.gauge('etcd_debugging_mvcc_slow_watcher_total', 'Total number of unsynced slow watchers.');
  readonly leaseGranted = this.counter('etcd_debugging_lease_granted_total', 'The total number of granted leases.');
  readonly leaseRevoked = this.counter('etcd_debugging_lease_revoked_total', 'The total number of revoked leases.');
  readonly leaseRenewed = this.counter('etcd_debugging_lease_renewed_total', 'The number of renewed leases seen by the leader.');
  readonly grpcStarted = new prom.Counter({ name: 'grpc_server_started_total', help: 'Total number of RPCs started on the server.', labelNames: ['grpc_type', 'grpc_service', 'grpc_method'], registers: [this.registry] });
  readonly grpcHandled = new prom.Counter({ name: 'grpc_server_handled_total', help: 'Total number of RPCs completed on the server, regardless of success or failure.', labelNames: ['grpc_type', 'grpc_service', 'grpc_method', 'grpc_code'], registers: [this.registry] });

  constructor() {
    prom.collectDefaultMetrics({ register: this.registry });
  }

  private gauge(name: string, help: string): prom.Gauge {
    return new prom.Gauge({ name, help, registers: [this.registry] });
  }

  private counter(name: string, help: string): prom.Counter {
    return new prom.Counter({ name, help, registers: [this.registry] });
  }
}
