import bcrypt from 'bcryptjs';
import type { Logger } from 'pino';
import type { InternalRaftRequest, PermissionMsg, ResponseHeader, TxnRequest } from '../../proto/etcd-types';
import { ROOT_USER, type AuthStore } from '../auth/store';
import type { AuthInfo } from '../auth/token-provider';
import { checkTxnAuth } from './apply/auth';
import type { ApplyResult } from './apply/applier';
import { ErrAuthOldRevision, ErrInvalidAuthToken } from './errors';
import type { AuthServer } from './interfaces';

export interface AuthFrontendDeps {
  store: AuthStore;
  propose(req: InternalRaftRequest): Promise<ApplyResult>;
  linearizableReadNotify(): Promise<void>;
  header(revision: number): ResponseHeader;
  kvRevision(): number;
  log: Logger;
}

type Resp = Record<string, unknown> & { header: ResponseHeader };

/**
 * The server side of auth (etcd's v3_server.go Auth* methods, raftRequest and doSerialize): it
 * resolves tokens, hashes passwords before proposing (so the log never holds one in clear, and
 * apply stays cheap), proposes every auth change with the caller's user and auth revision in the
 * header, and checks reads served from local state. Writes are checked in apply (apply/auth.ts).
 */
export class AuthFrontend implements AuthServer {
  constructor(private readonly d: AuthFrontendDeps) {}

  get store(): AuthStore {
    return this.d.store;
  }

  /** etcd's AuthInfoFromCtx for a token: unknown, expired or forged → "invalid auth token". */
  async authInfoFromToken(token: string): Promise<AuthInfo> {
    const ai = await this.d.store.tokens.info(token, this.d.store.revision);
    if (!ai) {
      this.d.log.warn('invalid auth token');
      throw new ErrInvalidAuthToken();
    }
    return ai;
  }

  /** etcd's AuthInfoFromTLS: a verified client certificate's CN is the user, at the current revision. */
  authInfoFromCommonName(cn: string): AuthInfo {
    return { username: cn, revision: this.d.store.revision };
  }

  /** etcd's WithRoot: what the member itself does (expired-lease revokes) runs as root. */
  rootAuthInfo(): AuthInfo {
    return { username: ROOT_USER, revision: this.d.store.revision };
  }

  isAdminPermitted(ai: AuthInfo | undefined): void {
    this.d.store.isAdminPermitted(ai);
  }

  isRangePermitted(ai: AuthInfo | undefined, key: Buffer, rangeEnd: Buffer): void {
    this.d.store.isRangePermitted(ai ?? NO_USER, key, rangeEnd);
  }

  /** etcd's processInternalRaftRequestOnce: the caller's identity travels in the entry's header. */
  raftRequest(req: InternalRaftRequest, ai: AuthInfo | undefined): Promise<ApplyResult> {
    if (ai) req.header = { ...req.header, username: ai.username, auth_revision: String(ai.revision) };
    return this.d.propose(req);
  }

  /**
   * etcd's doSerialize: check, read, then refuse the answer if the auth store changed meanwhile
   * (a permission revoked while the read ran must not leak what it read).
   */
  async serialize<T>(ai: AuthInfo | undefined, check: (ai: AuthInfo) => void, get: () => Promise<T>): Promise<T> {
    const who = ai ?? NO_USER;
    check(who);
    const res = await get();
    if (who.revision !== 0 && who.revision !== this.d.store.revision) throw new ErrAuthOldRevision();
    return res;
  }

  checkTxn(ai: AuthInfo, r: TxnRequest): void {
    checkTxnAuth(this.d.store, ai, r);
  }

  // ---------------------------------------------------------------- the Auth RPCs

  async authEnable(ai: AuthInfo | undefined): Promise<Resp> {
    return this.request({ auth_enable: {} }, ai);
  }

  async authDisable(ai: AuthInfo | undefined): Promise<Resp> {
    return this.request({ auth_disable: {} }, ai);
  }

