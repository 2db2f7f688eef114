/**
 * etcdserverpb.Watch (etcd v3rpc/watch.go): one bidirectional stream per client connection, many
 * watchers on it. The stream's requests become calls on a hub WatchStream; its responses are
 * pulled from that stream as fast as the transport takes them, so a slow client slows only itself.
 *
 * Responses are encoded here by hand, not through protobufjs: the events of one commit are encoded
 * once and the bytes shared by every watcher that receives exactly them, which is what makes fan-out
 * to thousands of watchers cheap. The wire format is checked against the .proto in test/watch.
 */
import * as grpc from '@grpc/grpc-js';
import type { Event, KeyValue } from '../../mvcc/kv';
import type { WatchableStore, WatchCreate, WatchResponse, WatchStream } from '../../mvcc/watchable-store';
import { DEFAULT_PROGRESS_NOTIFY_INTERVAL_MS, PROGRESS_NOTIFY_JITTER_FRACTION } from '../../mvcc/watch-limits';
import { serviceDefinition } from '../../proto';
import type { ResponseHeader } from '../../proto/etcd-types';
import { ErrNoLeader } from '../etcdserver/errors';
import type { ServerInfo } from '../etcdserver/interfaces';
import { toServiceError } from './grpc-errors';
import type { ServerMetrics } from '../etcdserver/metrics';

/** Fragmenting starts at --max-request-bytes plus gRPC's overhead allowance (etcd: 512 KiB). */
export const WATCH_FRAGMENT_OVERHEAD_BYTES = 512 * 1024;
/** Encoded responses handed to the transport and not yet flushed, per stream. */
export const STREAM_INFLIGHT_WRITES = 64;
/** etcd's minimum --experimental-watch-progress-notify-interval. */
export const MIN_PROGRESS_NOTIFY_INTERVAL_MS = 100;
/** Streams with `hasleader` are cancelled after this many election timeouts without a leader (etcd maxNoLeaderCnt). */
export const MAX_NO_LEADER_COUNT = 3;

interface WatchCreateRequestMsg {
  key: Buffer;
  range_end: Buffer;
  start_revision: string;
  progress_notify: boolean;
  filters: number[];
  prev_kv: boolean;
  watch_id: string;
  fragment: boolean;
}

interface WatchRequestMsg {
  request_union?: 'create_request' | 'cancel_request' | 'progress_request';
  create_request?: WatchCreateRequestMsg | null;
  cancel_request?: { watch_id: string } | null;
  progress_request?: object | null;
}

const FILTER_NOPUT = 0;
const FILTER_NODELETE = 1;

/** The Watch service definition, taking pre-encoded response bytes. */
export function watchServiceDefinition(): grpc.ServiceDefinition {
  const def = serviceDefinition('etcdserverpb', 'Watch');
  const watch = def.Watch;
  return {
    Watch: {
      ...watch,
      responseSerialize: (value: unknown) => (Buffer.isBuffer(value) ? value : watch.responseSerialize(value)),
    },
  };
}

/** etcd's recvLoop normalisation of a create request. */
export function toWatchCreate(c: WatchCreateRequestMsg): WatchCreate {
  // "\x00" is the smallest key; an empty range_end means one key; "\x00" means every key >= key.
  const key = c.key.length === 0 ? Buffer.from([0]) : c.key;
  const end = c.range_end.length === 0 ? null : c.range_end;
  return {
    id: Number(c.watch_id),
    key,
    end,
    startRev: Number(c.start_revision),
    noPut: c.filters.includes(FILTER_NOPUT),
    noDelete: c.filters.includes(FILTER_NODELETE),
    prevKv: c.prev_kv,
    progressNotify: c.progress_notify,
    fragment: c.fragment,
  };
}

