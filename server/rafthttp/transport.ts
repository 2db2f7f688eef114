import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type * as net from 'node:net';
import type { TLSInfo } from '../transport/tls/tls-info';
import { listenPeerTls, peerChannelOptions, peerCredentials } from './tls';
import { MessageType, type Message } from '../../raft';
import { messageCodec } from '../../proto';
import { decodeBatch, encodeBatch, messageFromWire, messageToWire, type WireMessage } from './raft-codec';

/**
 * Raft traffic between members over HTTP/2 (gRPC), on --listen-peer-urls (etcd's rafthttp).
 * One long-lived client stream per ordered pair of members carries batches of messages; a batch
 * is flushed once per event-loop turn, so a busy leader sends many appends in one write. Raft
 * tolerates loss, so a peer that is down or slow drops messages (bounded queue) and is reported
 * unreachable, instead of buffering without limit. Snapshots travel on their own stream, chunked.
 * Every batch carries the cluster ID; a member of another cluster is refused.
 */

/** Messages queued for one peer before new ones are dropped (etcd: streamBufSize = 4096). */
export const PEER_QUEUE_LIMIT = 4096;
/** Reconnect backoff after a stream fails. */
export const PEER_RECONNECT_MS = 100;
/** At most one "lost streaming connection" line per peer per interval. */
export const PEER_FAILURE_LOG_INTERVAL_MS = 5_000;
/** Backend entries per snapshot chunk. */
export const SNAPSHOT_CHUNK_ENTRIES = 1024;
/** Deadline for forwarded leader-only requests (lease renew / time-to-live). */
export const FORWARD_TIMEOUT_MS = 5_000;
/** Deadline for each peer's answer when a joining member fetches the member list. */
export const FETCH_MEMBERS_TIMEOUT_MS = 2_000;

import { hexId, PROBE_PATH, snapshotTransfer, startProber, type PeerMetrics } from './peer-metrics';
import { PeerActivity } from './peer-activity';
const identity = (b: Buffer): Buffer => b;

/** The Peer service with raw-bytes framing: we encode batches ourselves (raft-codec.ts). */
const PEER_SERVICE: grpc.ServiceDefinition = {
  Send: { path: '/cairnpb.Peer/Send', requestStream: true, responseStream: false, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity, originalName: 'Send' },
  SendSnapshot: { path: '/cairnpb.Peer/SendSnapshot', requestStream: true, responseStream: false, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity, originalName: 'SendSnapshot' },
  LeaseRenew: { path: '/cairnpb.Peer/LeaseRenew', requestStream: false, responseStream: false, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity, originalName: 'LeaseRenew' },
  LeaseTimeToLive: { path: '/cairnpb.Peer/LeaseTimeToLive', requestStream: false, responseStream: false, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity, originalName: 'LeaseTimeToLive' },
  LearnerReady: { path: '/cairnpb.Peer/LearnerReady', requestStream: false, responseStream: false, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity, originalName: 'LearnerReady' },
  Probe: { path: PROBE_PATH, requestStream: false, responseStream: false, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity, originalName: 'Probe' },
  Members: { path: '/cairnpb.Peer/Members', requestStream: false, responseStream: false, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity, originalName: 'Members' },
};

interface SnapshotChunkMsg {
  cluster_id: string;
  from: string;
  message: WireMessage | null;
  keys: Buffer[];
  values: Buffer[];
  last: boolean;
}
const chunkCodec = messageCodec<SnapshotChunkMsg>('cairnpb.SnapshotChunk');
export const leaseRenewReq = messageCodec<{ cluster_id: string; ID: string }>('cairnpb.LeaseRenewRequest');
export const leaseRenewResp = messageCodec<{ TTL: string; not_found: boolean }>('cairnpb.LeaseRenewResponse');
export const ttlReq = messageCodec<{ cluster_id: string; ID: string; keys: boolean }>('cairnpb.LeaseTimeToLiveForward');
export const ttlResp = messageCodec<{ found: boolean; TTL: string; grantedTTL: string; keys: Buffer[] }>('cairnpb.LeaseTimeToLiveAnswer');
export const learnerReadyReq = messageCodec<{ cluster_id: string; ID: string }>('cairnpb.LearnerReadyRequest');
export const learnerReadyResp = messageCodec<{ ready: boolean }>('cairnpb.LearnerReadyResponse');
export const membersReq = messageCodec<{ cluster_id: string }>('cairnpb.MembersRequest');
export const membersResp = messageCodec<{ cluster_id: string; members: Buffer[]; applied_index: string; removed: string[] }>('cairnpb.MembersResponse');

