import * as grpc from '@grpc/grpc-js';
import { loadEtcdServices } from '../../../proto';

/**
 * A raw Watch / LeaseKeepAlive stream over etcd's own protos, for conformance tests: every response
 * is recorded in order (decoded with the project's DECODE_OPTIONS shape) and can be awaited.
 */

export interface WatchResponseMsg {
  header: { cluster_id: string; member_id: string; revision: string; raft_term: string } | null;
  watch_id: string;
  created: boolean;
  canceled: boolean;
  compact_revision: string;
  cancel_reason: string;
  fragment: boolean;
  events: { type: number; kv: KvMsg | null; prev_kv: KvMsg | null }[];
}

export interface KvMsg {
  key: Buffer;
  create_revision: string;
  mod_revision: string;
  version: string;
  value: Buffer;
  lease: string;
}

const CHANNEL_OPTIONS: grpc.ChannelOptions = {
  'grpc.max_receive_message_length': -1,
  'grpc.use_local_subchannel_pool': 1,
};

function serviceClient(service: 'Watch' | 'Lease', endpoint: string): grpc.Client {
  const pkg = loadEtcdServices().etcdserverpb as grpc.GrpcObject;
  const Ctor = pkg[service] as grpc.ServiceClientConstructor;
  return new Ctor(endpoint, grpc.credentials.createInsecure(), CHANNEL_OPTIONS);
}

export class RecordingStream<Res> {
  readonly responses: Res[] = [];
  error: grpc.ServiceError | undefined;
  ended = false;
  private waiters: (() => void)[] = [];

  constructor(
    private readonly client: grpc.Client,
    readonly call: grpc.ClientDuplexStream<unknown, Res>,
  ) {
    call.on('data', (r: Res) => {
      this.responses.push(r);
      this.wakeAll();
    });
    call.on('error', (e: grpc.ServiceError) => {
      this.error = e;
      this.wakeAll();
    });
    call.on('end', () => {
      this.ended = true;
      this.wakeAll();
    });
  }

  send(req: object): void {
    this.call.write(req);
  }

