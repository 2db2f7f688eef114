/**
 * etcd 3.4's gateway paths (the google.api.http `post:` rules of rpc.proto, v3election.proto and
 * v3lock.proto, as generated into etcdserverpb/gw/rpc.pb.gw.go, v3electionpb/gw and v3lockpb/gw).
 * Every rule is a POST. /v3beta/ is served too: etcd's accessController rewrites it to /v3/.
 */
export interface Route {
  /** `package.Service`, as listed in server/embed/services.ts. */
  readonly service: string;
  readonly method: string;
}

const KV = 'etcdserverpb.KV';
const WATCH = 'etcdserverpb.Watch';
const LEASE = 'etcdserverpb.Lease';
const CLUSTER = 'etcdserverpb.Cluster';
const MAINTENANCE = 'etcdserverpb.Maintenance';
const AUTH = 'etcdserverpb.Auth';

const RULES: [string, string, string][] = [
  ['/v3/kv/range', KV, 'Range'],
  ['/v3/kv/put', KV, 'Put'],
  ['/v3/kv/deleterange', KV, 'DeleteRange'],
  ['/v3/kv/txn', KV, 'Txn'],
  ['/v3/kv/compaction', KV, 'Compact'],
  ['/v3/watch', WATCH, 'Watch'],
  ['/v3/lease/grant', LEASE, 'LeaseGrant'],
  ['/v3/lease/revoke', LEASE, 'LeaseRevoke'],
  ['/v3/kv/lease/revoke', LEASE, 'LeaseRevoke'],
  ['/v3/lease/keepalive', LEASE, 'LeaseKeepAlive'],
  ['/v3/lease/timetolive', LEASE, 'LeaseTimeToLive'],
  ['/v3/kv/lease/timetolive', LEASE, 'LeaseTimeToLive'],
  ['/v3/lease/leases', LEASE, 'LeaseLeases'],
  ['/v3/kv/lease/leases', LEASE, 'LeaseLeases'],
  ['/v3/cluster/member/add', CLUSTER, 'MemberAdd'],
  ['/v3/cluster/member/remove', CLUSTER, 'MemberRemove'],
  ['/v3/cluster/member/update', CLUSTER, 'MemberUpdate'],
  ['/v3/cluster/member/list', CLUSTER, 'MemberList'],
  ['/v3/cluster/member/promote', CLUSTER, 'MemberPromote'],
  ['/v3/maintenance/alarm', MAINTENANCE, 'Alarm'],
  ['/v3/maintenance/status', MAINTENANCE, 'Status'],
  ['/v3/maintenance/defragment', MAINTENANCE, 'Defragment'],
  // Hash and HashKV share this path; grpc-gateway's mux takes the first rule registered: Hash.
  ['/v3/maintenance/hash', MAINTENANCE, 'Hash'],
  ['/v3/maintenance/snapshot', MAINTENANCE, 'Snapshot'],
  ['/v3/maintenance/transfer-leadership', MAINTENANCE, 'MoveLeader'],
  ['/v3/auth/enable', AUTH, 'AuthEnable'],
  ['/v3/auth/disable', AUTH, 'AuthDisable'],
  ['/v3/auth/authenticate', AUTH, 'Authenticate'],
  ['/v3/auth/user/add', AUTH, 'UserAdd'],
  ['/v3/auth/user/get', AUTH, 'UserGet'],
  ['/v3/auth/user/list', AUTH, 'UserList'],
  ['/v3/auth/user/delete', AUTH, 'UserDelete'],
  ['/v3/auth/user/changepw', AUTH, 'UserChangePassword'],
  ['/v3/auth/user/grant', AUTH, 'UserGrantRole'],
  ['/v3/auth/user/revoke', AUTH, 'UserRevokeRole'],
  ['/v3/auth/role/add', AUTH, 'RoleAdd'],
  ['/v3/auth/role/get', AUTH, 'RoleGet'],
  ['/v3/auth/role/list', AUTH, 'RoleList'],
  ['/v3/auth/role/delete', AUTH, 'RoleDelete'],
  ['/v3/auth/role/grant', AUTH, 'RoleGrantPermission'],
  ['/v3/auth/role/revoke', AUTH, 'RoleRevokePermission'],
  ['/v3/election/campaign', 'v3electionpb.Election', 'Campaign'],
  ['/v3/election/proclaim', 'v3electionpb.Election', 'Proclaim'],
  ['/v3/election/leader', 'v3electionpb.Election', 'Leader'],
  ['/v3/election/observe', 'v3electionpb.Election', 'Observe'],
  ['/v3/election/resign', 'v3electionpb.Election', 'Resign'],
  ['/v3/lock/lock', 'v3lockpb.Lock', 'Lock'],
  ['/v3/lock/unlock', 'v3lockpb.Lock', 'Unlock'],
];

export const ROUTES: ReadonlyMap<string, Route> = new Map(RULES.map(([path, service, method]) => [path, { service, method }]));

/** etcd's accessController: /v3beta/ paths are served as /v3/ ones (backward compatibility). */
export function gatewayPath(pathname: string): string | undefined {
  if (pathname.startsWith('/v3/')) return pathname;
  if (pathname.startsWith('/v3beta/')) return `/v3/${pathname.slice('/v3beta/'.length)}`;
  return undefined;
}
