
/** Who a request runs as: etcd's AuthInfo (a user name and the auth revision it was checked at). */
export interface AuthInfo {
  username: string;
  revision: number;
}

/** What Authenticate's apply passes to assign (etcd's AuthenticateParamIndex / ...SimpleTokenPrefix). */
export interface AssignParams {
  index: number;
  simpleTokenPrefix: string;
}

/** etcd's TokenProvider (auth/store.go): simple or jwt, chosen by --auth-token. */
export interface TokenProvider {
  /** Resolves a token; undefined for an unknown, expired or forged one. `revision` is the store's now. */
  info(token: string, revision: number): Promise<AuthInfo | undefined>;
  assign(username: string, revision: number, params: AssignParams): string;
  enable(): void;
  disable(): void;
  invalidateUser(username: string): void;
  genTokenPrefix(): string;
}

/** etcd's ErrInvalidAuthOpts: an --auth-token etcd would refuse (etcd exits with this text). */
export class InvalidAuthOptionsError extends Error {
  constructor(
    readonly detail?: string,
    message = 'auth: invalid auth options',
  ) {
    super(message);
  }
}