  /** Resolves once `pred` holds over the responses so far (or throws after timeoutMs). */
  async until(pred: (rs: Res[]) => boolean, timeoutMs = 10_000, what = 'condition'): Promise<Res[]> {
    const deadline = Date.now() + timeoutMs;
    while (!pred(this.responses)) {
      if (this.error) throw new Error(`stream failed while waiting for ${what}: ${this.error.code} ${this.error.details}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}; got ${JSON.stringify(this.responses.map(brief))}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    return this.responses;
  }

  /** Waits for `n` responses in total. */
  count(n: number, timeoutMs?: number): Promise<Res[]> {
    return this.until((rs) => rs.length >= n, timeoutMs, `${n} responses`);
  }

  /** Waits until the stream fails and returns the error. */
  async failure(timeoutMs = 10_000): Promise<grpc.ServiceError> {
    await this.until(() => this.error !== undefined, timeoutMs, 'stream error').catch(() => undefined);
    if (!this.error) throw new Error('stream did not fail');
    return this.error;
  }

  close(): void {
    this.call.cancel();
    this.client.close();
  }

  private wakeAll(): void {
    const ws = this.waiters;
    this.waiters = [];
    for (const w of ws) w();
  }
}

function brief(r: unknown): unknown {
  const x = r as Partial<WatchResponseMsg>;
  if (x && typeof x === 'object' && 'watch_id' in x) {
    return { id: x.watch_id, rev: x.header?.revision, c: x.created, x: x.canceled, n: x.events?.length };
  }
  return r;
}

export function openWatch(endpoint: string, metadata?: Record<string, string>): RecordingStream<WatchResponseMsg> {
  const client = serviceClient('Watch', endpoint);
  const md = new grpc.Metadata();
  for (const [k, v] of Object.entries(metadata ?? {})) md.set(k, v);
  const call = (client as unknown as { Watch(md: grpc.Metadata): grpc.ClientDuplexStream<unknown, WatchResponseMsg> }).Watch(md);
  return new RecordingStream(client, call);
}

export interface LeaseKeepAliveResponseMsg {
  header: { revision: string } | null;
  ID: string;
  TTL: string;
}

export function openKeepAlive(endpoint: string, metadata?: Record<string, string>): RecordingStream<LeaseKeepAliveResponseMsg> {
  const client = serviceClient('Lease', endpoint);
  const md = new grpc.Metadata();
  for (const [k, v] of Object.entries(metadata ?? {})) md.set(k, v);
  const call = (client as unknown as { LeaseKeepAlive(md: grpc.Metadata): grpc.ClientDuplexStream<unknown, LeaseKeepAliveResponseMsg> }).LeaseKeepAlive(md);
  return new RecordingStream(client, call);
}

/** A create request with etcd's field names; `key` and `range_end` as strings or Buffers. */
export function create(o: {
  key: string | Buffer;
  range_end?: string | Buffer;
  start_revision?: number | string;
  progress_notify?: boolean;
  filters?: number[];
  prev_kv?: boolean;
  watch_id?: number;
  fragment?: boolean;
}): object {
  const buf = (v: string | Buffer | undefined): Buffer => (v === undefined ? Buffer.alloc(0) : Buffer.isBuffer(v) ? v : Buffer.from(v));
  return {
    create_request: {
      key: buf(o.key),
      range_end: buf(o.range_end),
      start_revision: String(o.start_revision ?? 0),
      progress_notify: o.progress_notify ?? false,
      filters: o.filters ?? [],
      prev_kv: o.prev_kv ?? false,
      watch_id: String(o.watch_id ?? 0),
      fragment: o.fragment ?? false,
    },
  };
}

export const cancel = (id: number | string): object => ({ cancel_request: { watch_id: String(id) } });
export const progress = (): object => ({ progress_request: {} });

export function prefixEnd(prefix: string): Buffer {
  const e = Buffer.from(prefix);
  e[e.length - 1]++;
  return e;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Watch IDs the barrier below chooses on a stream (client-chosen IDs, etcd 3.4): far above the
 * IDs a scenario gets by auto-assignment, so it never changes them.
 */
export const BARRIER_WATCH_ID_BASE = 1_000_000;

/**
 * A barrier on one watch stream, standing in for "wait a while, nothing more may arrive": a
 * watcher on `key` (which must lie outside every other watched range of the stream) is created on
 * the stream, `put` writes `key`, and the barrier waits for that event. Every watcher of a stream
 * shares one ordered channel (etcd mvcc watchStream.ch, cairn's per-stream FIFO), and the put's
 * event is queued when it commits, after every event of an earlier revision of every synced
 * watcher: so anything the scenario caused on the stream, duplicates included, arrives before it.
 * Returns the responses before the barrier's event, without the barrier watcher's own responses
 * (of this or an earlier barrier), so the transcript is the same as without it. Call it only when
 * every watcher of the stream is synced (caught up with history).
 */
export async function barrier(s: RecordingStream<WatchResponseMsg>, key: Buffer, put: () => Promise<unknown>, timeoutMs = 10_000): Promise<WatchResponseMsg[]> {
  return (await barrierAll([s], key, put, timeoutMs))[0];
}

/** `barrier` on several streams at once, with one put: the responses before it on each stream. */
export async function barrierAll(ss: RecordingStream<WatchResponseMsg>[], key: Buffer, put: () => Promise<unknown>, timeoutMs = 10_000): Promise<WatchResponseMsg[][]> {
  const isBarrier = (r: WatchResponseMsg): boolean => Number(r.watch_id) >= BARRIER_WATCH_ID_BASE;
  const ids = ss.map((s) => BARRIER_WATCH_ID_BASE + s.responses.filter((r) => isBarrier(r) && r.created).length);
  const event = (id: number) => (r: WatchResponseMsg): boolean => Number(r.watch_id) === id && r.events.length > 0;
  ss.forEach((s, i) => s.send(create({ key, watch_id: ids[i] })));
  for (const [i, s] of ss.entries()) await s.until((rs) => rs.some((r) => Number(r.watch_id) === ids[i] && r.created), timeoutMs, `barrier watcher ${ids[i]} created`);
  await put();
  const out: WatchResponseMsg[][] = [];
  for (const [i, s] of ss.entries()) {
    const rs = await s.until((xs) => xs.some(event(ids[i])), timeoutMs, `barrier event on ${key.toString()}`);
    out.push(rs.slice(0, rs.findIndex(event(ids[i]))).filter((r) => !isBarrier(r)));
  }
  return out;
}
