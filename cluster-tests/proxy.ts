/**
 * The fault-injection layer on peer links: one TCP proxy per *ordered pair* of members (A→B).
 *
 * Why a proxy per ordered pair (and not one per member): a proxy in front of B's peer port sees A's
 * and C's connections arrive from 127.0.0.1 with random source ports and cannot tell them apart, so
 * it could only cut B off from everyone, inbound only (shared/reference/fault-injection-notes.md).
 * With `--peer-dial-override`, member A dials B through the proxy that exists for A→B alone, while
 * member and cluster IDs still come from the canonical `--initial-cluster` URLs. Everything A sends
 * to B rides connections A dialled (the Raft message stream, snapshots, forwarded lease renewals)
 * and so does everything B answers on them (the stream's final ack, HTTP/2 pings); B's own messages
 * to A ride B's connections, through the B→A proxy. So:
 * - a partition between A and B blocks both A→B and B→A;
 * - a one-way fault A↛B blocks only A→B, and B→A keeps working;
 * - delay and loss are set per ordered pair, too.
 * No root is needed, which suits a tool users run on their own laptops.
 *
 * Faults, and how they map onto a TCP byte stream:
 * - **blocked** (partition): connections are blackholed. Bytes from either side are read and
 *   discarded and new connections are accepted and blackholed too, so the dialler sees a live socket
 *   whose messages vanish, as with an iptables DROP (not a fast "connection refused"). Dropping bytes
 *   in the middle of a TCP stream corrupts the HTTP/2 framing, so on heal every blackholed
 *   connection is reset and the members reconnect (cairn's peer transport retries every 100 ms–1 s).
 * - **delay** with jitter: each chunk is released after `delay ± jitter`, never before the chunk
 *   ahead of it (TCP is in-order).
 * - **loss**: TCP never loses bytes in the middle of a stream; a lost segment shows up as a
 *   retransmission stall that holds up everything behind it. A chunk "lost" with probability p is
 *   therefore released after `RETRANSMIT_TIMEOUT_MS` more, doubling on consecutive losses up to
 *   `MAX_RETRANSMIT_BACKOFF_MS`, like TCP's RTO backoff.
 */
import * as net from 'node:net';
import type { Prng } from './prng';

/** Loopback only: the harness never listens or dials anywhere else. */
export const LOOPBACK = '127.0.0.1';
/** TCP's minimum retransmission timeout on Linux (200 ms); a "lost" chunk waits this long. */
export const RETRANSMIT_TIMEOUT_MS = 200;
/** Cap on the doubled retransmission timeout after consecutive losses. */
export const MAX_RETRANSMIT_BACKOFF_MS = 1_600;
/** Bytes held in one direction's delay queue before the proxy stops reading the source (backpressure). */
export const MAX_QUEUED_BYTES = 4 * 1024 * 1024;
/** Upper bound on the delay the proxy accepts, so a bad argument cannot stall a run. */
export const MAX_DELAY_MS = 5_000;

export interface LinkFaults {
  readonly blocked: boolean;
  readonly delayMs: number;
  readonly jitterMs: number;
  /** Probability that a chunk is "lost" (retransmitted after an RTO). */
  readonly lossProbability: number;
}

export const NO_FAULTS: LinkFaults = { blocked: false, delayMs: 0, jitterMs: 0, lossProbability: 0 };

interface Queued {
  readonly releaseAtMs: number;
  readonly chunk: Buffer;
}

/** One direction of one proxied connection. */
class Pipe {
  private queue: Queued[] = [];
  private queuedBytes = 0;
  private lastReleaseMs = 0;
  private consecutiveLosses = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly src: net.Socket,
    private readonly dst: net.Socket,
    private readonly proxy: PairProxy,
  ) {
    src.on('data', (chunk: Buffer) => this.onData(chunk));
  }

  private onData(chunk: Buffer): void {
    const f = this.proxy.faults;
    if (f.blocked) return; // blackhole: the bytes vanish
    if (f.delayMs === 0 && f.lossProbability === 0 && this.queue.length === 0) {
      this.dst.write(chunk);
      return;
    }
    const now = Date.now();
    let extra = f.delayMs + (f.jitterMs > 0 ? (this.proxy.rand.float() * 2 - 1) * f.jitterMs : 0);
    if (f.lossProbability > 0 && this.proxy.rand.chance(f.lossProbability)) {
      extra += Math.min(MAX_RETRANSMIT_BACKOFF_MS, RETRANSMIT_TIMEOUT_MS * 2 ** this.consecutiveLosses);
      this.consecutiveLosses++;
    } else {
      this.consecutiveLosses = 0;
    }
    const releaseAtMs = Math.max(now + Math.max(0, extra), this.lastReleaseMs);
    this.lastReleaseMs = releaseAtMs;
    this.queue.push({ releaseAtMs, chunk });
    this.queuedBytes += chunk.length;
    if (this.queuedBytes > MAX_QUEUED_BYTES) this.src.pause();
    this.schedule();
  }

  private schedule(): void {
    if (this.timer !== undefined || this.queue.length === 0) return;
    const waitMs = Math.max(0, this.queue[0].releaseAtMs - Date.now());
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.release();
    }, waitMs);
  }

  private release(): void {
    const now = Date.now();
    while (this.queue.length > 0 && this.queue[0].releaseAtMs <= now) {
      const q = this.queue.shift()!;
      this.queuedBytes -= q.chunk.length;
      if (!this.proxy.faults.blocked && !this.dst.destroyed) this.dst.write(q.chunk);
    }
    if (this.queuedBytes <= MAX_QUEUED_BYTES && this.src.isPaused()) this.src.resume();
    this.schedule();
  }

  /** Drop everything queued (a partition started: those bytes are lost). */
  discard(): void {
    this.queue = [];
    this.queuedBytes = 0;
    if (this.src.isPaused()) this.src.resume();
  }

  stop(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.queue = [];
  }
}

