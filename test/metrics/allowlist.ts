/**
 * Families a single etcd 3.4 member exposes that cairn deliberately does not, each with the reason
 * (docs/metrics.md repeats them). The comparison test fails if one of these shows up in cairn's
 * scrape (the entry is stale) or if etcd has any other family cairn lacks.
 */
export const ABSENT_IN_CAIRN: Record<string, string> = {
  etcd_debugging_disk_backend_commit_rebalance_duration_seconds: "bbolt's B+tree rebalance phase of a commit; LevelDB has no such phase (the whole commit is etcd_disk_backend_commit_duration_seconds)",
  etcd_debugging_disk_backend_commit_spill_duration_seconds: "bbolt's spill phase of a commit; LevelDB has no such phase",
  etcd_debugging_disk_backend_commit_write_duration_seconds: "bbolt's page-write phase of a commit; a LevelDB batch is one write, timed whole in etcd_disk_backend_commit_duration_seconds",
  etcd_debugging_auth_revision: 'the auth store is not on this branch; it arrives with the auth work',
  etcd_server_go_version: 'cairn does not run on Go; nodejs_version_info (prom-client) carries the runtime version',
  etcd_debugging_store_expires_total: "etcd's v2 store; cairn serves the v3 API only",
  etcd_debugging_store_reads_total: "etcd's v2 store; cairn serves the v3 API only",
  etcd_debugging_store_watch_requests_total: "etcd's v2 store; cairn serves the v3 API only",
  etcd_debugging_store_watchers: "etcd's v2 store; cairn serves the v3 API only",
  etcd_debugging_store_writes_total: "etcd's v2 store; cairn serves the v3 API only",
  etcd_grpc_proxy_cache_hits_total: "registered by etcd's grpc-proxy package linked into the binary; cairn has no grpc-proxy mode",
  etcd_grpc_proxy_cache_keys_total: 'grpc-proxy mode, not in cairn',
  etcd_grpc_proxy_cache_misses_total: 'grpc-proxy mode, not in cairn',
  etcd_grpc_proxy_events_coalescing_total: 'grpc-proxy mode, not in cairn',
  etcd_grpc_proxy_watchers_coalescing_total: 'grpc-proxy mode, not in cairn',
};

/** Prefixes of Go runtime families: prom-client's nodejs_* and process_* stand in for them. */
export const GO_RUNTIME_PREFIX = 'go_';

/** The families the comparison covers (etcd's own, gRPC's, the process's, promhttp's). */
export function compared(name: string): boolean {
  return /^(etcd_|grpc_server_|process_|os_fd_|promhttp_)/.test(name);
}
