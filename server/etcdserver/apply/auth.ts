import type { Lessor } from '../../../mvcc/lessor';
import type { InternalRaftRequest, RequestOp, ResponseHeader, TxnRequest } from '../../../proto/etcd-types';
import type { AuthStore } from '../../auth/store';
import type { AuthInfo } from '../../auth/token-provider';
import { toEtcdError } from '../error-translation';
import type { Applier, ApplierV3, ApplyOutcome } from './applier';

const EMPTY = Buffer.alloc(0);

/** The response body of an auth change that answers with only the header (the change already ran). */
function done(_applied: void): Record<string, unknown> {
  return {};
}

/** etcd's needAdminPermission: auth changes and listings need the root role (Get has its own rule). */
function needAdminPermission(r: InternalRaftRequest): boolean {
  return !!(
    r.auth_enable ||
    r.auth_disable ||
    r.auth_user_add ||
    r.auth_user_delete ||
    r.auth_user_change_password ||
    r.auth_user_grant_role ||
    r.auth_user_revoke_role ||
    r.auth_role_add ||
    r.auth_role_grant_permission ||
    r.auth_role_revoke_permission ||
    r.auth_role_delete ||
    r.auth_user_list ||
    r.auth_role_list
  );
}

/** etcd's checkTxnAuth: every compare is a read, and every op of both branches (nested txns too). */
export function checkTxnAuth(as: AuthStore, ai: AuthInfo, rt: TxnRequest): void {
  for (const c of rt.compare) as.isRangePermitted(ai, c.key, c.range_end);
  for (const op of [...rt.success, ...rt.failure]) checkOp(as, ai, op);
}

function checkOp(as: AuthStore, ai: AuthInfo, op: RequestOp): void {
  if (op.request_range) as.isRangePermitted(ai, op.request_range.key, op.request_range.range_end);
  if (op.request_put) as.isPutPermitted(ai, op.request_put.key);
  if (op.request_delete_range) {
    if (op.request_delete_range.prev_kv) as.isRangePermitted(ai, op.request_delete_range.key, op.request_delete_range.range_end);
    as.isDeleteRangePermitted(ai, op.request_delete_range.key, op.request_delete_range.range_end);
  }
  // etcd 3.4 does not look into a nested txn; checking it too keeps a txn from writing what its user may not.
  if (op.request_txn) checkTxnAuth(as, ai, op.request_txn);
}

/**
 * etcd's authApplierV3: the outermost apply decorator. It checks each committed request against
 * the auth store as of that log position, with the user and auth revision the proposer put in the
 * header, so every member reaches the same verdict; a refused request still consumes its index.
 * Auth requests themselves are applied here, to the auth store (etcd's applierV3backend Auth*).
 */
export class AuthApplier implements ApplierV3 {
  constructor(
    private readonly inner: ApplierV3,
    private readonly base: Applier,
    private readonly as: AuthStore,
    private readonly lessor: Lessor,
    private readonly currentRevision: () => number,
  ) {}

  apply(index: number, req: InternalRaftRequest, header: (rev: number) => ResponseHeader): ApplyOutcome | Promise<ApplyOutcome> {
    const ai: AuthInfo = { username: req.header?.username ?? '', revision: Number(req.header?.auth_revision ?? 0) };
    try {
      if (needAdminPermission(req)) this.as.isAdminPermitted(ai);
      const auth = this.applyAuth(index, req, ai);
      if (auth !== undefined) {
        this.base.applyNoop(index, undefined);
        return { ok: { response: { header: header(this.currentRevision()), ...auth } } };
      }
      this.checkPermission(req, ai);
    } catch (e) {
      this.base.applyNoop(index, undefined);
      return { err: toEtcdError(e) };
    }
    return this.inner.apply(index, req, header);
  }

  /** Put, DeleteRange, Txn and LeaseRevoke (etcd's Put/DeleteRange/Txn/LeaseRevoke overrides). */
  private checkPermission(req: InternalRaftRequest, ai: AuthInfo): void {
    const as = this.as;
    if (req.put) {
      as.isPutPermitted(ai, req.put.key);
      // A lease attached to keys this user may not write cannot be attached to more keys by it.
      this.checkLeasePuts(BigInt(req.put.lease), ai);
      if (req.put.prev_kv) as.isRangePermitted(ai, req.put.key, EMPTY);
    } else if (req.delete_range) {
      as.isDeleteRangePermitted(ai, req.delete_range.key, req.delete_range.range_end);
      if (req.delete_range.prev_kv) as.isRangePermitted(ai, req.delete_range.key, req.delete_range.range_end);
    } else if (req.txn) {
      checkTxnAuth(as, ai, req.txn);
    } else if (req.lease_revoke) {
      // Revoking deletes the attached keys: write permission on each of them.
      this.checkLeasePuts(BigInt(req.lease_revoke.ID), ai);
    }
  }

  private checkLeasePuts(id: bigint, ai: AuthInfo): void {
    if (id === 0n) return;
    for (const key of this.lessor.timeToLive(id)?.keys ?? []) this.as.isPutPermitted(ai, Buffer.from(key, 'latin1'));
  }

  /** Applies an auth request to the store; undefined when `req` is not one. Returns the response body. */
  private applyAuth(index: number, req: InternalRaftRequest, ai: AuthInfo): Record<string, unknown> | undefined {
    const as = this.as;
    if (req.authenticate) return { token: as.authenticate(req.authenticate.name, { index, simpleTokenPrefix: req.authenticate.simple_token }) };
    if (req.auth_enable) return done(as.authEnable());
    if (req.auth_disable) return done(as.authDisable());
    if (req.auth_user_add) return done(as.userAdd(req.auth_user_add));
    if (req.auth_user_delete) return done(as.userDelete(req.auth_user_delete.name));
    if (req.auth_user_change_password) return done(as.userChangePassword(req.auth_user_change_password.name, req.auth_user_change_password.hashedPassword));
    if (req.auth_user_grant_role) return done(as.userGrantRole(req.auth_user_grant_role.user, req.auth_user_grant_role.role));
    if (req.auth_user_revoke_role) return done(as.userRevokeRole(req.auth_user_revoke_role.name, req.auth_user_revoke_role.role));
    if (req.auth_user_list) return { users: as.userList() };
    if (req.auth_role_list) return { roles: as.roleList() };
    if (req.auth_role_add) return done(as.roleAdd(req.auth_role_add.name));
    if (req.auth_role_delete) return done(as.roleDelete(req.auth_role_delete.role));
    if (req.auth_role_grant_permission) {
      const r = req.auth_role_grant_permission;
      return done(as.roleGrantPermission(r.name, r.perm ?? { permType: 0, key: EMPTY, range_end: EMPTY }));
    }
    if (req.auth_role_revoke_permission) {
      const r = req.auth_role_revoke_permission;
      return done(as.roleRevokePermission(r.role, r.key, r.range_end));
    }
    if (req.auth_user_get) {
      // A user may read itself without the root role (etcd's authApplierV3.UserGet).
      if (req.auth_user_get.name !== ai.username) as.isAdminPermitted(ai);
      return { roles: as.userGet(req.auth_user_get.name) };
    }
    if (req.auth_role_get) {
      // ... and a role it has (etcd's authApplierV3.RoleGet).
      if (!as.hasRole(ai.username, req.auth_role_get.role)) as.isAdminPermitted(ai);
      return { perm: as.roleGet(req.auth_role_get.role) };
    }
    return undefined;
  }
}
