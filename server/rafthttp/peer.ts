import * as grpc from '@grpc/grpc-js';
import { MessageType, type Message } from '../../raft';
import { hexId, startProber } from './peer-metrics';
import { REMOVED_MEMBER_DETAILS, identity, senderMetadata } from './peer-service';
import { encodeBatch } from './raft-codec';
import { sendSnapshot } from './snapshot-sender';
import { peerChannelOptions, peerCredentials } from './tls';
import type { PeerTransport } from './transport';

/**
 * The sending side towards one remote member (etcd's rafthttp/peer.go): one long-lived stream of
 * Raft batches with a bounded queue, snapshots on their own stream (snapshot-sender.ts), and the
 * unary calls forwarded to the peer.
 */

/** Messages queued for one peer before new ones are dropped (etcd: streamBufSize = 4096). */
export const PEER_QUEUE_LIMIT = 4096;
/** Reconnect backoff after a stream fails. */
export const PEER_RECONNECT_MS = 100;
/** At most one "lost streaming connection" line per peer per interval. */
export const PEER_FAILURE_LOG_INTERVAL_MS = 5_000;
/** Deadline for forwarded leader-only requests (lease renew / time-to-live). */
export const FORWARD_TIMEOUT_MS = 5_000;
/** How long one wait for a peer channel's connectivity change lasts before it is re-armed. */
export const CONNECTIVITY_WATCH_MS = 60_000;

/** The sending side towards one remote member. */
export class Peer {
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
      'grpc.enable_channelz': 0,
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
    this.scheduleFlush();
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => this.flush());
  }

  private open(): grpc.ClientWritableStream<Buffer> | undefined {
    if (this.stream) return this.stream;
    if (Date.now() < this.retryAt) return undefined;
    const stream = this.client.makeClientStreamRequest<Buffer, Buffer>(
      '/cairnpb.Peer/Send',
      identity,
      identity,
      senderMetadata(this.t.memberId),
      {},
      (err) => {
        if (this.stream === stream) {
          this.stream = undefined;
          // A stream that died while flow control held it never drains: without this the peer
          // would stay blocked, and the link silent, for good (found by the long Jepsen run).
          this.blocked = false;
          // What queued up while it was blocked must move on too (to a new stream, or be dropped
          // while reconnecting): a full queue that nothing flushes drops every later message in
          // send(), which never schedules a flush then, so the link would fall silent for good.
          if (this.queue.length > 0) this.scheduleFlush();
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
    const buf = encodeBatch(this.t.clusterId, this.t.memberId, batch);
    this.t.metrics?.peerSentBytes.inc(this.to, buf.length);
    const ok = stream.write(buf);
    if (!ok) this.blocked = true;
  }

  sendSnapshot(m: Message): Promise<void> {
    return sendSnapshot(this.client, this.t, m, this.t.handlers.snapshotEntries());
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
