import * as net from 'node:net';
import * as http from 'node:http';
import * as tls from 'node:tls';
import type { Logger } from 'pino';
import { EMPTY_SETTINGS_FRAME, prepareClientFrames } from '../transport/h2/authority';
import { TlsTerminator } from '../transport/tls/tls-terminator';
import type { TLSInfo } from '../transport/tls/tls-info';
import { listenOptions, urlScheme } from '../transport/url-scheme';

/**
 * One client port for gRPC (HTTP/2) and plain HTTP/1.1 (/health, /version, /metrics), as etcd
 * does with cmux. The first bytes of a connection decide: the HTTP/2 client preface goes to the
 * gRPC server, anything else to the HTTP server. An https:// URL first terminates TLS (etcd's
 * --cert-file, --key-file, --trusted-ca-file, --client-cert-auth, ...) and sniffs the decrypted
 * stream the same way, so gRPC, the HTTP endpoints and the :authority fix all work over TLS.
 * unix:// and unixs:// URLs are the same on a unix socket (etcd's path: the URL's host and path),
 * unixs:// with TLS (see transport/url-scheme.ts). The
 * gRPC server gets the TLSSocket itself: grpc-js's call.getAuthContext() then reports the verified
 * client certificate (see transport/tls/peer-identity.ts).
 */
const HTTP2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
/** A client that sends fewer bytes than this and then stalls is dropped after the timeout. */
const SNIFF_TIMEOUT_MS = 10_000;
/** How long a grpc-go client may take to send its first request after our SETTINGS. */
const GO_HANDSHAKE_TIMEOUT_MS = 10_000;

export interface ClientListenerHandlers {
  grpc(socket: net.Socket): void;
  http: http.Server;
}

export class ClientListener {
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();
  private readonly tls: TlsTerminator | undefined;

  constructor(
    private readonly url: URL,
    private readonly handlers: ClientListenerHandlers,
    private readonly log: Logger,
    /** Required for an https:// or unixs:// URL (startMember validated it). */
    tlsInfo?: TLSInfo,
  ) {
    const { secure } = urlScheme(url);
    if (secure && !tlsInfo) throw new Error(`no TLS configuration for ${url.href}`);
    this.tls = secure && tlsInfo ? new TlsTerminator(tlsInfo, log, (s) => this.onConnection(s)) : undefined;
    this.server = net.createServer({ noDelay: true }, (socket) => {
      if (!this.tls) return this.onConnection(socket);
      this.track(socket);
      socket.setNoDelay(true);
      this.tls.accept(socket);
    });
  }

  private track(socket: net.Socket): void {
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
  }

  async listen(): Promise<void> {
    const options = listenOptions(this.url, 'client', 2379);
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(options, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    if (this.tls) this.log.info({ address: this.url.href }, 'serving client traffic securely');
    else this.log.info({ address: this.url.href }, 'serving client traffic insecurely; this is strongly discouraged!');
  }

  /** The bound TCP address, or undefined on a unix socket. */
  address(): net.AddressInfo | undefined {
    const a = this.server.address();
    return a && typeof a === 'object' ? a : undefined;
  }

  private onConnection(socket: net.Socket): void {
    this.track(socket);
    socket.setNoDelay(true);
    let buffered: Buffer = Buffer.alloc(0);
    const timer = setTimeout(() => socket.destroy(), SNIFF_TIMEOUT_MS);
    const onData = (chunk: Buffer): void => {
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
      const n = Math.min(buffered.length, HTTP2_PREFACE.length);
      const isHttp2 = buffered.subarray(0, n).equals(HTTP2_PREFACE.subarray(0, n));
      if (isHttp2 && n < HTTP2_PREFACE.length) return; // need more bytes to decide
      // Every HTTP/2 client follows the preface with a SETTINGS frame (9-byte header at least), and
      // grpc-go may write the two separately: wait for that header before deciding how to serve it.
      if (isHttp2 && buffered.length < HTTP2_PREFACE.length + EMPTY_SETTINGS_FRAME.length) return;
      if (isHttp2 && buffered.length === HTTP2_PREFACE.length + EMPTY_SETTINGS_FRAME.length && buffered.subarray(HTTP2_PREFACE.length).equals(EMPTY_SETTINGS_FRAME)) {
        // A grpc-go client (etcdctl, clientv3) that waits for our SETTINGS before its first request.
        socket.off('data', onData);
        clearTimeout(timer);
        this.goClientHandshake(socket, buffered);
        return;
      }
      clearTimeout(timer);
      socket.off('data', onData);
      socket.pause();
      socket.unshift(buffered);
      // HTTP/2 reads the unshifted bytes itself and then consumes the socket natively; resuming the
      // JS stream here would steal the preface from it. HTTP/1 needs the stream flowing again.
      if (isHttp2) {
        // Node's HTTP/2 server refuses a TLS socket whose ALPN did not pick h2; a client that sent
        // the HTTP/2 preface without ALPN (prior knowledge) is speaking h2 all the same.
        if (socket instanceof tls.TLSSocket && socket.alpnProtocol !== 'h2') socket.alpnProtocol = 'h2';
        this.handlers.grpc(socket);
      } else {
        this.handlers.http.emit('connection', socket);
        socket.resume();
      }
    };
    socket.on('data', onData);
    socket.on('error', () => socket.destroy());
    socket.resume();
  }

  /**
   * Answers a waiting grpc-go client's preface with an empty SETTINGS so it sends its first
   * request, fixes that request's `:authority` if etcdctl put a scheme in it (see h2-authority.ts),
   * then hands the connection to the gRPC server as if nothing had happened. Costs nothing after the
   * first request: the socket is then consumed natively by Node's HTTP/2 session.
   */
  private goClientHandshake(socket: net.Socket, head: Buffer): void {
    let rest: Buffer = Buffer.alloc(0);
    const handOff = (frames: Buffer): void => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.pause();
      socket.unshift(Buffer.concat([head, frames]));
      if (socket instanceof tls.TLSSocket && socket.alpnProtocol !== 'h2') socket.alpnProtocol = 'h2';
      this.handlers.grpc(socket);
    };
    // If the client never completes the exchange, give Node the bytes as they are.
    const timer = setTimeout(() => handOff(rest), GO_HANDSHAKE_TIMEOUT_MS);
    const onData = (chunk: Buffer): void => {
      rest = rest.length === 0 ? chunk : Buffer.concat([rest, chunk]);
      const prepared = prepareClientFrames(rest);
      if (prepared) handOff(prepared.replay);
    };
    socket.on('data', onData);
    socket.write(EMPTY_SETTINGS_FRAME);
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      for (const s of this.sockets) s.destroy();
    });
  }
}