export function watchService(server: ServerInfo, hub: WatchableStore, metrics: ServerMetrics): grpc.UntypedServiceImplementation {
  const maxFragmentBytes = server.cfg.maxRequestBytes + WATCH_FRAGMENT_OVERHEAD_BYTES;
  const intervalMs = Math.max(MIN_PROGRESS_NOTIFY_INTERVAL_MS, server.cfg.watchProgressNotifyIntervalMs || DEFAULT_PROGRESS_NOTIFY_INTERVAL_MS);
  const encoder = new WatchEncoder(server);
  // The gauges follow the hub, so every way a watcher ends (client cancel, stream close, compaction
  // cancel) and every move to or from the unsynced group is counted, recipes' watchers included.
  hub.onStats((s) => {
    metrics.watchStreamTotal.set(s.streams);
    metrics.watcherTotal.set(s.synced + s.unsynced);
    metrics.slowWatcherTotal.set(s.unsynced);
  });
  return {
    Watch: (call: grpc.ServerDuplexStream<WatchRequestMsg, Buffer>) => {
      const requireLeader = requiresLeader(call.metadata);
      if (requireLeader && server.leader === 0n) {
        call.emit('error', toServiceError(new ErrNoLeader()));
        return;
      }
      let inflight = 0;
      let pumpScheduled = false;
      let ended = false;
      const schedulePump = (): void => {
        if (pumpScheduled || ended) return;
        pumpScheduled = true;
        setImmediate(pump);
      };
      const written = (): void => {
        inflight--;
        schedulePump();
      };
      const stream: WatchStream = hub.newStream(schedulePump);
      function pump(): void {
        pumpScheduled = false;
        while (!ended && inflight < STREAM_INFLIGHT_WRITES) {
          const resp = stream.next();
          if (resp === undefined) return;
          if (resp.events.length > 0) metrics.eventsTotal.inc(resp.events.length);
          for (const bytes of encoder.encode(resp, maxFragmentBytes)) {
            inflight++;
            call.write(bytes, written);
          }
        }
      }

      const jitter = 1 + Math.random() * PROGRESS_NOTIFY_JITTER_FRACTION;
      const progressTimer = setInterval(() => stream.progressTick(), intervalMs * jitter);
      progressTimer.unref();
      const stopMonitor = requireLeader ? leaderMonitor(server).register(() => finish(new ErrNoLeader())) : undefined;

      function finish(err?: Error): void {
        if (ended) return;
        ended = true;
        clearInterval(progressTimer);
        stopMonitor?.();
        hub.closeStream(stream);
        if (err) call.emit('error', toServiceError(err));
      }

      call.on('data', (req: WatchRequestMsg) => {
        if (ended) return;
        switch (req.request_union) {
          case 'create_request':
            if (req.create_request) {
              stream.watch(toWatchCreate(req.create_request));
            }
            break;
          case 'cancel_request':
            if (req.cancel_request) stream.cancel(Number(req.cancel_request.watch_id));
            break;
          case 'progress_request':
            stream.requestProgress();
            break;
          default:
            break; // etcd ignores a request with no known field
        }
      });
      // A client half-close does not end the stream: etcd keeps sending until the client cancels.
      call.on('end', () => undefined);
      call.on('cancelled', () => finish());
      call.on('close', () => finish());
      call.on('error', () => finish());
    },
  };
}

export function requiresLeader(md: grpc.Metadata): boolean {
  // clientv3.WithRequireLeader sets "hasleader: true" (rpctypes.MetadataRequireLeaderKey).
  return md.get('hasleader').some((v) => String(v) === 'true');
}

// ---------------------------------------------------------------- hasleader

/**
 * etcd's monitorLeader: every election timeout, count whether the member has a leader; after
 * MAX_NO_LEADER_COUNT checks without one, cancel every stream that asked for `hasleader`.
 * One per server, shared by the Watch and LeaseKeepAlive streams.
 */
export class LeaderMonitor {
  private readonly streams = new Set<() => void>();
  private timer: NodeJS.Timeout | undefined;
  private noLeaderCount = 0;

