import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type * as net from 'node:net';
import type { TLSInfo } from '../transport/tls/tls-info';
import { listenPeerTls, peerCredentials } from './tls';
import { listenOptions, urlScheme } from '../transport/url-scheme';
import { MessageType, type Message } from '../../raft';
import { decodeBatch } from './raft-codec';
import type { SnapshotEntries } from './snapshot-sender';
import { handleSnapshot } from './snapshot-handler';
import { PEER_SERVICE, REMOVED_MEMBER_DETAILS, dialAddress, identity, learnerReadyReq, learnerReadyResp, leaseRenewReq, leaseRenewResp, membersReq, membersResp, normalizePeerUrl, senderFromMetadata, ttlReq, ttlResp } from './peer-service';
import { hexId, snapshotTransfer, type PeerMetrics } from './peer-metrics';
import { PeerActivity } from './peer-activity';
import { Peer } from './peer';

/**
 * Raft traffic between members over HTTP/2 (gRPC), on --listen-peer-urls (etcd's rafthttp
 * transport.go): the Peer service this member serves, and one Peer (peer.ts) per remote member.
 * One long-lived client stream per ordered pair of members carries batches of messages; a batch
 * is flushed once per event-loop turn, so a busy leader sends many appends in one write. Raft
 * tolerates loss, so a peer that is down or slow drops messages (bounded queue) and is reported
 * unreachable, instead of buffering without limit. Snapshots travel on their own stream, chunked
 * (snapshot-sender.ts, snapshot-handler.ts).
 * Every batch carries the cluster ID; a member of another cluster is refused.
 */

/** Deadline for each peer's answer when a joining member fetches the member list. */
export const FETCH_MEMBERS_TIMEOUT_MS = 2_000;

export type { SnapshotEntries } from './snapshot-sender';
export { PEER_QUEUE_LIMIT, PEER_RECONNECT_MS, PEER_FAILURE_LOG_INTERVAL_MS, FORWARD_TIMEOUT_MS, CONNECTIVITY_WATCH_MS } from './peer';
// The codecs live with the service definition; lease-loop.ts and components.ts import them from here.
export { leaseRenewReq, leaseRenewResp, ttlReq, ttlResp, learnerReadyReq, learnerReadyResp, REMOVED_MEMBER_DETAILS } from './peer-service';

class PeerError extends Error {
  constructor(
    readonly code: grpc.status,
    message: string,
  ) {
    super(message);
  }
}

/** One member's view of the cluster, as a joining member fetches it. */
export interface FetchedMembers {
  clusterId: bigint;
  members: Buffer[];
  appliedIndex: number;
  removed: bigint[];
}

export interface PeerHandlers {
  /** Raft messages from a peer of this cluster. */
  onMessages(messages: Message[]): void;
  /**
   * A MsgSnap, with its backend data read from the stream as it is consumed: save it (to disk), then
   * step the message; the sender is answered when this resolves (snapshot-handler.ts).
   */
  onSnapshot(message: Message, entries: SnapshotEntries): Promise<void>;
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
  private readonly server = new grpc.Server({ 'grpc.max_receive_message_length': -1, 'grpc.max_send_message_length': -1, 'grpc.enable_channelz': 0 });
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
      SendSnapshot: (call: grpc.ServerReadableStream<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => handleSnapshot(call, callback, { clusterId: () => this.clusterId, metrics: this.metrics, onSnapshot: (m, entries) => this.handlers.onSnapshot(m, entries) }),
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
      const scheme = urlScheme(url);
      if (scheme.secure) {
        // Never plaintext on an https:// or unixs:// URL (startMember validated the peer TLS settings).
        if (!this.tls) throw new Error(`cannot listen on TLS for ${url.host}: KeyFile and CertFile are not presented`);
        this.tlsListeners.push(await listenPeerTls(this.server, url, this.tls, this.log));
        this.log.info({ address: url.href }, 'listening for peers securely');
        continue;
      }
      const o = listenOptions(url, 'peer', 2380);
      const addr = o.path !== undefined ? `unix:${o.path}` : `${o.host}:${o.port}`;
      await new Promise<void>((resolve, reject) => {
        this.server.bindAsync(addr, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve()));
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
    // Who sent this stream, for etcd_network_peer_received_failures_total{From}: the member ID the
    // sender puts in the stream's metadata, else the one of a batch it already sent, else (as etcd
    // labels a pipeline body it could not read) the remote address.
    let sender = senderFromMetadata(call.metadata);
    call.on('data', (buf: Buffer) => {
      if (failed) return;
      let batch;
      try {
        batch = decodeBatch(buf);
      } catch (e) {
        failed = true;
        this.metrics?.peerReceivedFailures.inc({ From: sender ?? call.getPeer() });
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
      sender ??= hexId(batch.from);
      this.metrics?.peerReceivedBytes.inc({ From: hexId(batch.from) }, buf.length);
      this.handlers.onMessages(batch.messages);
    });
    call.on('end', () => {
      if (!failed) callback(null, Buffer.alloc(0));
    });
    call.on('error', () => undefined);
  }

  close(): void {
    for (const p of this.peers.values()) p.close();
    this.peers.clear();
    for (const l of this.tlsListeners) l.close();
    this.server.forceShutdown();
  }
}
