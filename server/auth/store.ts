import bcrypt from 'bcryptjs';
import type { Logger } from 'pino';
import type { Backend } from '../../mvcc/backend';
import { messageCodec } from '../../proto';
import type { AuthUserAddRequest, PermissionMsg } from '../../proto/etcd-types';
import {
  ErrAuthFailed,
  ErrAuthNotEnabled,
  ErrAuthOldRevision,
  ErrInvalidAuthMgmt,
  ErrNoPasswordUser,
  ErrPermissionDenied,
  ErrPermissionNotGranted,
  ErrRoleAlreadyExist,
  ErrRoleEmpty,
  ErrRoleNotFound,
  ErrRoleNotGranted,
  ErrRootRoleNotExist,
  ErrRootUserNotExist,
  ErrUserAlreadyExist,
  ErrUserEmpty,
  ErrUserNotFound,
} from '../etcdserver/errors';
import { isRangeOpPermitted, mergePerms, type PermOp, type UnifiedRangePermissions } from './range-perm-cache';
import type { AssignParams, AuthInfo, TokenProvider } from './token-provider';

/** etcd's bucket and key names (auth/store.go), so the backend layout is etcd's. */
export const AUTH_BUCKET = 'auth';
export const AUTH_USERS_BUCKET = 'authUsers';
export const AUTH_ROLES_BUCKET = 'authRoles';
const ENABLE_FLAG_KEY = 'authEnabled';
const REVISION_KEY = 'authRevision';
export const ROOT_USER = 'root';
export const ROOT_ROLE = 'root';
/** bcrypt's MinCost/MaxCost/DefaultCost (golang.org/x/crypto/bcrypt). */
export const BCRYPT_MIN_COST = 4;
export const BCRYPT_MAX_COST = 31;
export const BCRYPT_DEFAULT_COST = 10;

/** authpb.User / authpb.Role as stored (protobuf, as etcd stores them). */
interface UserMsg {
  name: Buffer;
  password: Buffer;
  roles: string[];
  options: { no_password: boolean } | null;
}
interface RoleMsg {
  name: Buffer;
  keyPermission: PermissionMsg[];
}

const userCodec = messageCodec<UserMsg>('authpb.User');
const roleCodec = messageCodec<RoleMsg>('authpb.Role');

