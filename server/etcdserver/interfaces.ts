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
  PermissionMsg,
  TxnRequest,
} from '../../proto/etcd-types';

export type { AuthInfo };
import type { ServerConfig } from '../embed/config';
import type { AuthInfo } from '../auth/token-provider';
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
  // `ai`: who asks (from the token or client certificate); undefined = nobody, refused while auth is on.
  range(r: RangeRequest, ai?: AuthInfo): Promise<RangeResponse>;
  put(r: PutRequest, ai?: AuthInfo): Promise<unknown>;
  deleteRange(r: DeleteRangeRequest, ai?: AuthInfo): Promise<unknown>;
  txn(r: TxnRequest, ai?: AuthInfo): Promise<unknown>;
  compact(r: CompactionRequest, ai?: AuthInfo): Promise<unknown>;
  /** Resolves once this member's state reflects every write committed before the call (ReadIndex). */
  linearizableReadNotify(): Promise<void>;
}

/** etcd's Lessor side of EtcdServer. */
export interface LeaseServer extends ServerInfo {
  leaseGrant(r: LeaseGrantRequest, ai?: AuthInfo): Promise<unknown>;
  leaseRevoke(id: bigint, ai?: AuthInfo): Promise<unknown>;
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

type AuthResponse = Promise<Record<string, unknown> & { header: ResponseHeader }>;

/** etcd's Authenticator and AuthGetter: the Auth RPCs, token resolution and the permission checks front ends make. */
export interface AuthServer {
  /** Throws ErrInvalidAuthToken for an unknown, expired or forged token. */
  authInfoFromToken(token: string): Promise<AuthInfo>;
  authInfoFromCommonName(cn: string): AuthInfo;
  /** Root role required (Defragment, Snapshot, Hash, HashKV, member changes). */
  isAdminPermitted(ai: AuthInfo | undefined): void;
  /** Read permission on [key, rangeEnd) (a watch at creation). */
  isRangePermitted(ai: AuthInfo | undefined, key: Buffer, rangeEnd: Buffer): void;
  authEnable(ai: AuthInfo | undefined): AuthResponse;
  authDisable(ai: AuthInfo | undefined): AuthResponse;
  authStatus(): AuthResponse;
  authenticate(name: string, password: string): AuthResponse;
  userAdd(r: { name: string; password: string; options?: { no_password: boolean } | null }, ai: AuthInfo | undefined): AuthResponse;
  userGet(name: string, ai: AuthInfo | undefined): AuthResponse;
  userList(ai: AuthInfo | undefined): AuthResponse;
  userDelete(name: string, ai: AuthInfo | undefined): AuthResponse;
  userChangePassword(name: string, password: string, ai: AuthInfo | undefined): AuthResponse;
  userGrantRole(user: string, role: string, ai: AuthInfo | undefined): AuthResponse;
  userRevokeRole(name: string, role: string, ai: AuthInfo | undefined): AuthResponse;
  roleAdd(name: string, ai: AuthInfo | undefined): AuthResponse;
  roleGet(role: string, ai: AuthInfo | undefined): AuthResponse;
  roleList(ai: AuthInfo | undefined): AuthResponse;
  roleDelete(role: string, ai: AuthInfo | undefined): AuthResponse;
  roleGrantPermission(name: string, perm: PermissionMsg, ai: AuthInfo | undefined): AuthResponse;
  roleRevokePermission(role: string, key: Buffer, rangeEnd: Buffer, ai: AuthInfo | undefined): AuthResponse;
}
