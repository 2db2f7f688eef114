import * as grpc from '@grpc/grpc-js';
import { messageCodec } from '../../proto';
import { PROBE_PATH } from './peer-metrics';
import { SEND_SNAPSHOT_PATH } from './snapshot-sender';
import { grpcDialTarget } from '../transport/url-scheme';

/**
 * The Peer gRPC service (proto/cairn/raft.proto) as the transport serves and dials it: the method
 * table with raw-bytes framing, the codecs of its unary messages, and how a peer URL is dialed.
 */

export const identity = (b: Buffer): Buffer => b;

/** The metadata key a Send stream carries its sender's member ID (hex) in, as etcd's X-Server-From header. */
export const SENDER_METADATA_KEY = 'cairn-from';

export function senderMetadata(memberId: bigint): grpc.Metadata {
  const md = new grpc.Metadata();
  md.set(SENDER_METADATA_KEY, memberId.toString(16));
  return md;
}

/** The sender's member ID (hex) a Send stream announced, if it is one. */
export function senderFromMetadata(md: grpc.Metadata): string | undefined {
  const v = md.get(SENDER_METADATA_KEY)[0];
  return typeof v === 'string' && /^[0-9a-f]{1,16}$/.test(v) ? v : undefined;
}

/** The Peer service with raw-bytes framing: we encode batches ourselves (raft-codec.ts). */
export const PEER_SERVICE: grpc.ServiceDefinition = {
  Send: { path: '/cairnpb.Peer/Send', requestStream: true, responseStream: false, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity, originalName: 'Send' },
  SendSnapshot: { path: SEND_SNAPSHOT_PATH, requestStream: true, responseStream: false, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity, originalName: 'SendSnapshot' },
  LeaseRenew: { path: '/cairnpb.Peer/LeaseRenew', requestStream: false, responseStream: false, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity, originalName: 'LeaseRenew' },
  LeaseTimeToLive: { path: '/cairnpb.Peer/LeaseTimeToLive', requestStream: false, responseStream: false, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity, originalName: 'LeaseTimeToLive' },
  LearnerReady: { path: '/cairnpb.Peer/LearnerReady', requestStream: false, responseStream: false, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity, originalName: 'LearnerReady' },
  Probe: { path: PROBE_PATH, requestStream: false, responseStream: false, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity, originalName: 'Probe' },
  Members: { path: '/cairnpb.Peer/Members', requestStream: false, responseStream: false, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity, originalName: 'Members' },
};

export const leaseRenewReq = messageCodec<{ cluster_id: string; ID: string }>('cairnpb.LeaseRenewRequest');
export const leaseRenewResp = messageCodec<{ TTL: string; not_found: boolean }>('cairnpb.LeaseRenewResponse');
export const ttlReq = messageCodec<{ cluster_id: string; ID: string; keys: boolean }>('cairnpb.LeaseTimeToLiveForward');
export const ttlResp = messageCodec<{ found: boolean; TTL: string; grantedTTL: string; keys: Buffer[] }>('cairnpb.LeaseTimeToLiveAnswer');
export const learnerReadyReq = messageCodec<{ cluster_id: string; ID: string }>('cairnpb.LearnerReadyRequest');
export const learnerReadyResp = messageCodec<{ ready: boolean }>('cairnpb.LearnerReadyResponse');
export const membersReq = messageCodec<{ cluster_id: string }>('cairnpb.MembersRequest');
export const membersResp = messageCodec<{ cluster_id: string; members: Buffer[]; applied_index: string; removed: string[] }>('cairnpb.MembersResponse');

/** A peer URL in one spelling (`http://h:2380` and `http://h:2380/` alike); other keys (names) as they are. */
export function normalizePeerUrl(key: string): string {
  if (!key.includes('://')) return key;
  try {
    return new URL(key).href.replace(/\/$/, '');
  } catch {
    return key;
  }
}

/** host:port to dial for a peer URL (localhost as 127.0.0.1, etcd's default peer port 2380). */
export function dialAddress(peerUrl: string): string {
  return grpcDialTarget(peerUrl, 2380);
}

/** etcd's rafthttp answer to a removed member (HTTP 410 there, FAILED_PRECONDITION here). */
export const REMOVED_MEMBER_DETAILS = 'the member has been permanently removed from the cluster';