interface Conn {
  readonly client: net.Socket;
  readonly upstream?: net.Socket;
  readonly pipes: Pipe[];
  /** True once bytes were discarded on it: its stream is corrupt and it is reset on heal. */
  blackholed: boolean;
}

/** The proxy for one ordered pair: `from` dials `to` through it. */
export class PairProxy {
  faults: LinkFaults = NO_FAULTS;
  private server: net.Server | undefined;
  private readonly conns = new Set<Conn>();
  private listenPort = 0;
  /** Connections accepted over the proxy's life (to check the members really dial through it). */
  acceptedTotal = 0;

  constructor(
    readonly from: string,
    readonly to: string,
    private readonly targetPort: number,
    readonly rand: Prng,
  ) {}

  get port(): number {
    return this.listenPort;
  }

  get openConnections(): number {
    return this.conns.size;
  }

  /** Listen on `port` (0 = any; the cluster passes ports it allocated with the members' own, so none collide). */
  async listen(port = 0): Promise<number> {
    const server = net.createServer((socket) => this.accept(socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ port, host: LOOPBACK, exclusive: true }, () => resolve());
    });
    this.server = server;
    this.listenPort = (server.address() as net.AddressInfo).port;
    return this.listenPort;
  }

  private accept(client: net.Socket): void {
    this.acceptedTotal++;
    client.setNoDelay(true);
    client.on('error', () => undefined);
    if (this.faults.blocked) {
      // Blackholed from the start: read and discard, never reach the target.
      const conn: Conn = { client, pipes: [], blackholed: true };
      client.on('data', () => undefined);
      client.on('close', () => this.conns.delete(conn));
      this.conns.add(conn);
      return;
    }
    const upstream = net.connect({ port: this.targetPort, host: LOOPBACK });
    upstream.setNoDelay(true);
    upstream.on('error', () => undefined);
    const conn: Conn = { client, upstream, pipes: [], blackholed: false };
    conn.pipes.push(new Pipe(client, upstream, this), new Pipe(upstream, client, this));
    const teardown = (): void => {
      if (!this.conns.delete(conn)) return;
      for (const p of conn.pipes) p.stop();
      client.destroy();
      upstream.destroy();
    };
    client.on('close', teardown);
    upstream.on('close', teardown);
    this.conns.add(conn);
  }

  /** Apply new faults. Starting a block discards what is in flight; ending one resets the connections. */
  setFaults(next: LinkFaults): void {
    if (next.delayMs > MAX_DELAY_MS || next.jitterMs > MAX_DELAY_MS) throw new Error(`delay above MAX_DELAY_MS (${MAX_DELAY_MS})`);
    if (next.lossProbability < 0 || next.lossProbability >= 1) throw new Error('lossProbability must be in [0, 1)');
    const wasBlocked = this.faults.blocked;
    this.faults = next;
    if (next.blocked && !wasBlocked) {
      for (const c of this.conns) {
        c.blackholed = true;
        for (const p of c.pipes) p.discard();
      }
    }
    if (!next.blocked && wasBlocked) this.resetBlackholed();
  }

  heal(): void {
    this.setFaults(NO_FAULTS);
  }

  private resetBlackholed(): void {
    for (const c of [...this.conns]) {
      if (!c.blackholed) continue;
      this.conns.delete(c);
      for (const p of c.pipes) p.stop();
      c.client.destroy();
      c.upstream?.destroy();
    }
  }

  /** Reset every connection (the link flapped). */
  resetAll(): void {
    for (const c of [...this.conns]) {
      this.conns.delete(c);
      for (const p of c.pipes) p.stop();
      c.client.destroy();
      c.upstream?.destroy();
    }
  }

  async close(): Promise<void> {
    this.resetAll();
    const s = this.server;
    this.server = undefined;
    if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
  }
}
