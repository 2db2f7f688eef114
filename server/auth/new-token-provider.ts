import type { Logger } from 'pino';
import { JwtTokenProvider, parseJwtOptions } from './jwt';
import { SimpleTokenProvider } from './simple-token';
import { InvalidAuthOptionsError, type TokenProvider } from './token-provider';

/** etcd's decomposeOpts: "type,k=v,k=v"; a part without exactly one "=", or a repeated key, is invalid. */
export function decomposeOpts(spec: string): { type: string; opts: Map<string, string> } {
  const parts = spec.split(',');
  const opts = new Map<string, string>();
  for (const part of parts.slice(1)) {
    const pair = part.split('=');
    if (pair.length !== 2) throw new InvalidAuthOptionsError(`invalid token option ${part}`);
    if (opts.has(pair[0])) throw new InvalidAuthOptionsError(`duplicate token option ${pair[0]}`);
    opts.set(pair[0], pair[1]);
  }
  return { type: parts[0], opts };
}

export interface TokenProviderConfig {
  authToken: string;
  authTokenTtlSeconds: number;
  /** Resolves once the applied index reaches `index` (false on timeout): a simple token names its entry. */
  waitApplied(index: number): Promise<boolean>;
  log: Logger;
}

/** etcd's NewTokenProvider; throws InvalidAuthOptionsError (the member must not start) for a bad --auth-token. */
export function newTokenProvider(c: TokenProviderConfig): TokenProvider {
  const { type, opts } = decomposeOpts(c.authToken);
  switch (type) {
    case 'simple':
      c.log.warn('simple token is not cryptographically signed');
      return new SimpleTokenProvider(c.waitApplied, c.authTokenTtlSeconds * 1000);
    case 'jwt':
      return new JwtTokenProvider(parseJwtOptions(opts, c.log), c.log);
    default:
      c.log.warn({ type }, 'unknown token type');
      throw new InvalidAuthOptionsError(`unknown token type ${type}`);
  }
}
