import type * as grpc from '@grpc/grpc-js';
import type { PermissionMsg } from '../../proto/etcd-types';
import type { AuthServer } from '../etcdserver/interfaces';
import type { ServerMetrics } from '../etcdserver/metrics';
import type { AuthResolver } from './auth-interceptor';
import { unary } from './interceptor';

const EMPTY = Buffer.alloc(0);

/**
 * etcdserverpb.Auth (etcd's v3rpc/auth.go): each RPC resolves who calls it and hands the request
 * to the server's auth side, which proposes it through Raft (Authenticate included, so every
 * member knows the token) or answers from local state after ReadIndex (AuthStatus).
 */
export function authService(auth: AuthServer, resolver: AuthResolver, metrics: ServerMetrics, member: { readonly isLearner: boolean }): grpc.UntypedServiceImplementation {
  type Call = grpc.ServerUnaryCall<unknown, unknown>;
  const u = <Req>(m: string, fn: (r: Req, call: Call) => Promise<unknown>) =>
    unary<Req, unknown>(metrics, 'etcdserverpb.Auth', m, (r, call) => fn(r, call as Call), member);
  const who = (call: Call) => resolver.authInfo(call);
  return {
    AuthEnable: u('AuthEnable', async (_r, call) => auth.authEnable(await who(call))),
    AuthDisable: u('AuthDisable', async (_r, call) => auth.authDisable(await who(call))),
    AuthStatus: u('AuthStatus', async () => auth.authStatus()),
    Authenticate: u('Authenticate', async (r: { name: string; password: string }) => auth.authenticate(r.name, r.password)),
    UserAdd: u('UserAdd', async (r: { name: string; password: string; options: { no_password: boolean } | null }, call) => auth.userAdd(r, await who(call))),
    UserGet: u('UserGet', async (r: { name: string }, call) => auth.userGet(r.name, await who(call))),
    UserList: u('UserList', async (_r, call) => auth.userList(await who(call))),
    UserDelete: u('UserDelete', async (r: { name: string }, call) => auth.userDelete(r.name, await who(call))),
    UserChangePassword: u('UserChangePassword', async (r: { name: string; password: string }, call) => auth.userChangePassword(r.name, r.password, await who(call))),
    UserGrantRole: u('UserGrantRole', async (r: { user: string; role: string }, call) => auth.userGrantRole(r.user, r.role, await who(call))),
    UserRevokeRole: u('UserRevokeRole', async (r: { name: string; role: string }, call) => auth.userRevokeRole(r.name, r.role, await who(call))),
    RoleAdd: u('RoleAdd', async (r: { name: string }, call) => auth.roleAdd(r.name, await who(call))),
    RoleGet: u('RoleGet', async (r: { role: string }, call) => auth.roleGet(r.role, await who(call))),
    RoleList: u('RoleList', async (_r, call) => auth.roleList(await who(call))),
    RoleDelete: u('RoleDelete', async (r: { role: string }, call) => auth.roleDelete(r.role, await who(call))),
    RoleGrantPermission: u('RoleGrantPermission', async (r: { name: string; perm: PermissionMsg | null }, call) =>
      auth.roleGrantPermission(r.name, r.perm ?? { permType: 0, key: EMPTY, range_end: EMPTY }, await who(call)),
    ),
    RoleRevokePermission: u('RoleRevokePermission', async (r: { role: string; key: Buffer; range_end: Buffer }, call) =>
      auth.roleRevokePermission(r.role, r.key, r.range_end, await who(call)),
    ),
  };
}