  async authStatus(): Promise<Resp> {
    await this.d.linearizableReadNotify();
    return { header: this.d.header(this.d.kvRevision()), enabled: this.d.store.isEnabled, authRevision: this.d.store.revision };
  }

  /**
   * etcd's Authenticate: check the password against local state after ReadIndex, then propose,
   * so every member assigns the token; if the auth store changed between the check and the
   * apply (the password may have changed), check again.
   */
  async authenticate(name: string, password: string): Promise<Resp> {
    await this.d.linearizableReadNotify();
    for (;;) {
      let checked: number;
      try {
        checked = await this.d.store.checkPassword(name, password);
      } catch (e) {
        this.d.log.warn({ user: name, err: (e as Error).message }, 'invalid authentication was requested');
        throw e;
      }
      const simpleToken = this.d.store.tokens.genTokenPrefix();
      const resp = await this.request({ authenticate: { name, simple_token: simpleToken } }, undefined);
      if (checked === this.d.store.revision) return resp;
      this.d.log.info('revision when password checked became stale; retrying');
    }
  }

  async userAdd(r: { name: string; password: string; options?: { no_password: boolean } | null }, ai: AuthInfo | undefined): Promise<Resp> {
    const noPassword = r.options?.no_password ?? false;
    // etcd 3.5 hashes in the server and proposes only the hash (base64), never the password.
    const hashedPassword = noPassword ? '' : await this.hash(r.password);
    return this.request({ auth_user_add: { name: r.name, password: '', options: r.options ?? { no_password: false }, hashedPassword } }, ai);
  }

  async userChangePassword(name: string, password: string, ai: AuthInfo | undefined): Promise<Resp> {
    return this.request({ auth_user_change_password: { name, password: '', hashedPassword: await this.hash(password) } }, ai);
  }

  userDelete = (name: string, ai: AuthInfo | undefined): Promise<Resp> => this.request({ auth_user_delete: { name } }, ai);
  userGet = (name: string, ai: AuthInfo | undefined): Promise<Resp> => this.request({ auth_user_get: { name } }, ai);
  userList = (ai: AuthInfo | undefined): Promise<Resp> => this.request({ auth_user_list: {} }, ai);
  userGrantRole = (user: string, role: string, ai: AuthInfo | undefined): Promise<Resp> => this.request({ auth_user_grant_role: { user, role } }, ai);
  userRevokeRole = (name: string, role: string, ai: AuthInfo | undefined): Promise<Resp> => this.request({ auth_user_revoke_role: { name, role } }, ai);
  roleAdd = (name: string, ai: AuthInfo | undefined): Promise<Resp> => this.request({ auth_role_add: { name } }, ai);
  roleGet = (role: string, ai: AuthInfo | undefined): Promise<Resp> => this.request({ auth_role_get: { role } }, ai);
  roleList = (ai: AuthInfo | undefined): Promise<Resp> => this.request({ auth_role_list: {} }, ai);
  roleDelete = (role: string, ai: AuthInfo | undefined): Promise<Resp> => this.request({ auth_role_delete: { role } }, ai);
  roleGrantPermission = (name: string, perm: PermissionMsg, ai: AuthInfo | undefined): Promise<Resp> =>
    this.request({ auth_role_grant_permission: { name, perm } }, ai);
  roleRevokePermission = (role: string, key: Buffer, rangeEnd: Buffer, ai: AuthInfo | undefined): Promise<Resp> =>
    this.request({ auth_role_revoke_permission: { role, key, range_end: rangeEnd } }, ai);

  private async request(req: InternalRaftRequest, ai: AuthInfo | undefined): Promise<Resp> {
    return (await this.raftRequest(req, ai)).response as Resp;
  }

  private async hash(password: string): Promise<string> {
    return Buffer.from(await bcrypt.hash(password, this.d.store.bcryptCost), 'latin1').toString('base64');
  }
}

/** etcd's AuthInfo{}: no token and no certificate; refused with "user name is empty" while auth is on. */
const NO_USER: AuthInfo = { username: '', revision: 0 };