/** A peer URL in one spelling (`http://h:2380` and `http://h:2380/` alike); other keys (names) as they are. */
function normalizePeerUrl(key: string): string {
  if (!key.includes('://')) return key;
  try {
    return new URL(key).href.replace(/\/$/, '');
  } catch {
    return key;
  }
}

/** host:port to dial for a peer URL (localhost as 127.0.0.1, etcd's default peer port 2380). */
function dialAddress(peerUrl: string): string {
  const url = new URL(peerUrl);
  return `${url.hostname === 'localhost' ? '127.0.0.1' : url.hostname}:${url.port || 2380}`;
}

/** One member's view of the cluster, as a joining member fetches it. */
export interface FetchedMembers {
  clusterId: bigint;
  members: Buffer[];
  appliedIndex: number;
  removed: bigint[];
}

export type SnapshotEntries = AsyncIterable<[Buffer, Buffer][]>;

export interface PeerHandlers {
  /** Raft messages from a peer of this cluster. */
  onMessages(messages: Message[]): void;
  /** A MsgSnap with its backend data, fully received. */
  onSnapshot(message: Message, entries: [Buffer, Buffer][]): void;
  /** The backend data to send with a MsgSnap (consistent as of the first chunk). */
  snapshotEntries(): SnapshotEntries;
  reportUnreachable(id: bigint): void;
  reportSnapshot(id: bigint, ok: boolean): void;
  leaseRenew(id: bigint): Promise<{ ttl: number; notFound: boolean }>;
  leaseTimeToLive(id: bigint, keys: boolean): Promise<{ found: boolean; ttl: number; grantedTtl: number; keys: Buffer[] }>;
  /** On the leader: whether a learner's log is close enough to be promoted (etcd's isLearnerReady). */
  learnerReady(id: bigint): Promise<boolean>;
  members(): Buffer[];
  /** How far this member has applied, so a joining member can prefer the most current list. */
  appliedIndex(): number;
  /** IDs removed from the cluster: their traffic is refused and they may not be reused. */
  isRemoved(id: bigint): boolean;
  removedIds(): bigint[];
  /** A peer told us this member was removed from the cluster (etcd exits on that). */
  onRemovedFromCluster(): void;
}

/** etcd's rafthttp answer to a removed member (HTTP 410 there, FAILED_PRECONDITION here). */
export const REMOVED_MEMBER_DETAILS = 'the member has been permanently removed from the cluster';

class PeerError extends Error {
  constructor(
    readonly code: grpc.status,
    message: string,
  ) {
    super(message);
  }
}

/** How long one wait for a peer channel's connectivity change lasts before it is re-armed. */
export const CONNECTIVITY_WATCH_MS = 60_000;

/** The sending side towards one remote member. */
class Peer {
  private client: grpc.Client;
  private stream: grpc.ClientWritableStream<Buffer> | undefined;
  private queue: Message[] = [];
  private flushScheduled = false;
  private blocked = false;
  private retryAt = 0;
  private closed = false;
  private lastFailureLogAt = 0;
  private lastDropLogAt = 0;
  private droppedSinceLog = 0;
  private readonly stopProber: () => void;
  private readonly to: { To: string };

