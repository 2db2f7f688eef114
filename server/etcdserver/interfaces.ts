import type {
  AlarmMember,
  AlarmRequest,
  CompactionRequest,
  DeleteRangeRequest,
  LeaseGrantRequest,
  PutRequest,
  RangeRequest,
  RangeResponse,
  ResponseHeader,
  TxnRequest,
} from '../../proto/etcd-types';
import type { ServerConfig } from '../embed/config';
import type { Alarm } from './alarms';
import type { Member } from './membership/membership';

/**
 * What the front ends (v3rpc/ gRPC services, api/ HTTP endpoints, election and lock) may call:
 * etcd's RaftKV, Lessor, Cluster and Maintenance interfaces of EtcdServer (v3_server.go). They
 * validate, call these, and map errors; none of them touches the store, lessor or backend.
 */

/** Who this member is and where it stands in Raft, for response headers and Status. */
export interface ServerInfo {
  readonly memberId: bigint;
  readonly clusterId: bigint;
  readonly leader: bigint;
  readonly isLeader: boolean;
  readonly isLearner: boolean;
  readonly raftTerm: number;
  readonly raftIndex: number;
  readonly appliedIndex: number;
  readonly cfg: Readonly<Pick<ServerConfig, 'maxRequestBytes' | 'maxTxnOps' | 'electionTimeoutMs' | 'watchProgressNotifyIntervalMs'>>;
  header(revision: number): ResponseHeader;
  /** The store's current revision. */
  revision(): number;
}

/** etcd's RaftKV. */
export interface KvServer extends ServerInfo {
  range(r: RangeRequest): Promise<RangeResponse>;
  put(r: PutRequest): Promise<unknown>;
  deleteRange(r: DeleteRangeRequest): Promise<unknown>;
  txn(r: TxnRequest): Promise<unknown>;
  compact(r: CompactionRequest): Promise<unknown>;
  /** Resolves once this member's state reflects every write committed before the call (ReadIndex). */
  linearizableReadNotify(): Promise<void>;
}

/** etcd's Lessor side of EtcdServer. */
export interface LeaseServer extends ServerInfo {
  leaseGrant(r: LeaseGrantRequest): Promise<unknown>;
  leaseRevoke(id: bigint): Promise<unknown>;
  leaseRenew(id: bigint): Promise<{ ttl: number; notFound: boolean }>;
  leaseTimeToLive(id: bigint, keys: boolean): Promise<{ found: boolean; ttl: number; grantedTtl: number; keys: Buffer[] }>;
  leaseIds(): bigint[];
  linearizableReadNotify(): Promise<void>;
}

/** etcd's Cluster API. */
export interface ClusterServer extends ServerInfo {
  members(): Member[];
  addMember(peerUrls: string[], isLearner: boolean): Promise<{ member: Member; members: Member[] }>;
  removeMember(id: bigint): Promise<Member[]>;
  promoteMember(id: bigint): Promise<Member[]>;
  updateMember(id: bigint, peerUrls: string[]): Promise<Member[]>;
  linearizableReadNotify(): Promise<void>;
}

/** etcd's Maintenance API. */
export interface MaintenanceServer extends ServerInfo {
  backendSize(): Promise<{ dbSize: number; dbSizeInUse: number }>;
  hash(): Promise<number>;
  hashKV(rev: number): Promise<{ hash: number; compactRev: number; hashRev: number }>;
  defragment(): Promise<void>;
  /** Every backend entry, consistent as of the first chunk. */
  snapshotEntries(): AsyncIterable<[Buffer, Buffer][]>;
  moveLeader(target: bigint): Promise<void>;
  alarm(r: AlarmRequest): Promise<{ header: ResponseHeader; alarms: AlarmMember[] }>;
  alarmErrors(): string[];
}

/** What /health checks (etcd's etcdhttp health handlers). */
export interface HealthServer extends KvServer {
  raisedAlarms(): Alarm[];
}
