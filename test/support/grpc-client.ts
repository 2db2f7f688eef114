import * as grpc from '@grpc/grpc-js';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { loadEtcdServices } from '../../proto';

/**
 * A thin promise-based gRPC client over etcd's own protos, for tests.
 *
 * Every unary call resolves (never rejects) to `{ ok: response }` or `{ err: { code, details } }`
 * so tests can compare errors as data. Messages use the project's DECODE_OPTIONS shape
 * (snake_case, int64 as decimal strings, bytes as Buffers, defaults filled in).
 */

export type GrpcErr = { code: number; details: string };
export type CallResult<T = any> = { ok: T; err?: undefined } | { ok?: undefined; err: GrpcErr };

export type ServiceName = 'KV' | 'Lease' | 'Maintenance' | 'Cluster' | 'Auth' | 'Watch';

export interface CallOptions {
  /** Per-call deadline in ms (default: the client's default, 10 s). */
  deadlineMs?: number;
  /** Request metadata, e.g. `{ token }` (etcd's auth token field). */
  metadata?: Record<string, string>;
}

function metadataOf(opts: CallOptions): grpc.Metadata {
  const md = new grpc.Metadata();
  for (const [k, v] of Object.entries(opts.metadata ?? {})) md.set(k, v);
  return md;
}

type UnaryFn = (
  req: unknown,
  md: grpc.Metadata,
  opts: grpc.CallOptions,
  cb: (err: grpc.ServiceError | null, res?: unknown) => void,
) => grpc.ClientUnaryCall;

const CHANNEL_OPTIONS: grpc.ChannelOptions = {
  // Large-request tests send > 2 MiB; let the server (not the client) decide.
  'grpc.max_send_message_length': -1,
  'grpc.max_receive_message_length': -1,
  // Each EtcdClient gets its own connection; do not share subchannels with other clients.
  'grpc.use_local_subchannel_pool': 1,
};

function toErr(e: grpc.ServiceError | Error): GrpcErr {
  const se = e as grpc.ServiceError;
  return { code: typeof se.code === 'number' ? se.code : grpc.status.UNKNOWN, details: se.details ?? se.message };
}

export class EtcdClient {
  readonly endpoint: string;
  readonly defaultDeadlineMs: number;
  private readonly clients: Partial<Record<ServiceName, grpc.Client>> = {};
  private rawClient?: grpc.Client;
  private readonly credentials: grpc.ChannelCredentials;

  constructor(endpoint: string, opts: { defaultDeadlineMs?: number; credentials?: grpc.ChannelCredentials } = {}) {
    this.endpoint = endpoint;
    this.defaultDeadlineMs = opts.defaultDeadlineMs ?? 10_000;
    this.credentials = opts.credentials ?? grpc.credentials.createInsecure();
  }

  private client(service: ServiceName): grpc.Client {
    let c = this.clients[service];
    if (!c) {
      const pkg = loadEtcdServices().etcdserverpb as grpc.GrpcObject;
      const Ctor = pkg[service] as grpc.ServiceClientConstructor;
      c = new Ctor(this.endpoint, this.credentials, CHANNEL_OPTIONS);
      this.clients[service] = c;
    }
    return c;
  }

  /** A unary call by service and RPC name, e.g. `call('KV', 'Range', {...})`. */
  call<T = any>(service: ServiceName, method: string, req: object, opts: CallOptions = {}): Promise<CallResult<T>> {
    const c = this.client(service) as unknown as Record<string, UnaryFn>;
    const fn = c[method];
    if (typeof fn !== 'function') throw new Error(`no RPC ${service}.${method}`);
    const deadline = Date.now() + (opts.deadlineMs ?? this.defaultDeadlineMs);
    return new Promise((resolve) => {
      fn.call(c, req, metadataOf(opts), { deadline }, (err, res) => {
        if (err) resolve({ err: toErr(err) });
        else resolve({ ok: res as T });
      });
    });
  }

  /**
   * A unary call with raw request/response bytes (identity serializers), for malformed-protobuf
   * tests. `path` is the full method path, e.g. `/etcdserverpb.KV/Put`.
   */
  raw(path: string, bytes: Buffer, opts: CallOptions = {}): Promise<CallResult<Buffer>> {
    if (!this.rawClient) this.rawClient = new grpc.Client(this.endpoint, this.credentials, CHANNEL_OPTIONS);
    const deadline = Date.now() + (opts.deadlineMs ?? this.defaultDeadlineMs);
    const id = (b: Buffer): Buffer => b;
    return new Promise((resolve) => {
      this.rawClient!.makeUnaryRequest(path, id, id, bytes, new grpc.Metadata(), { deadline }, (err, res) => {
        if (err) resolve({ err: toErr(err) });
        else resolve({ ok: res as Buffer });
      });
    });
  }

