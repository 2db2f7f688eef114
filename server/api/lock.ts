/**
 * v3lockpb.Lock (etcd v3lock/lock.go): the clientv3/concurrency Mutex recipe, run in the server on
 * top of its own KV, Lease and Watch APIs, exactly as etcd runs it over an in-process client. The
 * recipe's helpers (an in-process client, waitDeletes) are shared with the Election service.
 *
 * Mutex.Lock: myKey = name + "/" + hex(lease). One txn puts myKey (if absent) and reads the oldest
 * key under the prefix; the lock is held when that key is ours. Otherwise wait until every key
 * created before ours is deleted, then check that ours still exists (the lease may have expired).
 */
import type * as grpc from '@grpc/grpc-js';
import { status } from '@grpc/grpc-js';
import type { WatchableStore } from '../../mvcc/watchable-store';
import type { Event } from '../../mvcc/kv';
import {
  CompareResult,
  CompareTarget,
  SortOrder,
  SortTarget,
  type Compare,
  type KeyValueMsg,
  type RangeRequest,
  type RequestOp,
  type ResponseHeader,
  type TxnResponse,
} from '../../proto/etcd-types';
import { ErrCompacted, ErrRecipeCanceled, ErrSessionExpired, EtcdError } from '../etcdserver/errors';
import type { AuthInfo, KvServer, LeaseServer } from '../etcdserver/interfaces';
import type { AuthResolver } from '../v3rpc/auth-interceptor';
import { unary } from '../v3rpc/interceptor';
import type { ServerMetrics } from '../etcdserver/metrics';

/** concurrency.NewSession's default TTL when the request carries no lease (etcd: 60 s). */
export const DEFAULT_SESSION_TTL_SECONDS = 60;

const EMPTY = Buffer.alloc(0);

/**
 * etcd's recipes call clientv3 and return its errors as they are: a server error reaches their
 * caller as codes.Unknown with the same text (v3lock: "rpc error: code = Unknown desc =
 * etcdserver: permission denied"), not with the code the KV call had.
 */
async function relayed<T>(p: Promise<T>): Promise<T> {
  try {
    return await p;
  } catch (e) {
    if (e instanceof EtcdError && e.code !== status.UNKNOWN && e.code !== status.CANCELLED) throw new EtcdError(e.message, status.UNKNOWN);
    throw e;
  }
}

/** An in-process client: the few KV, Lease and Watch calls the recipes make, with etcd's request shapes. */
export class RecipeClient {
  constructor(
    readonly server: KvServer & LeaseServer,
    private readonly hub: WatchableStore,
    /** Who the recipe acts for: the caller's token, as etcd's recipes call clientv3 with the caller's context. */
    private readonly ai?: AuthInfo,
  ) {}

  /** The same client acting for another caller. */
  as(ai: AuthInfo | undefined): RecipeClient {
    return new RecipeClient(this.server, this.hub, ai);
  }

  /** A lease for a session: the given one, or (0) a new lease with the session default TTL. */
  async sessionLease(lease: string): Promise<string> {
    if (BigInt(lease) !== 0n) return lease;
    const r = (await relayed(this.server.leaseGrant({ ID: '0', TTL: String(DEFAULT_SESSION_TTL_SECONDS) }, this.ai))) as { ID: string | number };
    return String(r.ID);
  }

  async txn(compare: Compare[], success: RequestOp[], failure: RequestOp[]): Promise<TxnResponse> {
    return (await relayed(this.server.txn({ compare, success, failure }, this.ai))) as TxnResponse;
  }

  async get(key: Buffer, opts: Partial<RangeRequest> = {}): Promise<{ header: ResponseHeader; kvs: KeyValueMsg[] }> {
    return (await relayed(this.server.range(rangeRequest(key, opts), this.ai))) as { header: ResponseHeader; kvs: KeyValueMsg[] };
  }

  async delete(key: Buffer): Promise<ResponseHeader> {
    const r = (await relayed(this.server.deleteRange({ key, range_end: EMPTY, prev_kv: false }, this.ai))) as { header: ResponseHeader };
    return r.header;
  }

  /**
   * Watches [key, end) from `startRev` and calls `onEvents` with each batch until it returns true
   * (resolves) or `signal` aborts / the watch is cancelled (rejects).
   */
  watch(key: Buffer, end: Buffer | null, startRev: number, signal: AbortSignal, onEvents: (events: readonly Event[], rev: number) => boolean): Promise<void> {
    return new Promise((resolve, reject) => {
      let done = false;
      const stream = this.hub.newStream(() => queueMicrotask(pull));
      const finish = (err?: Error): void => {
        if (done) return;
        done = true;
        signal.removeEventListener('abort', onAbort);
        this.hub.closeStream(stream);
        if (err) reject(err);
        else resolve();
      };
      const onAbort = (): void => finish(new ErrRecipeCanceled());
      function pull(): void {
        for (let r = stream.next(); r !== undefined && !done; r = stream.next()) {
          if (r.canceled) return finish(r.compactRevision > 0 ? new ErrCompacted() : new ErrRecipeCanceled());
          if (r.events.length > 0 && onEvents(r.events, r.revision)) return finish();
        }
      }
      if (signal.aborted) return onAbort();
      signal.addEventListener('abort', onAbort);
      stream.watch({ id: 0, key, end, startRev });
    });
  }

  /** Resolves when `key` is deleted at or after `rev` (concurrency waitDelete). */
  waitDelete(key: Buffer, rev: number, signal: AbortSignal): Promise<void> {
    return this.watch(key, null, rev, signal, (events) => events.some((e) => e.type === 'DELETE'));
  }

