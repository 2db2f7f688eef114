/**
 * The peer transport's metrics (etcd 3.4 rafthttp/metrics.go) and its round-trip prober (etcd
 * rafthttp/probing_status.go). Peer labels are member IDs in hex, as etcd's types.ID.String().
 */
import type { ServerMetrics } from '../etcdserver/metrics';

export type PeerMetrics = Pick<
  ServerMetrics,
  | 'activePeers'
  | 'disconnectedPeers'
  | 'peerSentBytes'
  | 'peerReceivedBytes'
  | 'peerSentFailures'
  | 'peerReceivedFailures'
  | 'peerRoundTripSeconds'
  | 'snapshotSendSuccess'
  | 'snapshotSendFailures'
  | 'snapshotSendSeconds'
  | 'snapshotSendInflights'
  | 'snapshotReceiveSuccess'
  | 'snapshotReceiveFailures'
  | 'snapshotReceiveSeconds'
  | 'snapshotReceiveInflights'
>;

/** etcd's proberInterval (ConnReadTimeout - 1 s): how often each peer's round trip is measured. */
export const PROBE_INTERVAL_MS = 4_000;
/** A probe unanswered this long counts as lost (no observation). */
export const PROBE_TIMEOUT_MS = 5_000;
export const PROBE_PATH = '/cairnpb.Peer/Probe';

export const hexId = (id: bigint): string => id.toString(16);

/**
 * Probes a peer now and every PROBE_INTERVAL_MS with an empty unary call on the peer port, and
 * reports each answered probe's round trip (etcd_network_peer_round_trip_time_seconds{To}).
 * Returns the function that stops it.
 */
export function startProber(call: (path: string, req: Uint8Array, timeoutMs: number) => Promise<unknown>, observe: (seconds: number) => void): () => void {
  let stopped = false;
  const probe = (): void => {
    const started = performance.now();
    call(PROBE_PATH, new Uint8Array(0), PROBE_TIMEOUT_MS).then(
      () => {
        if (!stopped) observe((performance.now() - started) / 1000);
      },
      () => undefined, // an unreachable peer shows in sent failures and active_peers instead
    );
  };
  probe();
  const timer = setInterval(probe, PROBE_INTERVAL_MS);
  timer.unref();
  return () => {
    stopped = true;
    clearInterval(timer);
  };
}

/** Times one snapshot transfer and records its outcome under etcd_network_snapshot_{send,receive}_*. */
export function snapshotTransfer(m: PeerMetrics, direction: 'send' | 'receive', peer: bigint): (ok: boolean) => void {
  const finish = transferOutcome(m, direction, peer);
  let done = false;
  return (ok) => {
    if (done) return;
    done = true;
    finish(ok);
  };
}

function transferOutcome(m: PeerMetrics, direction: 'send' | 'receive', peer: bigint): (ok: boolean) => void {
  const started = performance.now();
  if (direction === 'send') {
    const labels = { To: hexId(peer) };
    m.snapshotSendInflights.inc(labels);
    return (ok) => {
      m.snapshotSendInflights.dec(labels);
      if (!ok) return m.snapshotSendFailures.inc(labels);
      m.snapshotSendSuccess.inc(labels);
      m.snapshotSendSeconds.observe(labels, (performance.now() - started) / 1000);
    };
  }
  const labels = { From: hexId(peer) };
  m.snapshotReceiveInflights.inc(labels);
  return (ok) => {
    m.snapshotReceiveInflights.dec(labels);
    if (!ok) return m.snapshotReceiveFailures.inc(labels);
    m.snapshotReceiveSuccess.inc(labels);
    m.snapshotReceiveSeconds.observe(labels, (performance.now() - started) / 1000);
  };
}