  constructor(private readonly server: ServerInfo) {}

  register(cancel: () => void): () => void {
    this.streams.add(cancel);
    if (!this.timer) {
      this.timer = setInterval(() => this.check(), this.server.cfg.electionTimeoutMs);
      this.timer.unref();
    }
    return () => {
      this.streams.delete(cancel);
      if (this.streams.size === 0 && this.timer) {
        clearInterval(this.timer);
        this.timer = undefined;
        this.noLeaderCount = 0;
      }
    };
  }

  private check(): void {
    this.noLeaderCount = this.server.leader === 0n ? this.noLeaderCount + 1 : 0;
    if (this.noLeaderCount < MAX_NO_LEADER_COUNT) return;
    for (const cancel of [...this.streams]) cancel();
  }
}

const monitors = new WeakMap<ServerInfo, LeaderMonitor>();

export function leaderMonitor(server: ServerInfo): LeaderMonitor {
  let m = monitors.get(server);
  if (!m) {
    m = new LeaderMonitor(server);
    monitors.set(server, m);
  }
  return m;
}

// ---------------------------------------------------------------- encoding

/**
 * Protobuf encoding of WatchResponse (rpc.proto) and mvccpb.Event / KeyValue (kv.proto), with
 * proto3 default values omitted as gogo/protobuf does. Encoded events are cached per events array
 * (the hub shares one array among all watchers that receive the same events of a commit).
 */
export class WatchEncoder {
  private readonly eventsCache = new WeakMap<readonly Event[], { bytes: Buffer; sizes: number[] }>();

  constructor(private readonly server: { header(rev: number): ResponseHeader }) {}

  /** The response's bytes: one buffer, or several fragments when it is too large and asked to be split. */
  encode(r: WatchResponse, maxFragmentBytes: number): Buffer[] {
    const head = this.head(r, false);
    const events = this.events(r.events);
    if (!r.fragment || r.events.length < 2 || head.length + events.bytes.length < maxFragmentBytes) {
      return [Buffer.concat([head, events.bytes])];
    }
    return this.fragments(r, events, maxFragmentBytes);
  }

  /** etcd sendFragments: greedy pieces, each >= 1 event, all but the last with fragment=true. */
  private fragments(r: WatchResponse, events: { bytes: Buffer; sizes: number[] }, maxBytes: number): Buffer[] {
    const head = this.head(r, true);
    const out: Buffer[] = [];
    let start = 0;
    let offset = 0;
    while (start < events.sizes.length) {
      let size = head.length;
      let end = start;
      let bytesEnd = offset;
      while (end < events.sizes.length) {
        const next = size + events.sizes[end];
        if (end > start && next >= maxBytes) break;
        size = next;
        bytesEnd += events.sizes[end];
        end++;
      }
      const last = end === events.sizes.length;
      out.push(Buffer.concat([last ? this.head(r, false) : head, events.bytes.subarray(offset, bytesEnd)]));
      start = end;
      offset = bytesEnd;
    }
    return out;
  }

  private head(r: WatchResponse, fragment: boolean): Buffer {
    const w = new ProtoWriter();
    const h = this.server.header(r.revision);
    const hw = new ProtoWriter();
    hw.uint64(1, h.cluster_id);
    hw.uint64(2, h.member_id);
    hw.uint64(3, h.revision);
    hw.uint64(4, h.raft_term);
    w.message(1, hw.finish());
    w.uint64(2, r.watchId);
    w.bool(3, r.created);
    w.bool(4, r.canceled);
    w.uint64(5, r.compactRevision);
    w.string(6, r.cancelReason);
    w.bool(7, fragment);
    return w.finish();
  }

