import * as prom from 'prom-client';
import type { KvStore } from '../../mvcc/kv-store';
import type { StoreMetricsHooks } from '../../mvcc/metrics-hooks';
import type { WatchableStore } from '../../mvcc/watchable-store';
import { networkFamilies, type NetworkFamilies } from './metrics/network-families';
import { processFamilies, type ProcessFamilies } from './metrics/process-families';
import { serverFamilies, type ServerFamilies, type ServerSource } from './metrics/server-families';
import { storageFamilies, type StorageFamilies, type StorageSource } from './metrics/storage-families';

export type { ServerSource, StorageSource };

/** The store and watch hub as the scrape reads them. */
export function storageSource(store: KvStore, watchable: WatchableStore): StorageSource {
  return {
    get currentRevision() {
      return store.rev;
    },
    get compactRevision() {
      return store.compactRev;
    },
    get keyCount() {
      return store.liveKeyCount;
    },
    get openReadTxns() {
      return store.openReads;
    },
    get pendingEvents() {
      return watchable.pendingEvents;
    },
    dbSizeBytes: () => store.dbSizeBytes(),
    dbSizeInUseBytes: () => store.dbSizeInUseBytes(),
  };
}

/**
 * Prometheus metrics under etcd 3.4's own names, types, help, labels and buckets, so existing
 * dashboards and alerts work (docs/metrics.md lists every family, where it is updated, and the few
 * etcd has that cairn does not). One registry per member (several members may share a process in
 * tests and embedding). The families are defined by group in ./metrics/; each is updated where
 * its event happens (raft-node.ts, apply, the mvcc hooks, rafthttp, the gRPC interceptor).
 */
export interface ServerMetrics extends ServerFamilies, StorageFamilies, NetworkFamilies, ProcessFamilies {}

export class ServerMetrics {
  readonly registry = new prom.Registry();
  private serverSource: ServerSource | undefined;
  private storageSource: StorageSource | undefined;

  /**
   * grpc_server_handling_seconds{grpc_type,grpc_service,grpc_method}: registered with
   * --metrics=extensive only, as etcd enables go-grpc-prometheus' handling-time histogram.
   */
  readonly grpcHandlingSeconds: prom.Histogram<'grpc_type' | 'grpc_service' | 'grpc_method'> | undefined;

  constructor(opts: { extensive?: boolean } = {}) {
    this.grpcHandlingSeconds = opts.extensive
      ? new prom.Histogram({
          name: 'grpc_server_handling_seconds',
          help: 'Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.',
          labelNames: ['grpc_type', 'grpc_service', 'grpc_method'],
          // prometheus.DefBuckets, go-grpc-prometheus' default.
          buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
          registers: [this.registry],
        })
      : undefined;
    Object.assign(
      this,
      serverFamilies(this.registry, () => this.serverSource),
      storageFamilies(this.registry, () => this.storageSource),
      networkFamilies(this.registry),
      processFamilies(this.registry),
    );
  }

  /** The store's hooks (mvcc/metrics-hooks.ts) bound to etcd's mvcc and backend families. */
  storeHooks(): StoreMetricsHooks {
    return {
      txn: (ops) => {
        // etcd's metricsTxnWrite.End: a txn of more than one operation counts as a txn.
        if (ops.ranges + ops.puts + ops.deletes > 1) {
          this.txnTotal.inc();
          this.debuggingTxnTotal.inc();
        }
        this.rangeTotal.inc(ops.ranges);
        this.debuggingRangeTotal.inc(ops.ranges);
        this.putTotal.inc(ops.puts);
        this.debuggingPutTotal.inc(ops.puts);
        this.deleteTotal.inc(ops.deletes);
        this.debuggingDeleteTotal.inc(ops.deletes);
        this.totalPutSizeBytes.inc(ops.putBytes);
      },
      backendCommit: (seconds) => this.backendCommitSeconds.observe(seconds),
      defrag: (inflight, seconds) => {
        this.defragInflight.set(inflight ? 1 : 0);
        if (seconds !== undefined) this.backendDefragSeconds.observe(seconds);
      },
      compaction: (c) => {
        this.indexCompactionPauseMs.observe(c.indexPauseMs);
        for (const ms of c.dbPauseMs) this.dbCompactionPauseMs.observe(ms);
        this.dbCompactionTotalMs.observe(c.totalMs);
        this.compactionKeys.inc(c.keysCompacted);
      },
      hash: (kind, seconds) => (kind === 'hash' ? this.hashSeconds : this.hashRevSeconds).observe(seconds),
    };
  }

  /** Gauges etcd keeps current are read from these at scrape time. */
  bind(sources: { server?: ServerSource; storage?: StorageSource }): void {
    if (sources.server) this.serverSource = sources.server;
    if (sources.storage) this.storageSource = sources.storage;
  }
}
