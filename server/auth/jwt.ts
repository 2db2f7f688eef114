import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import jwt, { type Algorithm } from 'jsonwebtoken';
import type { Logger } from 'pino';
import { parseDurationMs } from '../embed/config';
import { InvalidAuthOptionsError, type AuthInfo, type TokenProvider } from './token-provider';

/** etcd's jwt DefaultTTL (auth/options.go). */
export const JWT_DEFAULT_TTL_MS = 5 * 60_000;
const KNOWN_OPTIONS = new Set(['sign-method', 'pub-key', 'priv-key', 'ttl']);
/** The signing methods of jwt-go that etcd accepts, by family. */
const METHODS: Record<string, 'rsa' | 'ecdsa' | 'hmac'> = {
  RS256: 'rsa', RS384: 'rsa', RS512: 'rsa', PS256: 'rsa', PS384: 'rsa', PS512: 'rsa',
  ES256: 'ecdsa', ES384: 'ecdsa', ES512: 'ecdsa',
  HS256: 'hmac', HS384: 'hmac', HS512: 'hmac',
};

export interface JwtOptions {
  signMethod: Algorithm;
  ttlMs: number;
  /** The signing key; undefined = verify-only (a public key alone, as etcd allows). */
  signKey: KeyObject | Buffer | undefined;
  verifyKey: KeyObject | Buffer;
}

/** etcd's auth errors from key loading, returned as they are (etcd exits with their text). */
class JwtKeyError extends InvalidAuthOptionsError {
  constructor(message: string) {
    super(undefined, message);
  }
}

/**
 * etcd's jwtOptions.ParseWithDefaults + Key(): ttl (Go duration, default 5m), pub-key/priv-key
 * files, sign-method required. Anything etcd rejects at start is rejected here, so the member
 * refuses to start rather than serve with tokens it cannot check.
 */
export function parseJwtOptions(opts: Map<string, string>, log: Logger): JwtOptions {
  let ttlMs = JWT_DEFAULT_TTL_MS;
  let pub: Buffer | undefined;
  let priv: Buffer | undefined;
  try {
    if (opts.get('ttl')) ttlMs = parseDurationMs(opts.get('ttl') ?? '', 'ttl');
    if (opts.get('pub-key')) pub = readFileSync(opts.get('pub-key') ?? '');
    if (opts.get('priv-key')) priv = readFileSync(opts.get('priv-key') ?? '');
  } catch (e) {
    log.error({ err: (e as Error).message }, 'problem loading JWT options');
    throw new InvalidAuthOptionsError((e as Error).message);
  }
  const method = opts.get('sign-method') ?? '';
  const family = METHODS[method];
  if (!family) {
    log.error({ err: 'auth: invalid auth signature method' }, 'problem loading JWT options');
    throw new InvalidAuthOptionsError('auth: invalid auth signature method');
  }
  const unknown = [...opts.keys()].filter((k) => !KNOWN_OPTIONS.has(k));
  if (unknown.length > 0) log.warn({ keys: unknown }, 'unknown JWT options');
  const signMethod = method as Algorithm;
  if (family === 'hmac') {
    if (!priv || priv.length === 0) throw new JwtKeyError('auth: missing key data');
    return { signMethod, ttlMs, signKey: priv, verifyKey: priv };
  }
  let privKey: KeyObject | undefined;
  let pubKey: KeyObject | undefined;
  try {
    privKey = priv ? createPrivateKey(priv) : undefined;
    pubKey = pub ? createPublicKey(pub) : undefined;
  } catch (e) {
    // jwt-go's PEM parse errors (etcd exits with them).
    throw new JwtKeyError(`auth: key is not a valid PEM ${family.toUpperCase()} key: ${(e as Error).message}`);
  }
  const want = family === 'rsa' ? 'rsa' : 'ec';
  for (const k of [privKey, pubKey]) if (k && k.asymmetricKeyType !== want) throw new JwtKeyError(`auth: key is not a valid ${family.toUpperCase()} key`);
  if (!privKey) {
    if (!pubKey) throw new JwtKeyError('auth: missing key data');
    return { signMethod, ttlMs, signKey: undefined, verifyKey: pubKey };
  }
  const derived = createPublicKey(privKey);
  if (pubKey && !derived.equals(pubKey)) throw new JwtKeyError("auth: public and private keys don't match");
  return { signMethod, ttlMs, signKey: privKey, verifyKey: derived };
}

/**
 * etcd's tokenJWT: a signed token carrying the user name, the auth revision it was issued at and
 * an expiry. Any member with the key verifies it without shared state; after an auth change its
 * revision is old and requests fail with "revision of auth store is old" until the client
 * authenticates again (clients do that by themselves).
 */
export class JwtTokenProvider implements TokenProvider {
  constructor(
    private readonly o: JwtOptions,
    private readonly log: Logger,
  ) {}

  enable(): void {}
  disable(): void {}
  invalidateUser(): void {}
  genTokenPrefix(): string {
    return '';
  }

  async info(token: string): Promise<AuthInfo | undefined> {
    try {
      const claims = jwt.verify(token, this.o.verifyKey, { algorithms: [this.o.signMethod] });
      if (typeof claims !== 'object' || typeof claims.username !== 'string' || typeof claims.revision !== 'number') return undefined;
      return { username: claims.username, revision: claims.revision };
    } catch (e) {
      this.log.warn({ err: (e as Error).message }, 'failed to parse a JWT token');
      return undefined;
    }
  }

  assign(username: string, revision: number): string {
    if (!this.o.signKey) throw new Error('auth: token signing attempted with verify-only key');
    const exp = Math.floor((Date.now() + this.o.ttlMs) / 1000);
    return jwt.sign({ username, revision, exp }, this.o.signKey, { algorithm: this.o.signMethod, noTimestamp: true });
  }
}
