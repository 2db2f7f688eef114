import * as dns from 'node:dns/promises';
import * as net from 'node:net';
import * as tls from 'node:tls';
import type { Logger } from 'pino';
import { ReloadingSecureContext } from './secure-context';
import type { TLSInfo } from './tls-info';

/**
 * A connection that has not finished its TLS handshake after this long is dropped (a client that
 * connects and stalls, or speaks plaintext slowly, must not hold a socket forever). Node's own
 * default is 120 s; etcd bounds it through its listeners' read timeouts.
 */
export const TLS_HANDSHAKE_TIMEOUT_MS = 10_000;

/** ALPN protocols a listener offers: the client port serves gRPC (h2) and HTTP/1.1 on one port. */
export const ALPN_PROTOCOLS = ['h2', 'http/1.1'];

/**
 * Picks the ALPN protocol: gRPC clients (grpc-go, grpc-js) offer only h2; an HTTP client that also
 * offers http/1.1 (curl, Prometheus) gets it, because on one port HTTP/2 streams all go to the gRPC
 * server, and /health, /metrics are served over HTTP/1.1 (etcd's Go server routes per stream).
 * A client with no protocol in common is refused (undefined: a fatal alert), as Go does.
 */
export function chooseAlpn(offered: readonly string[], protocols: readonly string[]): string | undefined {
  if (offered.includes('http/1.1') && protocols.includes('http/1.1')) return 'http/1.1';
  return protocols.find((p) => offered.includes(p));
}

/**
 * Terminates TLS on accepted TCP sockets for one listener: a tls.Server that is never bound, fed
 * sockets from the listener's own net.Server (`accept`), which hands each verified TLSSocket on.
 * Client certificates are required and verified when the TLSInfo asks (etcd's ClientCertAuth),
 * then checked as etcd's pkg/transport does: the allowed CN or hostname, and on peer listeners the
 * certificate's SANs against the remote address (checkSAN). Failures log etcd's
 * "rejected connection" and close the socket; the client sees a failed handshake.
 */
export class TlsTerminator {
  private readonly server: tls.Server;
  private readonly context: ReloadingSecureContext;

  constructor(
    private readonly info: TLSInfo,
    private readonly log: Logger,
    private readonly onSecure: (socket: tls.TLSSocket) => void,
    protocols: readonly string[] = ALPN_PROTOCOLS,
  ) {
    this.context = new ReloadingSecureContext(info, log, (opts) => this.server.setSecureContext(opts));
    this.server = tls.createServer({
      ...this.context.options(),
      requestCert: info.clientCertAuth,
      rejectUnauthorized: info.clientCertAuth,
      ALPNCallback: ({ protocols: offered }) => chooseAlpn(offered, protocols),
      handshakeTimeout: TLS_HANDSHAKE_TIMEOUT_MS,
    });
    this.server.on('secureConnection', (socket) => this.onHandshake(socket));
    this.server.on('tlsClientError', (err: Error & { reason?: string }, socket) => {
      // A socket whose handshake failed has lost its address; the raw TCP socket it wraps kept it.
      const raw = (socket as tls.TLSSocket & { _parent?: net.Socket })._parent;
      const addr = raw ? this.addresses.get(raw) ?? remote(raw) : remote(socket);
      // Go's wording for an unverifiable certificate, else OpenSSL's reason ("peer did not return a
      // certificate"), not its multi-line error stack.
      const verify = socket.authorizationError ? `failed to verify client certificate: ${String(socket.authorizationError)}` : undefined;
      this.log.warn({ 'remote-addr': addr, 'server-name': '', error: `tls: ${verify ?? err.reason ?? err.message}` }, 'rejected connection');
      socket.destroy();
    });
  }

  /** Remote addresses, kept from accept: a socket that failed its handshake no longer has one. */
  private readonly addresses = new WeakMap<net.Socket, string>();

  /** Starts the TLS handshake on an accepted TCP socket; uses the newest certificate files. */
  accept(socket: net.Socket): void {
    this.context.refresh();
    this.addresses.set(socket, remote(socket));
    this.server.emit('connection', socket);
  }

  private onHandshake(socket: tls.TLSSocket): void {
    const reject = (error: string): void => {
      this.log.warn({ 'remote-addr': remote(socket), 'server-name': socket.servername || '', error }, 'rejected connection');
      socket.destroy();
    };
    if (!this.info.clientCertAuth) return this.onSecure(socket);
    const cert = socket.getPeerCertificate();
    // etcd's VerifyPeerCertificate: one message for either check.
    if (this.info.allowedCN !== '' && cert.subject?.CN !== this.info.allowedCN) {
      return reject('client certificate authentication failed');
    }
    if (this.info.allowedHostname !== '' && tls.checkServerIdentity(this.info.allowedHostname, cert) !== undefined) {
      return reject('client certificate authentication failed');
    }
    if (!this.info.checkClientSAN) return this.onSecure(socket);
    // Hold the connection's bytes until the SAN check is done (the handler must not see them).
    socket.pause();
    checkSAN(cert, socket.remoteAddress ?? '').then(
      (err) => {
        if (err) return reject(err);
        this.onSecure(socket);
      },
      (e: unknown) => reject(String(e)),
    );
  }
}

function remote(socket: net.Socket): string {
  return `${socket.remoteAddress ?? ''}:${socket.remotePort ?? ''}`;
}

/**
 * etcd's checkSAN (pkg/transport/listener_tls.go): a peer's client certificate with SANs must name
 * the address it connects from, by IP or by a DNS name that resolves to it. No SANs: accepted.
 */
export async function checkSAN(cert: tls.PeerCertificate, remoteAddr: string): Promise<string | undefined> {
  const host = remoteAddr.replace(/^::ffff:/, '');
  const sans = (cert.subjectaltname ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  const ips = sans.filter((s) => s.startsWith('IP Address:')).map((s) => s.slice('IP Address:'.length));
  const names = sans.filter((s) => s.startsWith('DNS:')).map((s) => s.slice('DNS:'.length));
  if (ips.length === 0 && names.length === 0) return undefined;
  if (ips.includes(host)) return undefined;
  if (names.length === 0) return `x509: certificate is valid for ${ips.join(', ')}, not ${host}`;
  for (const name of names) {
    const addrs = await dns.lookup(name, { all: true }).catch(() => []);
    if (addrs.some((a) => a.address === host)) return undefined;
  }
  return `tls: "${host}" does not match any of DNSNames ${JSON.stringify(names)}`;
}
