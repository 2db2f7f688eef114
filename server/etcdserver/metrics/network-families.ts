import type * as prom from 'prom-client';
import { counter, counterVec, exp, gaugeVec, histogramVec, hotCounterVec } from './families';

/**
 * etcd_network_* (etcd 3.4 rafthttp/metrics.go, v3rpc/metrics.go) and the grpc_server_* families of
 * go-grpc-prometheus, which etcd registers on its gRPC server. Peer labels are member IDs in hex.
 */
export function networkFamilies(r: prom.Registry) {
  return {
    peerSentBytes: counterVec(r, 'etcd_network_peer_sent_bytes_total', 'The total number of bytes sent to peers.', ['To']),
    peerReceivedBytes: counterVec(r, 'etcd_network_peer_received_bytes_total', 'The total number of bytes received from peers.', ['From']),
    peerSentFailures: counterVec(r, 'etcd_network_peer_sent_failures_total', 'The total number of send failures from peers.', ['To']),
    peerReceivedFailures: counterVec(r, 'etcd_network_peer_received_failures_total', 'The total number of receive failures from peers.', ['From']),
    peerRoundTripSeconds: histogramVec(r, 'etcd_network_peer_round_trip_time_seconds', 'Round-Trip-Time histogram between peers', ['To'], exp(0.0001, 2, 16)),
    activePeers: gaugeVec(r, 'etcd_network_active_peers', 'The current number of active peer connections.', ['Local', 'Remote']),
    disconnectedPeers: counterVec(r, 'etcd_network_disconnected_peers_total', 'The total number of disconnected peers.', ['Local', 'Remote']),
    snapshotSendSuccess: counterVec(r, 'etcd_network_snapshot_send_success', 'Total number of successful snapshot sends', ['To']),
    snapshotSendFailures: counterVec(r, 'etcd_network_snapshot_send_failures', 'Total number of snapshot send failures', ['To']),
    snapshotSendSeconds: histogramVec(r, 'etcd_network_snapshot_send_total_duration_seconds', 'Total latency distributions of v3 snapshot sends', ['To'], exp(0.1, 2, 10)),
    snapshotSendInflights: gaugeVec(r, 'etcd_network_snapshot_send_inflights_total', 'Total number of inflight snapshot sends', ['To']),
    snapshotReceiveSuccess: counterVec(r, 'etcd_network_snapshot_receive_success', 'Total number of successful snapshot receives', ['From']),
    snapshotReceiveFailures: counterVec(r, 'etcd_network_snapshot_receive_failures', 'Total number of snapshot receive failures', ['From']),
    snapshotReceiveSeconds: histogramVec(r, 'etcd_network_snapshot_receive_total_duration_seconds', 'Total latency distributions of v3 snapshot receives', ['From'], exp(0.1, 2, 10)),
    snapshotReceiveInflights: gaugeVec(r, 'etcd_network_snapshot_receive_inflights_total', 'Total number of inflight snapshot receives', ['From']),
    clientGrpcSentBytes: counter(r, 'etcd_network_client_grpc_sent_bytes_total', 'The total number of bytes sent to grpc clients.'),
    clientGrpcReceivedBytes: counter(r, 'etcd_network_client_grpc_received_bytes_total', 'The total number of bytes received from grpc clients.'),

    grpcStarted: hotCounterVec(r, 'grpc_server_started_total', 'Total number of RPCs started on the server.', ['grpc_type', 'grpc_service', 'grpc_method']),
    grpcHandled: hotCounterVec(r, 'grpc_server_handled_total', 'Total number of RPCs completed on the server, regardless of success or failure.', ['grpc_type', 'grpc_service', 'grpc_method', 'grpc_code']),
    grpcMsgReceived: hotCounterVec(r, 'grpc_server_msg_received_total', 'Total number of RPC stream messages received on the server.', ['grpc_type', 'grpc_service', 'grpc_method']),
    grpcMsgSent: hotCounterVec(r, 'grpc_server_msg_sent_total', 'Total number of gRPC stream messages sent by the server.', ['grpc_type', 'grpc_service', 'grpc_method']),
  };
}

export type NetworkFamilies = ReturnType<typeof networkFamilies>;