  constructor(
    readonly id: bigint,
    readonly target: string,
    private readonly t: PeerTransport,
    peerUrl: string,
  ) {
    this.client = new grpc.Client(target, peerCredentials(t.tls, peerUrl, t.log), {
      ...peerChannelOptions(peerUrl, target),
      'grpc.max_send_message_length': -1,
      'grpc.max_receive_message_length': -1,
      'grpc.keepalive_time_ms': 10_000,
      'grpc.keepalive_timeout_ms': 5_000,
      'grpc.initial_reconnect_backoff_ms': PEER_RECONNECT_MS,
      'grpc.max_reconnect_backoff_ms': 1_000,
      'grpc.use_local_subchannel_pool': 1,
    });
    this.watchConnectivity();
    this.to = { To: hexId(id) };
    const m = this.t.metrics;
    this.stopProber = m ? startProber((path, req, ms) => this.unary(path, req, ms), (sec) => m.peerRoundTripSeconds.observe(this.to, sec)) : () => undefined;
  }

  /** etcd counts every message it could not hand to the peer's stream as a send failure. */
  private sendFailed(messages: number): void {
    this.t.metrics?.peerSentFailures.inc(this.to, messages);
  }

  /** Keeps the channel connecting and reports READY / not READY to the transport's peer activity. */
  private watchConnectivity(): void {
    if (this.closed) return;
    const channel = this.client.getChannel();
    const state = channel.getConnectivityState(true);
    if (state === grpc.connectivityState.READY) this.t.activity.connected(this.id);
    else this.t.activity.disconnected(this.id);
    channel.watchConnectivityState(state, Date.now() + CONNECTIVITY_WATCH_MS, () => this.watchConnectivity());
  }

