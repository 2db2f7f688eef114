import type { PeerMetrics } from './peer-metrics';

/**
 * Which peers this member is connected to right now, and since when (etcd's rafthttp peerStatus,
 * ActiveSince). etcd keeps a stream to every peer open whether or not messages flow (its stream
 * readers dial each remote), so two followers are connected although Raft sends them nothing; here
 * each Peer's gRPC channel is asked to connect at once and stay connected, and the peer counts as
 * active from the moment the channel is READY until it leaves READY. The reconfiguration checks
 * (--strict-reconfig-check) rely on it, as etcd's do.
 */
export class PeerActivity {
  private readonly sinceMs = new Map<bigint, number>();

  constructor(
    private readonly local: bigint,
    private readonly metrics: PeerMetrics | undefined,
  ) {}

  connected(id: bigint): void {
    if (this.sinceMs.has(id)) return;
    this.sinceMs.set(id, Date.now());
    this.metrics?.activePeers.set(this.labels(id), 1);
  }

  disconnected(id: bigint): void {
    if (!this.sinceMs.delete(id)) return;
    this.metrics?.activePeers.set(this.labels(id), 0);
    this.metrics?.disconnectedPeers.inc(this.labels(id));
  }

  since(id: bigint): number | undefined {
    return this.sinceMs.get(id);
  }

  private labels(id: bigint): { Local: string; Remote: string } {
    return { Local: this.local.toString(16), Remote: id.toString(16) };
  }
}