  // KV
  range = (req: object, o?: CallOptions) => this.call('KV', 'Range', req, o);
  put = (req: object, o?: CallOptions) => this.call('KV', 'Put', req, o);
  deleteRange = (req: object, o?: CallOptions) => this.call('KV', 'DeleteRange', req, o);
  txn = (req: object, o?: CallOptions) => this.call('KV', 'Txn', req, o);
  compact = (req: object, o?: CallOptions) => this.call('KV', 'Compact', req, o);
  // Lease
  leaseGrant = (req: object, o?: CallOptions) => this.call('Lease', 'LeaseGrant', req, o);
  leaseRevoke = (req: object, o?: CallOptions) => this.call('Lease', 'LeaseRevoke', req, o);
  leaseTimeToLive = (req: object, o?: CallOptions) => this.call('Lease', 'LeaseTimeToLive', req, o);
  leaseLeases = (req: object = {}, o?: CallOptions) => this.call('Lease', 'LeaseLeases', req, o);
  // Maintenance
  status = (req: object = {}, o?: CallOptions) => this.call('Maintenance', 'Status', req, o);
  alarm = (req: object = {}, o?: CallOptions) => this.call('Maintenance', 'Alarm', req, o);
  hashKV = (req: object = {}, o?: CallOptions) => this.call('Maintenance', 'HashKV', req, o);
  defragment = (req: object = {}, o?: CallOptions) => this.call('Maintenance', 'Defragment', req, o);

  /**
   * Maintenance.Snapshot streamed to `file` with backpressure (the call is paused while the file
   * write buffer is full), as `etcdctl snapshot save` does. etcd (and cairn) send the database and
   * then its sha256 as one last blob; `bytes` counts everything written (database + 32-byte hash)
   * and `hashOk` says whether that last blob is the sha256 of what came before it.
   */
  snapshotToFile(file: string, opts: CallOptions = {}): Promise<CallResult<{ bytes: number; hashOk: boolean }>> {
    const c = this.client('Maintenance') as unknown as Record<string, (req: unknown, md: grpc.Metadata, o: grpc.CallOptions) => grpc.ClientReadableStream<{ blob: Buffer }>>;
    const deadline = Date.now() + (opts.deadlineMs ?? this.defaultDeadlineMs);
    return new Promise((resolve) => {
      const out = fs.createWriteStream(file);
      const call = c.Snapshot.call(c, {}, metadataOf(opts), { deadline });
      const h = createHash('sha256');
      let last: Buffer | undefined;
      let bytes = 0;
      let failed: GrpcErr | undefined;
      const fail = (e: Error): void => {
        if (failed) return;
        failed = toErr(e);
        call.cancel();
        out.destroy();
        resolve({ err: failed });
      };
      call.on('data', (m: { blob: Buffer }) => {
        if (last) h.update(last);
        last = m.blob;
        bytes += m.blob.length;
        if (!out.write(m.blob)) {
          call.pause();
          out.once('drain', () => call.resume());
        }
      });
      call.on('error', fail);
      out.on('error', fail);
      call.on('end', () => {
        if (failed) return;
        out.end(() => {
          const hashOk = !!last && last.length === 32 && h.digest().equals(last);
          resolve({ ok: { bytes, hashOk } });
        });
      });
    });
  }
  // Cluster
  memberList = (req: object = {}, o?: CallOptions) => this.call('Cluster', 'MemberList', req, o);

  /** A server-streaming call (e.g. Maintenance.Snapshot): the messages, or the error that ended it. */
  serverStream<T = any>(service: ServiceName, method: string, req: object, opts: CallOptions = {}): Promise<{ messages: T[]; err?: GrpcErr }> {
    const c = this.client(service) as unknown as Record<string, (req: unknown, md: grpc.Metadata, o: grpc.CallOptions) => grpc.ClientReadableStream<T>>;
    const fn = c[method];
    if (typeof fn !== 'function') throw new Error(`no RPC ${service}.${method}`);
    const stream = fn.call(c, req, metadataOf(opts), { deadline: Date.now() + (opts.deadlineMs ?? this.defaultDeadlineMs) });
    const messages: T[] = [];
    return new Promise((resolve) => {
      stream.on('data', (m: T) => messages.push(m));
      stream.on('error', (e: grpc.ServiceError) => resolve({ messages, err: toErr(e) }));
      stream.on('end', () => resolve({ messages }));
    });
  }

  close(): void {
    for (const c of Object.values(this.clients)) c?.close();
    this.rawClient?.close();
  }
}

export function connect(endpoint: string, opts?: { defaultDeadlineMs?: number; credentials?: grpc.ChannelCredentials }): EtcdClient {
  return new EtcdClient(endpoint, opts);
}

/** Unwrap a result, throwing with the gRPC error if it failed. */
export function must<T>(r: CallResult<T>, what = 'call'): T {
  if (r.err) throw new Error(`${what} failed: code ${r.err.code}: ${r.err.details}`);
  return r.ok as T;
}