  send(m: Message): void {
    if (this.closed) return;
    if (this.queue.length >= PEER_QUEUE_LIMIT) {
      // etcd's rafthttp logs this drop too ("dropped internal Raft message since sending buffer is
      // full"): without it a link that silently drops everything cannot be told from a quiet one.
      this.droppedSinceLog++;
      if (Date.now() - this.lastDropLogAt >= PEER_FAILURE_LOG_INTERVAL_MS) {
        this.lastDropLogAt = Date.now();
        this.t.log.warn({ peer: this.id.toString(16), type: MessageType[m.type], dropped: this.droppedSinceLog, blocked: this.blocked, 'stream-open': this.stream !== undefined }, 'dropped raft message since sending buffer is full');
        this.droppedSinceLog = 0;
      }
      this.sendFailed(1);
      this.t.handlers.reportUnreachable(this.id);
      return;
    }
    this.queue.push(m);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  private open(): grpc.ClientWritableStream<Buffer> | undefined {
    if (this.stream) return this.stream;
    if (Date.now() < this.retryAt) return undefined;
    const stream = this.client.makeClientStreamRequest<Buffer, Buffer>(
      '/cairnpb.Peer/Send',
      identity,
      identity,
      new grpc.Metadata(),
      {},
      (err) => {
        if (this.stream === stream) {
          this.stream = undefined;
          // A stream that died while flow control held it never drains: without this the peer
          // would stay blocked, and the link silent, for good (found by the long Jepsen run).
          this.blocked = false;
        }
        if (err && !this.closed) {
          if (err.code === grpc.status.FAILED_PRECONDITION) {
            this.t.log.error({ peer: this.id.toString(16), err: err.details }, 'peer refused our stream');
            if (err.details === REMOVED_MEMBER_DETAILS) this.t.handlers.onRemovedFromCluster();
          }
          this.sendFailed(1);
          this.retryAt = Date.now() + PEER_RECONNECT_MS;
          if (Date.now() - this.lastFailureLogAt >= PEER_FAILURE_LOG_INTERVAL_MS) {
            this.lastFailureLogAt = Date.now();
            this.t.log.warn({ peer: this.id.toString(16), target: this.target, code: err.code, err: err.details }, 'lost streaming connection with remote peer; reconnecting');
          }
          this.t.handlers.reportUnreachable(this.id);
        }
      },
    );
    stream.on('drain', () => {
      if (this.stream !== stream) return;
      this.blocked = false;
      if (this.queue.length > 0) this.flush();
    });
    stream.on('error', () => undefined);
    this.stream = stream;
    return stream;
  }

  private flush(): void {
    this.flushScheduled = false;
    if (this.closed || this.queue.length === 0 || this.blocked) return;
    const stream = this.open();
    if (!stream) {
      // Reconnecting: drop what is queued; Raft retransmits what matters.
      this.sendFailed(this.queue.length);
      this.queue = [];
      this.t.handlers.reportUnreachable(this.id);
      return;
    }
    const batch = this.queue;
    this.queue = [];
    const buf = Buffer.from(encodeBatch(this.t.clusterId, this.t.memberId, batch));
    this.t.metrics?.peerSentBytes.inc(this.to, buf.length);
    const ok = stream.write(buf);
    if (!ok) this.blocked = true;
  }

  async sendSnapshot(m: Message): Promise<void> {
    const call = this.client.makeClientStreamRequest<Buffer, Buffer>('/cairnpb.Peer/SendSnapshot', identity, identity, new grpc.Metadata(), {}, () => undefined);
    const done = new Promise<void>((resolve, reject) => {
      call.on('status', (s: grpc.StatusObject) => (s.code === grpc.status.OK ? resolve() : reject(new Error(s.details))));
      call.on('error', reject);
    });
    // The stream can fail while chunks are still being written, before `done` is awaited below;
    // the rejection is observed there, so do not let it count as unhandled meanwhile.
    done.catch(() => undefined);
    const write = (buf: Buffer): Promise<void> =>
      new Promise((resolve) => {
        if (call.write(buf)) resolve();
        else call.once('drain', () => resolve());
      });
    const base = { cluster_id: this.t.clusterId.toString(), from: this.t.memberId.toString() };
    await write(Buffer.from(chunkCodec.encode({ ...base, message: messageToWire(m), keys: [], values: [], last: false })));
    let keys: Buffer[] = [];
    let values: Buffer[] = [];
    for await (const chunk of this.t.handlers.snapshotEntries()) {
      for (const [k, v] of chunk) {
        keys.push(k);
        values.push(v);
        if (keys.length >= SNAPSHOT_CHUNK_ENTRIES) {
          await write(Buffer.from(chunkCodec.encode({ ...base, message: null, keys, values, last: false })));
          keys = [];
          values = [];
        }
      }
    }
    await write(Buffer.from(chunkCodec.encode({ ...base, message: null, keys, values, last: true })));
    call.end();
    await done;
  }

  unary(path: string, req: Uint8Array, timeoutMs = FORWARD_TIMEOUT_MS): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      this.client.makeUnaryRequest(path, identity, identity, Buffer.from(req), new grpc.Metadata(), { deadline: Date.now() + timeoutMs }, (err, res) => {
        if (err || !res) reject(err ?? new Error('empty response'));
        else resolve(res);
      });
    });
  }

  close(): void {
    this.closed = true;
    this.stopProber();
    this.t.activity.disconnected(this.id);
    this.stream?.end();
    this.client.close();
  }
}

export interface PeerTransportOptions {
  memberId: bigint;
  clusterId: bigint;
  log: Logger;
  handlers: PeerHandlers;
  /**
   * --peer-dial-override: dial this host:port instead of a peer's advertised URL. Keyed by the
   * peer's advertised peer URL or by its member name; resolved whenever a peer is added or its
   * name becomes known, so members added later are covered too.
   */
  dialOverride: ReadonlyMap<string, string>;
  /** The member name for an ID, when known (names arrive through the log after MemberAdd). */
  memberName(id: bigint): string | undefined;
  /** Peer TLS (--peer-*): serves https:// peer URLs and dials https:// peers (rafthttp/tls.ts). */
  tls?: TLSInfo;
  /** etcd_network_* (peer-metrics.ts); active_peers{Local, Remote} is 1 while a peer's channel is up. */
  metrics?: PeerMetrics;
}

