import { randomInt } from 'node:crypto';
import type { AssignParams, AuthInfo, TokenProvider } from './token-provider';

/** etcd's simple token alphabet and prefix length (auth/simple_token.go). */
const LETTERS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ';
export const SIMPLE_TOKEN_LENGTH = 16;
/** etcd's simpleTokenTTLDefault (a TTL of 0 means this) and its sweep resolution. */
export const SIMPLE_TOKEN_TTL_DEFAULT_MS = 300_000;
export const SIMPLE_TOKEN_TTL_RESOLUTION_MS = 1000;

/**
 * etcd's tokenSimple: "<16 random letters>.<raft index>", assigned on every member when the
 * Authenticate entry is applied (the prefix travels in the entry), so a token works at any member.
 * Not signed: it is a key into this member's table, which forgets a token after --auth-token-ttl
 * seconds without use, when its user is deleted or changes password, and when auth is disabled.
 */
export class SimpleTokenProvider implements TokenProvider {
  /** token → user and expiry; undefined while auth is disabled (etcd's simpleTokenKeeper == nil). */
  private tokens: Map<string, { username: string; expiresAtMs: number }> | undefined;
  private sweeper: NodeJS.Timeout | undefined;
  private readonly ttlMs: number;

  constructor(
    private readonly waitApplied: (index: number) => Promise<boolean>,
    ttlMs: number,
  ) {
    this.ttlMs = ttlMs > 0 ? ttlMs : SIMPLE_TOKEN_TTL_DEFAULT_MS;
  }

  genTokenPrefix(): string {
    let s = '';
    for (let i = 0; i < SIMPLE_TOKEN_LENGTH; i++) s += LETTERS[randomInt(LETTERS.length)];
    return s;
  }

  assign(username: string, _revision: number, p: AssignParams): string {
    const token = `${p.simpleTokenPrefix}.${p.index}`;
    this.tokens?.set(token, { username, expiresAtMs: Date.now() + this.ttlMs });
    return token;
  }

  async info(token: string, revision: number): Promise<AuthInfo | undefined> {
    const parts = token.split('.');
    if (parts.length !== 2 || !/^\d+$/.test(parts[1])) return undefined;
    // A token names the entry that assigned it: wait until this member has applied it (etcd's indexWaiter).
    if (!(await this.waitApplied(Number(parts[1])))) return undefined;
    const t = this.tokens?.get(token);
    if (!t || t.expiresAtMs < Date.now()) return undefined;
    t.expiresAtMs = Date.now() + this.ttlMs; // refreshed on every use, as etcd's resetSimpleToken
    return { username: t.username, revision };
  }

  invalidateUser(username: string): void {
    for (const [token, t] of this.tokens ?? []) if (t.username === username) this.tokens?.delete(token);
  }

  enable(): void {
    if (this.tokens) return;
    this.tokens = new Map();
    this.sweeper = setInterval(() => this.sweep(), SIMPLE_TOKEN_TTL_RESOLUTION_MS);
    this.sweeper.unref();
  }

  disable(): void {
    this.tokens = undefined;
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = undefined;
  }

  private sweep(): void {
    const now = Date.now();
    for (const [token, t] of this.tokens ?? []) if (t.expiresAtMs < now) this.tokens?.delete(token);
  }
}