  /**
   * concurrency waitDeletes: until no key under `prefix` has create_revision <= maxCreateRev, wait
   * for the newest such key to be deleted. Returns the header of the final (empty) read.
   */
  async waitDeletes(prefix: Buffer, maxCreateRev: number, signal: AbortSignal): Promise<ResponseHeader> {
    for (;;) {
      const r = await this.get(prefix, { ...lastCreate(prefix), max_create_revision: String(maxCreateRev) });
      if (r.kvs.length === 0) return r.header;
      await this.waitDelete(r.kvs[0].key, Number(r.header.revision), signal);
    }
  }
}

export function rangeRequest(key: Buffer, opts: Partial<RangeRequest> = {}): RangeRequest {
  return {
    key,
    range_end: EMPTY,
    limit: '0',
    revision: '0',
    sort_order: SortOrder.NONE,
    sort_target: SortTarget.KEY,
    serializable: false,
    keys_only: false,
    count_only: false,
    min_mod_revision: '0',
    max_mod_revision: '0',
    min_create_revision: '0',
    max_create_revision: '0',
    ...opts,
  };
}

export function prefixEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i] < 0xff) {
      end[i]++;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
}

/** clientv3.WithFirstCreate: the prefix's oldest key. */
export function firstCreate(prefix: Buffer): Partial<RangeRequest> {
  return { range_end: prefixEnd(prefix), sort_target: SortTarget.CREATE, sort_order: SortOrder.ASCEND, limit: '1' };
}

/** clientv3.WithLastCreate: the prefix's newest key. */
export function lastCreate(prefix: Buffer): Partial<RangeRequest> {
  return { range_end: prefixEnd(prefix), sort_target: SortTarget.CREATE, sort_order: SortOrder.DESCEND, limit: '1' };
}

export function createRevisionIs(key: Buffer, rev: number): Compare {
  return { result: CompareResult.EQUAL, target: CompareTarget.CREATE, key, target_union: 'create_revision', create_revision: String(rev), range_end: EMPTY };
}

export function opPut(key: Buffer, value: Buffer, lease: string): RequestOp {
  return { request: 'request_put', request_put: { key, value, lease, prev_kv: false, ignore_value: false, ignore_lease: false } };
}

export function opGet(key: Buffer, opts: Partial<RangeRequest> = {}): RequestOp {
  return { request: 'request_range', request_range: rangeRequest(key, opts) };
}

export function opDelete(key: Buffer): RequestOp {
  return { request: 'request_delete_range', request_delete_range: { key, range_end: EMPTY, prev_kv: false } };
}

export function leaseHex(lease: string): string {
  return BigInt.asUintN(64, BigInt(lease)).toString(16);
}

/** An AbortSignal that fires when the gRPC call is cancelled by the client. */
export function callSignal(call: { on(event: 'cancelled', fn: () => void): unknown }): AbortSignal {
  const ctl = new AbortController();
  call.on('cancelled', () => ctl.abort());
  return ctl.signal;
}

/** concurrency.Mutex.Lock; returns the lock key and the response header. */
export async function lockMutex(c: RecipeClient, name: Buffer, lease: string, signal: AbortSignal): Promise<{ key: Buffer; header: ResponseHeader }> {
  const pfx = Buffer.concat([name, Buffer.from('/')]);
  const myKey = Buffer.concat([pfx, Buffer.from(leaseHex(lease))]);
  const resp = await c.txn(
    [createRevisionIs(myKey, 0)],
    [opPut(myKey, EMPTY, lease), opGet(pfx, firstCreate(pfx))],
    [opGet(myKey), opGet(pfx, firstCreate(pfx))],
  );
  let myRev = Number(resp.header.revision);
  if (!resp.succeeded) myRev = Number(resp.responses[0].response_range!.kvs[0].create_revision);
  const owner = resp.responses[1].response_range!.kvs;
  if (owner.length === 0 || Number(owner[0].create_revision) === myRev) return { key: myKey, header: resp.header };
  let header: ResponseHeader;
  try {
    header = await c.waitDeletes(pfx, myRev - 1, signal);
    const mine = await c.get(myKey);
    if (mine.kvs.length === 0) throw new ErrSessionExpired();
  } catch (e) {
    // Release our place in the queue if the wait failed (concurrency: m.Unlock on error).
    if (!(e instanceof ErrSessionExpired)) await c.delete(myKey).catch(() => undefined);
    throw e;
  }
  return { key: myKey, header };
}

interface LockRequestMsg {
  name: Buffer;
  lease: string;
}

export function lockService(server: KvServer & LeaseServer, hub: WatchableStore, metrics: ServerMetrics, auth?: AuthResolver): grpc.UntypedServiceImplementation {
  const base = new RecipeClient(server, hub);
  const client = async (call: { metadata: grpc.Metadata }): Promise<RecipeClient> => base.as(await auth?.authInfo(call));
  return {
    Lock: unary<LockRequestMsg, unknown>(metrics, 'v3lockpb.Lock', 'Lock', async (r, call) => {
      const signal = callSignal(call);
      const c = await client(call);
      const lease = await c.sessionLease(r.lease);
      const { key, header } = await lockMutex(c, r.name, lease, signal);
      return { header, key };
    }),
    Unlock: unary<{ key: Buffer }, unknown>(metrics, 'v3lockpb.Lock', 'Unlock', async (r, call) => ({ header: await (await client(call)).delete(r.key) })),
  };
}