export class PeerTransport {
  readonly memberId: bigint;
  clusterId: bigint;
  readonly log: Logger;
  readonly handlers: PeerHandlers;
  private readonly peers = new Map<bigint, Peer>();
  private readonly server = new grpc.Server({ 'grpc.max_receive_message_length': -1, 'grpc.max_send_message_length': -1 });
  private readonly dialOverride: ReadonlyMap<string, string>;
  private readonly memberName: (id: bigint) => string | undefined;
  readonly activity: PeerActivity;
  readonly tls: TLSInfo | undefined;
  private readonly tlsListeners: net.Server[] = [];
  readonly metrics: PeerMetrics | undefined;

  constructor(opts: PeerTransportOptions) {
    this.tls = opts.tls;
    this.memberId = opts.memberId;
    this.clusterId = opts.clusterId;
    this.log = opts.log;
    this.handlers = opts.handlers;
    this.dialOverride = new Map([...opts.dialOverride].map(([k, v]) => [normalizePeerUrl(k), v]));
    this.memberName = opts.memberName;
    this.metrics = opts.metrics;
    this.activity = new PeerActivity(opts.memberId, opts.metrics);
    this.server.addService(PEER_SERVICE, {
      Send: (call: grpc.ServerReadableStream<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => this.onSend(call, callback),
      SendSnapshot: (call: grpc.ServerReadableStream<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => this.onSnapshot(call, callback),
      LeaseRenew: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
        const req = leaseRenewReq.decode(call.request);
        if (!this.sameCluster(req.cluster_id, callback)) return;
        this.handlers.leaseRenew(BigInt(req.ID)).then(
          (r) => callback(null, Buffer.from(leaseRenewResp.encode({ TTL: String(r.ttl), not_found: r.notFound }))),
          (e: unknown) => callback({ code: grpc.status.UNAVAILABLE, details: String(e instanceof Error ? e.message : e) }),
        );
      },
      LeaseTimeToLive: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
        const req = ttlReq.decode(call.request);
        if (!this.sameCluster(req.cluster_id, callback)) return;
        this.handlers.leaseTimeToLive(BigInt(req.ID), req.keys).then(
          (r) => callback(null, Buffer.from(ttlResp.encode({ found: r.found, TTL: String(r.ttl), grantedTTL: String(r.grantedTtl), keys: r.keys }))),
          (e: unknown) => callback({ code: grpc.status.UNAVAILABLE, details: String(e instanceof Error ? e.message : e) }),
        );
      },
      LearnerReady: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
        const req = learnerReadyReq.decode(call.request);
        if (!this.sameCluster(req.cluster_id, callback)) return;
        this.handlers.learnerReady(BigInt(req.ID)).then(
          (ready) => callback(null, Buffer.from(learnerReadyResp.encode({ ready }))),
          (e: unknown) => callback({ code: grpc.status.UNAVAILABLE, details: String(e instanceof Error ? e.message : e) }),
        );
      },
      Probe: (_call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => callback(null, Buffer.alloc(0)),
      Members: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
        // A joining member does not know the cluster ID yet, so this one is not checked.
        callback(
          null,
          Buffer.from(
            membersResp.encode({
              cluster_id: this.clusterId.toString(),
              members: this.handlers.members(),
              applied_index: String(this.handlers.appliedIndex()),
              removed: this.handlers.removedIds().map(String),
            }),
          ),
        );
      },
    });
  }

  private sameCluster(clusterId: string, callback: grpc.sendUnaryData<Buffer>): boolean {
    if (BigInt(clusterId) === this.clusterId) return true;
    callback({ code: grpc.status.FAILED_PRECONDITION, details: `cluster ID mismatch: local=${this.clusterId.toString(16)} remote=${BigInt(clusterId).toString(16)}` });
    return false;
  }

  async listen(urls: URL[]): Promise<void> {
    for (const url of urls) {
      if (url.protocol === 'https:') {
        // Never plaintext on an https:// URL (startMember validated the peer TLS settings).
        if (!this.tls) throw new Error(`cannot listen on TLS for ${url.host}: KeyFile and CertFile are not presented`);
        this.tlsListeners.push(await listenPeerTls(this.server, url, this.tls, this.log));
        this.log.info({ address: url.href }, 'listening for peers securely');
        continue;
      }
      const host = url.hostname === 'localhost' ? '127.0.0.1' : url.hostname.replace(/^\[|\]$/g, '');
      await new Promise<void>((resolve, reject) => {
        this.server.bindAsync(`${host}:${url.port || 2380}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve()));
      });
      this.log.info({ address: url.href }, 'listening for peers');
    }
  }

  /** Adds a peer, or redials it if its dial target changed (a dial override now resolves). */
  addPeer(id: bigint, peerUrls: readonly string[]): void {
    if (id === this.memberId || peerUrls.length === 0) return;
    const target = this.dialTarget(id, peerUrls);
    const existing = this.peers.get(id);
    if (existing?.target === target) return;
    if (existing) {
      this.log.info({ peer: id.toString(16), from: existing.target, to: target }, 'peer dial target changed');
      existing.close();
    }
    this.peers.set(id, new Peer(id, target, this, peerUrls[0]));
  }

  private dialTarget(id: bigint, peerUrls: readonly string[]): string {
    for (const u of peerUrls) {
      const byUrl = this.dialOverride.get(normalizePeerUrl(u));
      if (byUrl) return byUrl;
    }
    const name = this.memberName(id);
    const byName = name ? this.dialOverride.get(name) : undefined;
    if (byName) return byName;
    return dialAddress(peerUrls[0]);
  }

  removePeer(id: bigint): void {
    this.peers.get(id)?.close();
    this.peers.delete(id);
    this.activity.disconnected(id);
  }

  /** When the peer's current connection to us became active, or undefined while it is down (etcd's ActiveSince). */
  activeSince(id: bigint): number | undefined {
    return this.activity.since(id);
  }

  peerIds(): bigint[] {
    return [...this.peers.keys()];
  }

  hasPeer(id: bigint): boolean {
    return this.peers.has(id);
  }

  send(messages: readonly Message[]): void {
    for (const m of messages) {
      const peer = this.peers.get(m.to);
      if (!peer) continue;
      if (m.type === MessageType.MsgSnap) {
        const sent = this.metrics ? snapshotTransfer(this.metrics, 'send', m.to) : () => undefined;
        peer.sendSnapshot(m).then(
          () => {
            sent(true);
            this.handlers.reportSnapshot(m.to, true);
          },
          (e: unknown) => {
            sent(false);
            this.log.warn({ peer: m.to.toString(16), err: e instanceof Error ? e.message : String(e) }, 'failed to send snapshot');
            this.handlers.reportSnapshot(m.to, false);
          },
        );
      } else {
        peer.send(m);
      }
    }
  }

  /** A leader-only request forwarded to the leader (lease renew, time-to-live). */
  forward(to: bigint, path: string, req: Uint8Array): Promise<Buffer> {
    const peer = this.peers.get(to);
    if (!peer) return Promise.reject(new Error('leader unknown'));
    return peer.unary(path, req);
  }

  /**
   * Asks every peer URL for its member list (a joining member learns the cluster and its own ID).
   * All are asked, not the first that answers: a lagging peer may not have applied the latest
   * MemberRemove/MemberAdd yet, and would hand out a removed member's ID for the same peer URL.
   */
  static async fetchMembers(urls: string[], tlsInfo?: TLSInfo): Promise<FetchedMembers[]> {
    const ask = async (u: string): Promise<FetchedMembers> => {
      const client = new grpc.Client(dialAddress(u), peerCredentials(tlsInfo, u));
      try {
        const res = await new Promise<Buffer>((resolve, reject) => {
          client.makeUnaryRequest('/cairnpb.Peer/Members', identity, identity, Buffer.from(membersReq.encode({ cluster_id: '0' })), new grpc.Metadata(), { deadline: Date.now() + FETCH_MEMBERS_TIMEOUT_MS }, (err, r) => (err || !r ? reject(err) : resolve(r)));
        });
        const m = membersResp.decode(res);
        return { clusterId: BigInt(m.cluster_id), members: m.members, appliedIndex: Number(m.applied_index), removed: m.removed.map((x) => BigInt(x)) };
      } finally {
        client.close();
      }
    };
    const settled = await Promise.allSettled(urls.map(ask));
    const answers = settled.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    if (answers.length === 0) {
      const errs = settled.map((r) => (r.status === 'rejected' ? (r.reason instanceof Error ? r.reason.message : String(r.reason)) : ''));
      throw new Error(`could not fetch the member list from ${urls.join(',')}: ${errs.join('; ')}`);
    }
    return answers;
  }

  private onSend(call: grpc.ServerReadableStream<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>): void {
    let failed = false;
    call.on('data', (buf: Buffer) => {
      if (failed) return;
      let batch;
      try {
        batch = decodeBatch(buf);
      } catch (e) {
        failed = true;
        this.metrics?.peerReceivedFailures.inc({ From: '0' });
        callback(new PeerError(grpc.status.INVALID_ARGUMENT, `malformed raft batch: ${String(e)}`) as unknown as grpc.ServiceError);
        return;
      }
      if (batch.clusterId !== this.clusterId) {
        failed = true;
        this.log.warn({ remote: batch.from.toString(16), 'remote-cluster-id': batch.clusterId.toString(16) }, 'rejected raft traffic from another cluster');
        callback({ code: grpc.status.FAILED_PRECONDITION, details: `cluster ID mismatch: local=${this.clusterId.toString(16)} remote=${batch.clusterId.toString(16)}` });
        return;
      }
      if (this.handlers.isRemoved(batch.from)) {
        failed = true;
        this.log.warn({ remote: batch.from.toString(16) }, 'rejected raft traffic from a removed member');
        callback({ code: grpc.status.FAILED_PRECONDITION, details: REMOVED_MEMBER_DETAILS });
        return;
      }
      this.metrics?.peerReceivedBytes.inc({ From: hexId(batch.from) }, buf.length);
      this.handlers.onMessages(batch.messages);
    });
    call.on('end', () => {
      if (!failed) callback(null, Buffer.alloc(0));
    });
    call.on('error', () => undefined);
  }

  private onSnapshot(call: grpc.ServerReadableStream<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>): void {
    let message: Message | undefined;
    const entries: [Buffer, Buffer][] = [];
    let failed = false;
    let received: ((ok: boolean) => void) | undefined;
    call.on('data', (buf: Buffer) => {
      if (failed) return;
      const c = chunkCodec.decode(buf);
      if (!received && this.metrics) received = snapshotTransfer(this.metrics, 'receive', BigInt(c.from));
      this.metrics?.peerReceivedBytes.inc({ From: hexId(BigInt(c.from)) }, buf.length);
      if (BigInt(c.cluster_id) !== this.clusterId) {
        received?.(false);
        failed = true;
        callback({ code: grpc.status.FAILED_PRECONDITION, details: 'cluster ID mismatch' });
        return;
      }
      if (c.message) message = messageFromWire(c.message);
      for (let i = 0; i < c.keys.length; i++) entries.push([c.keys[i], c.values[i]]);
      if (c.last) {
        if (!message) {
          received?.(false);
          failed = true;
          callback({ code: grpc.status.INVALID_ARGUMENT, details: 'snapshot without its message' });
          return;
        }
        received?.(true);
        this.handlers.onSnapshot(message, entries);
        callback(null, Buffer.alloc(0));
      }
    });
    call.on('error', () => {
      if (!failed) received?.(false);
    });
  }

  close(): void {
    for (const p of this.peers.values()) p.close();
    this.peers.clear();
    for (const l of this.tlsListeners) l.close();
    this.server.forceShutdown();
  }
}
