/**
 * A gRPC client for one member, over etcd's own protos (proto/), as an etcd client library would use
 * them: KV, Watch, Lease, Lock, Cluster and Maintenance. Every call has a deadline and resolves
 * (never rejects) to `{ ok }` or `{ err }`, so workloads turn errors into history entries in one place
 * (`outcomeOf`). Each `MemberClient` owns its own HTTP/2 connection: "several clients per member" are
 * really several connections, as several processes would have.
 */
import * as grpc from '@grpc/grpc-js';
import { loadEtcdServices } from '../proto';

/** Reconnect quickly after a member restarts (grpc-js would otherwise back off up to 120 s). */
export const CLIENT_RECONNECT_BACKOFF_MS = 100;
export const CLIENT_MAX_RECONNECT_BACKOFF_MS = 1_000;

export interface GrpcErr {
  readonly code: number;
  readonly details: string;
}
export type CallResult<T> = { readonly ok: T; readonly err?: undefined } | { readonly ok?: undefined; readonly err: GrpcErr };

type Service = 'KV' | 'Lease' | 'Maintenance' | 'Cluster' | 'Watch';

/* eslint-disable @typescript-eslint/no-explicit-any -- decoded protobuf messages are plain objects. */
export type Msg = any;

const CHANNEL_OPTIONS: grpc.ChannelOptions = {
  'grpc.use_local_subchannel_pool': 1,
  'grpc.initial_reconnect_backoff_ms': CLIENT_RECONNECT_BACKOFF_MS,
  'grpc.max_reconnect_backoff_ms': CLIENT_MAX_RECONNECT_BACKOFF_MS,
  'grpc.max_receive_message_length': -1,
};

function toErr(e: grpc.ServiceError | Error): GrpcErr {
  const se = e as grpc.ServiceError;
  return { code: typeof se.code === 'number' ? se.code : grpc.status.UNKNOWN, details: se.details ?? se.message };
}

export class MemberClient {
  private readonly clients = new Map<string, grpc.Client>();
  private closed = false;

  constructor(
    readonly member: string,
    readonly endpoint: string,
    /** TLS credentials for a --tls run (client certificate and CA); plaintext otherwise. */
    private readonly credentials: grpc.ChannelCredentials = grpc.credentials.createInsecure(),
  ) {}

  private client(pkg: 'etcdserverpb' | 'v3lockpb', service: Service | 'Lock'): grpc.Client {
    const name = `${pkg}.${service}`;
    let c = this.clients.get(name);
    if (c === undefined) {
      const ns = loadEtcdServices()[pkg] as grpc.GrpcObject;
      const Ctor = ns[service] as grpc.ServiceClientConstructor;
      c = new Ctor(this.endpoint, this.credentials, CHANNEL_OPTIONS);
      this.clients.set(name, c);
    }
    return c;
  }