  private events(events: readonly Event[]): { bytes: Buffer; sizes: number[] } {
    if (events.length === 0) return EMPTY_EVENTS;
    let cached = this.eventsCache.get(events);
    if (!cached) {
      const parts: Buffer[] = [];
      const sizes: number[] = [];
      for (const ev of events) {
        const w = new ProtoWriter();
        w.message(11, encodeEvent(ev));
        const b = w.finish();
        parts.push(b);
        sizes.push(b.length);
      }
      cached = { bytes: Buffer.concat(parts), sizes };
      this.eventsCache.set(events, cached);
    }
    return cached;
  }
}

const EMPTY_EVENTS = { bytes: Buffer.alloc(0), sizes: [] as number[] };
const kvCache = new WeakMap<KeyValue, Buffer>();

function encodeEvent(ev: Event): Buffer {
  const w = new ProtoWriter();
  w.uint64(1, ev.type === 'PUT' ? 0 : 1);
  w.message(2, encodeKv(ev.kv));
  if (ev.prevKv) w.message(3, encodeKv(ev.prevKv));
  return w.finish();
}

function encodeKv(kv: KeyValue): Buffer {
  let b = kvCache.get(kv);
  if (!b) {
    const w = new ProtoWriter();
    w.bytes(1, kv.key);
    w.uint64(2, kv.createRevision);
    w.uint64(3, kv.modRevision);
    w.uint64(4, kv.version);
    w.bytes(5, kv.value);
    w.uint64(6, kv.lease);
    b = w.finish();
    kvCache.set(kv, b);
  }
  return b;
}

/** A minimal protobuf writer: varint and length-delimited fields, zero values omitted (proto3). */
class ProtoWriter {
  private readonly parts: Buffer[] = [];
  private readonly scratch: number[] = [];

  /** A varint field (int64/uint64/bool/enum); negative values are encoded as 64-bit two's complement. */
  uint64(field: number, value: number | string | bigint): void {
    let v = typeof value === 'bigint' ? value : typeof value === 'number' ? (Number.isSafeInteger(value) ? value : BigInt(value)) : BigInt(value);
    if (v === 0 || v === 0n) return;
    this.tag(field, 0);
    if (typeof v === 'number' && v > 0) {
      while (v > 0x7f) {
        this.scratch.push((v % 0x80) | 0x80);
        v = Math.floor(v / 0x80);
      }
      this.scratch.push(v);
    } else {
      let u = BigInt.asUintN(64, BigInt(v));
      while (u > 0x7fn) {
        this.scratch.push(Number(u & 0x7fn) | 0x80);
        u >>= 7n;
      }
      this.scratch.push(Number(u));
    }
  }

  bool(field: number, value: boolean): void {
    if (value) this.uint64(field, 1);
  }

  string(field: number, value: string): void {
    if (value.length > 0) this.bytes(field, Buffer.from(value, 'utf8'));
  }

  bytes(field: number, value: Buffer): void {
    if (value.length === 0) return;
    this.lengthDelimited(field, value);
  }

  /** An embedded message; present even when empty (a set sub-message is not a default value). */
  message(field: number, value: Buffer): void {
    this.lengthDelimited(field, value);
  }

  finish(): Buffer {
    this.flushScratch();
    return this.parts.length === 1 ? this.parts[0] : Buffer.concat(this.parts);
  }

  private lengthDelimited(field: number, value: Buffer): void {
    this.tag(field, 2);
    let n = value.length;
    while (n > 0x7f) {
      this.scratch.push((n & 0x7f) | 0x80);
      n >>>= 7;
    }
    this.scratch.push(n);
    this.flushScratch();
    this.parts.push(value);
  }

  private tag(field: number, wireType: number): void {
    let t = (field << 3) | wireType;
    while (t > 0x7f) {
      this.scratch.push((t & 0x7f) | 0x80);
      t >>>= 7;
    }
    this.scratch.push(t);
  }

  private flushScratch(): void {
    if (this.scratch.length > 0) {
      this.parts.push(Buffer.from(this.scratch));
      this.scratch.length = 0;
    }
  }
}
