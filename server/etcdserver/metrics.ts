import * as prom from 'prom-client';
import { networkFamilies, type NetworkFamilies } from './metrics/network-families';
import { processFamilies, type ProcessFamilies } from './metrics/process-families';
import { serverFamilies, type ServerFamilies, type ServerSource } from './metrics/server-families';
import { storageFamilies, type StorageFamilies, type StorageSource } from './metrics/storage-families';

export type { ServerSource, StorageSource };

/**
 * Prometheus metrics under etcd 3.4's own names, types, help, labels and buckets, so existing
 * dashboards and alerts work (docs/metrics.md lists every family, where it is updated, and the few
 * etcd has that cairn does not). One registry per member (several members may share a process in
 * tests and embedding). The families are defined by group in ./metrics/; each is updated where
 * its event happens (raft-node.ts, apply, the mvcc hooks, rafthttp, the gRPC interceptor).
 */
export interface ServerMetrics extends ServerFamilies, StorageFamilies, NetworkFamilies, ProcessFamilies {}

// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging -- the families are assigned in the constructor
export class ServerMetrics {
  readonly registry = new prom.Registry();
  private serverSource: ServerSource | undefined;
  private storageSource: StorageSource | undefined;

  constructor() {
    Object.assign(
      this,
      serverFamilies(this.registry, () => this.serverSource),
      storageFamilies(this.registry, () => this.storageSource),
      networkFamilies(this.registry),
      processFamilies(this.registry),
    );
  }

  /** Gauges etcd keeps current are read from these at scrape time. */
  bind(sources: { server?: ServerSource; storage?: StorageSource }): void {
    if (sources.server) this.serverSource = sources.server;
    if (sources.storage) this.storageSource = sources.storage;
  }
}