function byBytes(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/**
 * etcd's authStore: users, roles, the enabled flag and the auth revision, kept in the backend's
 * auth buckets and mirrored in memory (with each user's merged range permissions). Every change
 * arrives through the log (apply/auth.ts), so members agree; each one bumps the revision, which
 * tokens carry so a request checked against an older revision is refused or re-evaluated.
 */
export class AuthStore {
  private users = new Map<string, UserMsg>();
  private roles = new Map<string, RoleMsg>();
  private permCache = new Map<string, UnifiedRangePermissions>();
  private enabled = false;
  private rev = 0;

  constructor(
    private readonly backend: Backend,
    readonly tokens: TokenProvider,
    readonly bcryptCost: number,
    private readonly log: Logger,
    /** Told every new revision (etcd_debugging_auth_revision). */
    private readonly onRevision: (revision: number) => void = () => undefined,
  ) {}

  /** Reloads from the backend (etcd's NewAuthStore / Recover): at start and after a snapshot install. */
  async restore(): Promise<void> {
    this.users = new Map();
    this.roles = new Map();
    for await (const [k, v] of this.backend.bucket(AUTH_USERS_BUCKET).iterate()) this.users.set(k.toString(), userCodec.decode(v));
    for await (const [k, v] of this.backend.bucket(AUTH_ROLES_BUCKET).iterate()) this.roles.set(k.toString(), roleCodec.decode(v));
    const meta = this.backend.bucket(AUTH_BUCKET);
    const flag = await meta.get(ENABLE_FLAG_KEY);
    const revBytes = await meta.get(REVISION_KEY);
    this.rev = revBytes && revBytes.length === 8 ? Number(revBytes.readBigUInt64BE()) : 0;
    // A new store starts at revision 1 (etcd commits it in NewAuthStore), so 0 means "no user given".
    if (this.rev === 0) this.commitRevision();
    this.onRevision(this.rev);
    this.enabled = flag !== undefined && flag.length === 1 && flag[0] === 1;
    if (this.enabled) this.tokens.enable();
    else this.tokens.disable();
    this.refreshRangePermCache();
  }

  get isEnabled(): boolean {
    return this.enabled;
  }

  get revision(): number {
    return this.rev;
  }

  // ---------------------------------------------------------------- applied through the log

  authEnable(): void {
    if (this.enabled) {
      this.log.info('authentication is already enabled; ignored auth enable request');
      return;
    }
    const root = this.users.get(ROOT_USER);
    if (!root) throw new ErrRootUserNotExist();
    if (!hasRootRole(root)) throw new ErrRootRoleNotExist();
    this.backend.bucket(AUTH_BUCKET).put(ENABLE_FLAG_KEY, Buffer.from([1]));
    this.enabled = true;
    this.tokens.enable();
    this.refreshRangePermCache();
    this.log.info('enabled authentication');
  }

  authDisable(): void {
    if (!this.enabled) return;
    this.backend.bucket(AUTH_BUCKET).put(ENABLE_FLAG_KEY, Buffer.from([0]));
    this.commitRevision();
    this.enabled = false;
    this.tokens.disable();
    this.log.info('disabled authentication');
  }

  /** The password was checked before proposing (checkPassword); here the token is assigned. */
  authenticate(name: string, params: AssignParams): string {
    if (!this.enabled) throw new ErrAuthNotEnabled();
    const user = this.users.get(name);
    if (!user || user.options?.no_password) throw new ErrAuthFailed();
    return this.tokens.assign(name, this.rev, params);
  }

  userAdd(r: AuthUserAddRequest): void {
    if (r.name.length === 0) throw new ErrUserEmpty();
    if (this.users.has(r.name)) throw new ErrUserAlreadyExist();
    const noPassword = r.options?.no_password ?? false;
    // The server hashed the password before proposing (etcd 3.5's hashedPassword, base64).
    const password = noPassword ? Buffer.alloc(0) : Buffer.from(r.hashedPassword, 'base64');
    this.putUser({ name: Buffer.from(r.name), password, roles: [], options: { no_password: noPassword } });
    this.changed();
    this.log.info({ 'user-name': r.name }, 'added a user');
  }

  userDelete(name: string): void {
    if (this.enabled && name === ROOT_USER) throw new ErrInvalidAuthMgmt();
    if (!this.users.has(name)) throw new ErrUserNotFound();
    this.users.delete(name);
    this.backend.bucket(AUTH_USERS_BUCKET).del(name);
    this.changed();
    this.tokens.invalidateUser(name);
    this.log.info({ 'user-name': name }, 'deleted a user');
  }

  userChangePassword(name: string, hashedPassword: string): void {
    const user = this.users.get(name);
    if (!user) throw new ErrUserNotFound();
    this.putUser({ ...user, password: Buffer.from(hashedPassword, 'base64') });
    this.changed();
    this.tokens.invalidateUser(name);
    this.log.info({ 'user-name': name }, 'changed a password of a user');
  }

  userGrantRole(name: string, role: string): void {
    const user = this.users.get(name);
    if (!user) throw new ErrUserNotFound();
    // The root role may be granted before it exists (etcd checks every other role).
    if (role !== ROOT_ROLE && !this.roles.has(role)) throw new ErrRoleNotFound();
    if (user.roles.includes(role)) {
      this.log.warn({ 'user-name': name, 'role-name': role }, 'ignored grant role request to a user');
      return;
    }
    this.putUser({ ...user, roles: [...user.roles, role].sort(byBytes) });
    this.changed();
  }

  userGet(name: string): string[] {
    const user = this.users.get(name);
    if (!user) throw new ErrUserNotFound();
    return [...user.roles];
  }

  userList(): string[] {
    return [...this.users.keys()].sort(byBytes);
  }

  userRevokeRole(name: string, role: string): void {
    if (this.enabled && name === ROOT_USER && role === ROOT_ROLE) throw new ErrInvalidAuthMgmt();
    const user = this.users.get(name);
    if (!user) throw new ErrUserNotFound();
    if (!user.roles.includes(role)) throw new ErrRoleNotGranted();
    this.putUser({ ...user, roles: user.roles.filter((r) => r !== role) });
    this.changed();
  }

  roleAdd(name: string): void {
    if (name.length === 0) throw new ErrRoleEmpty();
    if (this.roles.has(name)) throw new ErrRoleAlreadyExist();
    this.putRole({ name: Buffer.from(name), keyPermission: [] });
    // etcd commits the revision but leaves the cache: a new role has no permissions yet.
    this.commitRevision();
  }

  roleGet(name: string): PermissionMsg[] {
    const role = this.roles.get(name);
    if (!role) throw new ErrRoleNotFound();
    return role.keyPermission.map((p) => ({ ...p }));
  }

  roleList(): string[] {
    return [...this.roles.keys()].sort(byBytes);
  }

  roleDelete(name: string): void {
    if (this.enabled && name === ROOT_ROLE) throw new ErrInvalidAuthMgmt();
    if (!this.roles.has(name)) throw new ErrRoleNotFound();
    this.roles.delete(name);
    this.backend.bucket(AUTH_ROLES_BUCKET).del(name);
    // Users lose the deleted role (etcd rewrites each user that had it).
    for (const user of this.users.values()) {
      if (user.roles.includes(name)) this.putUser({ ...user, roles: user.roles.filter((r) => r !== name) });
    }
    this.changed();
  }

  roleGrantPermission(name: string, perm: PermissionMsg): void {
    const role = this.roles.get(name);
    if (!role) throw new ErrRoleNotFound();
    const perms = role.keyPermission.map((p) => ({ ...p }));
    const same = perms.find((p) => p.key.equals(perm.key) && p.range_end.equals(perm.range_end));
    if (same) same.permType = perm.permType;
    else perms.push({ permType: perm.permType, key: perm.key, range_end: perm.range_end });
    // Kept sorted by key, as etcd's permSlice (a stable sort keeps equal keys in grant order).
    perms.sort((a, b) => Buffer.compare(a.key, b.key));
    this.putRole({ ...role, keyPermission: perms });
    this.changed();
  }

  roleRevokePermission(name: string, key: Buffer, rangeEnd: Buffer): void {
    const role = this.roles.get(name);
    if (!role) throw new ErrRoleNotFound();
    const kept = role.keyPermission.filter((p) => !p.key.equals(key) || !p.range_end.equals(rangeEnd));
    if (kept.length === role.keyPermission.length) throw new ErrPermissionNotGranted();
    this.putRole({ ...role, keyPermission: kept });
    this.changed();
  }

  // ---------------------------------------------------------------- checks

  /** etcd's CheckPassword: the auth revision the password was checked at. */
  async checkPassword(name: string, password: string): Promise<number> {
    if (!this.enabled) throw new ErrAuthNotEnabled();
    const user = this.users.get(name);
    if (!user) throw new ErrAuthFailed();
    if (user.options?.no_password) throw new ErrNoPasswordUser();
    const rev = this.rev;
    if (!(await bcrypt.compare(password, user.password.toString('latin1')))) {
      this.log.info({ 'user-name': name }, 'invalid password');
      throw new ErrAuthFailed();
    }
    return rev;
  }

  isPutPermitted(ai: AuthInfo, key: Buffer): void {
    this.isOpPermitted(ai, key, Buffer.alloc(0), 'write');
  }

  isRangePermitted(ai: AuthInfo, key: Buffer, rangeEnd: Buffer): void {
    this.isOpPermitted(ai, key, rangeEnd, 'read');
  }

  isDeleteRangePermitted(ai: AuthInfo, key: Buffer, rangeEnd: Buffer): void {
    this.isOpPermitted(ai, key, rangeEnd, 'write');
  }

  /** etcd's IsAdminPermitted: the user must hold the root role. */
  isAdminPermitted(ai: AuthInfo | undefined): void {
    if (!this.enabled) return;
    if (!ai || ai.username === '') throw new ErrUserEmpty();
    const user = this.users.get(ai.username);
    if (!user) throw new ErrUserNotFound();
    if (!hasRootRole(user)) throw new ErrPermissionDenied();
  }

  hasRole(username: string, role: string): boolean {
    return this.users.get(username)?.roles.includes(role) ?? false;
  }

  /** etcd's isOpPermitted: throws the reason a request may not touch [key, rangeEnd). */
  private isOpPermitted(ai: AuthInfo, key: Buffer, rangeEnd: Buffer, op: PermOp): void {
    if (!this.enabled) return;
    // Revision 0 comes only with no user at all (no token, no client certificate).
    if (ai.revision === 0) throw new ErrUserEmpty();
    if (ai.revision < this.rev) {
      this.log.warn({ 'current node auth revision': this.rev, 'request auth revision': ai.revision }, 'request auth revision is less than current node auth revision');
      throw new ErrAuthOldRevision();
    }
    const user = this.users.get(ai.username);
    if (!user) {
      this.log.error({ 'user-name': ai.username }, 'cannot find a user for permission check');
      throw new ErrPermissionDenied();
    }
    if (hasRootRole(user)) return;
    const perms = this.permCache.get(ai.username);
    if (perms && isRangeOpPermitted(perms, key, rangeEnd, op)) return;
    throw new ErrPermissionDenied();
  }

  // ---------------------------------------------------------------- persistence

  private putUser(u: UserMsg): void {
    const name = u.name.toString();
    this.users.set(name, u);
    this.backend.bucket(AUTH_USERS_BUCKET).put(name, Buffer.from(userCodec.encode(u)));
  }

  private putRole(r: RoleMsg): void {
    const name = r.name.toString();
    this.roles.set(name, r);
    this.backend.bucket(AUTH_ROLES_BUCKET).put(name, Buffer.from(roleCodec.encode(r)));
  }

  /** Every user or permission change: a new revision and a rebuilt cache (etcd commitRevision + refreshRangePermCache). */
  private changed(): void {
    this.commitRevision();
    this.refreshRangePermCache();
  }

  private commitRevision(): void {
    this.rev++;
    const b = Buffer.alloc(8);
    b.writeBigUInt64BE(BigInt(this.rev));
    this.backend.bucket(AUTH_BUCKET).put(REVISION_KEY, b);
    this.onRevision(this.rev);
  }

  private refreshRangePermCache(): void {
    this.permCache = new Map();
    for (const [name, user] of this.users) {
      const perms: PermissionMsg[] = [];
      for (const r of user.roles) perms.push(...(this.roles.get(r)?.keyPermission ?? []));
      this.permCache.set(name, mergePerms(perms));
    }
  }
}

function hasRootRole(u: UserMsg): boolean {
  return u.roles.includes(ROOT_ROLE);
}

