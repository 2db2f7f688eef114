/**
 * The decoded shape of etcd's messages under DECODE_OPTIONS (see index.ts): snake_case names,
 * int64/uint64 as decimal strings, enums as numbers, bytes as Buffers, defaults filled in.
 * Outgoing messages may use numbers for int64 fields that fit (revisions, counts).
 */
export type Int64 = string;
export type Int64Out = string | number;

export interface ResponseHeader {
  cluster_id: Int64Out;
  member_id: Int64Out;
  revision: Int64Out;
  raft_term: Int64Out;
}

export interface KeyValueMsg {
  key: Buffer;
  create_revision: Int64Out;
  mod_revision: Int64Out;
  version: Int64Out;
  value: Buffer;
  lease: Int64Out;
}

export const enum SortOrder { NONE = 0, ASCEND = 1, DESCEND = 2 }
export const enum SortTarget { KEY = 0, VERSION = 1, CREATE = 2, MOD = 3, VALUE = 4 }

export interface RangeRequest {
  key: Buffer;
  range_end: Buffer;
  limit: Int64;
  revision: Int64;
  sort_order: SortOrder;
  sort_target: SortTarget;
  serializable: boolean;
  keys_only: boolean;
  count_only: boolean;
  min_mod_revision: Int64;
  max_mod_revision: Int64;
  min_create_revision: Int64;
  max_create_revision: Int64;
}

export interface RangeResponse {
  header: ResponseHeader;
  kvs: KeyValueMsg[];
  more: boolean;
  count: Int64Out;
}

export interface PutRequest {
  key: Buffer;
  value: Buffer;
  lease: Int64;
  prev_kv: boolean;
  ignore_value: boolean;
  ignore_lease: boolean;
}

export interface PutResponse {
  header: ResponseHeader;
  prev_kv?: KeyValueMsg;
}

export interface DeleteRangeRequest {
  key: Buffer;
  range_end: Buffer;
  prev_kv: boolean;
}

export interface DeleteRangeResponse {
  header: ResponseHeader;
  deleted: Int64Out;
  prev_kvs: KeyValueMsg[];
}

export interface RequestOp {
  request?: 'request_range' | 'request_put' | 'request_delete_range' | 'request_txn';
  request_range?: RangeRequest | null;
  request_put?: PutRequest | null;
  request_delete_range?: DeleteRangeRequest | null;
  request_txn?: TxnRequest | null;
}

export interface ResponseOp {
  response_range?: RangeResponse;
  response_put?: PutResponse;
  response_delete_range?: DeleteRangeResponse;
  response_txn?: TxnResponse;
}

export const enum CompareResult { EQUAL = 0, GREATER = 1, LESS = 2, NOT_EQUAL = 3 }
export const enum CompareTarget { VERSION = 0, CREATE = 1, MOD = 2, VALUE = 3, LEASE = 4 }

export interface Compare {
  result: CompareResult;
  target: CompareTarget;
  key: Buffer;
  target_union?: 'version' | 'create_revision' | 'mod_revision' | 'value' | 'lease';
  version?: Int64;
  create_revision?: Int64;
  mod_revision?: Int64;
  value?: Buffer;
  lease?: Int64;
  range_end: Buffer;
}

export interface TxnRequest {
  compare: Compare[];
  success: RequestOp[];
  failure: RequestOp[];
}

export interface TxnResponse {
  header: ResponseHeader;
  succeeded: boolean;
  responses: ResponseOp[];
}

export interface CompactionRequest {
  revision: Int64;
  physical: boolean;
}

export interface LeaseGrantRequest { TTL: Int64; ID: Int64 }
export interface LeaseRevokeRequest { ID: Int64 }
export interface LeaseCheckpoint { ID: Int64; remaining_TTL: Int64 }
export interface LeaseCheckpointRequest { checkpoints: LeaseCheckpoint[] }

export enum AlarmAction { GET = 0, ACTIVATE = 1, DEACTIVATE = 2 }
export enum AlarmType { NONE = 0, NOSPACE = 1, CORRUPT = 2 }
export interface AlarmRequest { action: AlarmAction; memberID: Int64; alarm: AlarmType }
export interface AlarmMember { memberID: Int64Out; alarm: AlarmType }

export interface MemberMsg {
  ID: Int64Out;
  name: string;
  peerURLs: string[];
  clientURLs: string[];
  isLearner: boolean;
}

/** cairnpb.RequestHeader: who proposed a request, and its ID. */
export interface RequestHeader {
  ID?: Int64;
  username?: string;
  auth_revision?: Int64;
}

/** What is proposed through Raft (proto/cairn/internal.proto). Exactly one field is set. */
export interface InternalRaftRequest {
  header?: RequestHeader | null;
  put?: PutRequest | null;
  delete_range?: DeleteRangeRequest | null;
  txn?: TxnRequest | null;
  compaction?: CompactionRequest | null;
  lease_grant?: LeaseGrantRequest | null;
  lease_revoke?: LeaseRevokeRequest | null;
  alarm?: AlarmRequest | null;
  lease_checkpoint?: LeaseCheckpointRequest | null;
  member_attributes?: { ID: Int64; name: string; clientURLs: string[] } | null;
  authenticate?: { name: string; password?: string; simple_token: string } | null;
  auth_enable?: object | null;
  auth_disable?: object | null;
  auth_user_add?: AuthUserAddRequest | null;
  auth_user_delete?: { name: string } | null;
  auth_user_get?: { name: string } | null;
  auth_user_change_password?: { name: string; password?: string; hashedPassword: string } | null;
  auth_user_grant_role?: { user: string; role: string } | null;
  auth_user_revoke_role?: { name: string; role: string } | null;
  auth_user_list?: object | null;
  auth_role_list?: object | null;
  auth_role_add?: { name: string } | null;
  auth_role_delete?: { role: string } | null;
  auth_role_get?: { role: string } | null;
  auth_role_grant_permission?: { name: string; perm: PermissionMsg | null } | null;
  auth_role_revoke_permission?: { role: string; key: Buffer; range_end: Buffer } | null;
}

/** authpb.Permission.Type */
export enum PermissionType { READ = 0, WRITE = 1, READWRITE = 2 }
export interface PermissionMsg { permType: PermissionType; key: Buffer; range_end: Buffer }
export interface AuthUserAddRequest { name: string; password?: string; options?: { no_password: boolean } | null; hashedPassword: string }
