import type * as prom from 'prom-client';
import { counter, counterVec, exp, gauge, gaugeVec, histogramVec, hotCounterVec } from './families';

/** State the scrape reads at collection time (set once the server has opened). */
export interface ServerSource {
  readonly isLearner: boolean;
}

/**
 * etcd_server_* and etcd_cluster_version (etcd 3.4 etcdserver/metrics.go), same names, help and labels.
 * Not here: etcd_server_go_version (cairn runs on Node, not Go; prom-client's nodejs_version_info
 * carries the runtime version instead, see docs/metrics.md).
 */
export function serverFamilies(r: prom.Registry, source: () => ServerSource | undefined) {
  return {
    hasLeader: gauge(r, 'etcd_server_has_leader', 'Whether or not a leader exists. 1 is existence, 0 is not.'),
    isLeader: gauge(r, 'etcd_server_is_leader', 'Whether or not this member is a leader. 1 if is, 0 otherwise.'),
    isLearner: gauge(r, 'etcd_server_is_learner', 'Whether or not this member is a learner. 1 if is, 0 otherwise.', (g) => g.set(source()?.isLearner ? 1 : 0)),
    leaderChanges: counter(r, 'etcd_server_leader_changes_seen_total', 'The number of leader changes seen.'),
    learnerPromoteSucceed: counter(r, 'etcd_server_learner_promote_successes', 'The total number of successful learner promotions while this member is leader.'),
    learnerPromoteFailed: counterVec(r, 'etcd_server_learner_promote_failures', 'The total number of failed learner promotions (likely learner not ready) while this member is leader.', ['Reason']),
    // etcd exports both as gauges set to the raft commit / applied index.
    proposalsCommitted: gauge(r, 'etcd_server_proposals_committed_total', 'The total number of consensus proposals committed.'),
    proposalsApplied: gauge(r, 'etcd_server_proposals_applied_total', 'The total number of consensus proposals applied.'),
    proposalsPending: gauge(r, 'etcd_server_proposals_pending', 'The current number of pending proposals to commit.'),
    proposalsFailed: counter(r, 'etcd_server_proposals_failed_total', 'The total number of failed proposals seen.'),
    slowApplies: counter(r, 'etcd_server_slow_apply_total', 'The total number of slow apply requests (likely overloaded from slow disk).'),
    slowReadIndexes: counter(r, 'etcd_server_slow_read_indexes_total', "The total number of pending read indexes not in sync with leader's or timed out read index requests."),
    readIndexFailed: counter(r, 'etcd_server_read_indexes_failed_total', 'The total number of failed read indexes seen.'),
    heartbeatSendFailures: counter(r, 'etcd_server_heartbeat_send_failures_total', 'The total number of leader heartbeat send failures (likely overloaded from slow disk).'),
    quotaBackendBytes: gauge(r, 'etcd_server_quota_backend_bytes', 'Current backend storage quota size in bytes.'),
    serverId: gaugeVec(r, 'etcd_server_id', "Server or member ID in hexadecimal format. 1 for 'server_id' label with current ID.", ['server_id']),
    serverVersion: gaugeVec(r, 'etcd_server_version', "Which version is running. 1 for 'server_version' label with current version.", ['server_version']),
    clusterVersion: gaugeVec(r, 'etcd_cluster_version', "Which version is running. 1 for 'cluster_version' label with current cluster version", ['cluster_version']),
    healthSuccess: counter(r, 'etcd_server_health_success', 'The total number of successful health checks'),
    healthFailures: counter(r, 'etcd_server_health_failures', 'The total number of failed health checks'),
    clientRequests: hotCounterVec(r, 'etcd_server_client_requests_total', 'The total number of client requests per client version.', ['type', 'client_api_version']),
    snapshotApplyInProgress: gauge(r, 'etcd_server_snapshot_apply_in_progress_total', '1 if the server is applying the incoming snapshot. 0 if none.'),
    leaseExpired: counter(r, 'etcd_debugging_server_lease_expired_total', 'The total number of expired leases.'),
    authRevision: gauge(r, 'etcd_debugging_auth_revision', 'The current revision of auth store.'),
    // etcd 3.5's apply histogram (v3 ops only); kept because dashboards for 3.5 chart it.
    applySeconds: histogramVec(r, 'etcd_server_apply_duration_seconds', 'The latency distributions of v2 apply called by backend.', ['version', 'op', 'success'], exp(0.0001, 2, 20)),
  };
}

export type ServerFamilies = ReturnType<typeof serverFamilies>;