  private unary<T>(pkg: 'etcdserverpb' | 'v3lockpb', service: Service | 'Lock', method: string, req: unknown, timeoutMs: number): Promise<CallResult<T>> {
    if (this.closed) return Promise.resolve({ err: { code: grpc.status.CANCELLED, details: 'client closed' } });
    const c = this.client(pkg, service) as unknown as Record<string, (r: unknown, md: grpc.Metadata, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r?: T) => void) => void>;
    return new Promise((resolve) => {
      try {
        c[method](req, new grpc.Metadata(), { deadline: Date.now() + timeoutMs }, (e, r) => resolve(e ? { err: toErr(e) } : { ok: r as T }));
      } catch (e) {
        resolve({ err: toErr(e as Error) });
      }
    });
  }

  range(req: Msg, timeoutMs: number): Promise<CallResult<Msg>> {
    return this.unary('etcdserverpb', 'KV', 'Range', req, timeoutMs);
  }
  put(req: Msg, timeoutMs: number): Promise<CallResult<Msg>> {
    return this.unary('etcdserverpb', 'KV', 'Put', req, timeoutMs);
  }
  deleteRange(req: Msg, timeoutMs: number): Promise<CallResult<Msg>> {
    return this.unary('etcdserverpb', 'KV', 'DeleteRange', req, timeoutMs);
  }
  txn(req: Msg, timeoutMs: number): Promise<CallResult<Msg>> {
    return this.unary('etcdserverpb', 'KV', 'Txn', req, timeoutMs);
  }
  compact(revision: number, timeoutMs: number): Promise<CallResult<Msg>> {
    return this.unary('etcdserverpb', 'KV', 'Compact', { revision: String(revision), physical: false }, timeoutMs);
  }
  leaseGrant(ttlS: number, timeoutMs: number): Promise<CallResult<Msg>> {
    return this.unary('etcdserverpb', 'Lease', 'LeaseGrant', { TTL: String(ttlS), ID: '0' }, timeoutMs);
  }
  leaseRevoke(id: string, timeoutMs: number): Promise<CallResult<Msg>> {
    return this.unary('etcdserverpb', 'Lease', 'LeaseRevoke', { ID: id }, timeoutMs);
  }
  lock(name: string, leaseId: string, timeoutMs: number): Promise<CallResult<Msg>> {
    return this.unary('v3lockpb', 'Lock', 'Lock', { name: Buffer.from(name), lease: leaseId }, timeoutMs);
  }
  unlock(key: Buffer, timeoutMs: number): Promise<CallResult<Msg>> {
    return this.unary('v3lockpb', 'Lock', 'Unlock', { key }, timeoutMs);
  }
  status(timeoutMs: number): Promise<CallResult<Msg>> {
    return this.unary('etcdserverpb', 'Maintenance', 'Status', {}, timeoutMs);
  }
  memberList(timeoutMs: number): Promise<CallResult<Msg>> {
    return this.unary('etcdserverpb', 'Cluster', 'MemberList', { linearizable: false }, timeoutMs);
  }
  memberAdd(peerUrls: string[], timeoutMs: number): Promise<CallResult<Msg>> {
    return this.unary('etcdserverpb', 'Cluster', 'MemberAdd', { peerURLs: peerUrls, isLearner: false }, timeoutMs);
  }
  memberRemove(id: string, timeoutMs: number): Promise<CallResult<Msg>> {
    return this.unary('etcdserverpb', 'Cluster', 'MemberRemove', { ID: id }, timeoutMs);
  }

  /** One LeaseKeepAlive round on a short-lived stream: resolves to the TTL left (0 = lease gone). */
  keepAliveOnce(id: string, timeoutMs: number): Promise<CallResult<number>> {
    if (this.closed) return Promise.resolve({ err: { code: grpc.status.CANCELLED, details: 'client closed' } });
    const c = this.client('etcdserverpb', 'Lease') as unknown as { LeaseKeepAlive(md: grpc.Metadata, o: grpc.CallOptions): grpc.ClientDuplexStream<Msg, Msg> };
    return new Promise((resolve) => {
      let done = false;
      const stream = c.LeaseKeepAlive(new grpc.Metadata(), { deadline: Date.now() + timeoutMs });
      const finish = (r: CallResult<number>): void => {
        if (done) return;
        done = true;
        stream.cancel();
        resolve(r);
      };
      stream.on('data', (m: Msg) => finish({ ok: Number(m.TTL) }));
      stream.on('error', (e: grpc.ServiceError) => finish({ err: toErr(e) }));
      stream.on('end', () => finish({ err: { code: grpc.status.UNAVAILABLE, details: 'keepalive stream ended' } }));
      stream.write({ ID: id });
    });
  }

  /** A raw Watch stream; the caller writes requests and reads responses. */
  watchStream(): grpc.ClientDuplexStream<Msg, Msg> {
    const c = this.client('etcdserverpb', 'Watch') as unknown as { Watch(md: grpc.Metadata, o?: grpc.CallOptions): grpc.ClientDuplexStream<Msg, Msg> };
    return c.Watch(new grpc.Metadata(), {});
  }

  close(): void {
    this.closed = true;
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
  }
}

/**
 * What a failed call tells us about its effect (Jepsen's fail vs info).
 * - `fail`: the request certainly did not take effect: it was refused before it could be proposed
 *   (validation, compacted or future revision, too many requests, lease not found).
 * - `info`: unknown. Timeouts, connection loss, "leader changed", "request timed out", "no leader",
 *   "server stopped": the proposal may already be in the log and commit later.
 * Reads have no effect either way; workloads may record their errors as `fail`.
 */
export function outcomeOf(err: GrpcErr): 'fail' | 'info' {
  const d = err.details;
  if (d.includes('required revision has been compacted')) return 'fail';
  if (d.includes('required revision is a future revision')) return 'fail';
  if (d.includes('etcdserver: too many requests')) return 'fail';
  if (d.includes('etcdserver: request is too large')) return 'fail';
  if (d.includes('requested lease not found')) return 'fail';
  if (err.code === grpc.status.INVALID_ARGUMENT) return 'fail';
  return 'info';
}

/** A response header's revision as a number (revisions stay far below 2^53 in a run). */
export function headerRevision(m: Msg): number {
  return Number(m?.header?.revision ?? 0);
}
