import * as grpc from '@grpc/grpc-js';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as tls from 'node:tls';
import type { Logger } from 'pino';
import { TlsTerminator } from '../transport/tls/tls-terminator';
import type { TLSInfo } from '../transport/tls/tls-info';
import { isSecureUrl, listenOptions, urlScheme } from '../transport/url-scheme';

/**
 * Peer TLS (etcd's --peer-* flags) beside the transport: how a member dials another member's
 * https:// or unixs:// peer URL, and how it serves its own.
 */

/** How often a dialing member re-checks its peer certificate files for a rotation. */
export const PEER_CERT_RECHECK_MS = 5_000;

/**
 * Credentials to dial `peerUrl` with: plaintext for http://, else TLS with the peer pair
 * (--peer-client-cert-file if given, else --peer-cert-file) and the peer CA. The pair and CA come
 * from a FilePairProvider, so connections made after a rotation present the new certificate, as
 * etcd's GetClientCertificate re-reads it. A self-signed (auto TLS) member skips verifying the
 * other side, as etcd's selfCert TLSInfo does (InsecureSkipVerify); the other side's
 * --peer-client-cert-auth still checks it. The server side enforces versions and cipher suites.
 */
export function peerCredentials(info: TLSInfo | undefined, peerUrl: string, log?: Logger): grpc.ChannelCredentials {
  if (!isSecureUrl(peerUrl)) return grpc.credentials.createInsecure();
  // A TLS peer URL is never dialed in plaintext, even when this member has no peer TLS of its own.
  if (!info) return grpc.credentials.createSsl();
  const certFile = info.clientCertFile || info.certFile;
  const keyFile = info.clientKeyFile || info.keyFile;
  if (info.selfSigned || info.trustedCAFile === '') {
    const read = (f: string): Buffer | undefined => (f ? fs.readFileSync(f) : undefined);
    const context = tls.createSecureContext({ ca: read(info.trustedCAFile), cert: read(certFile), key: read(keyFile) });
    return grpc.credentials.createFromSecureContext(context, info.selfSigned ? { rejectUnauthorized: false, checkServerIdentity: () => undefined } : {});
  }
  const provider = providerFor(certFile, keyFile, info.trustedCAFile, log);
  return grpc.experimental.createCertificateProviderChannelCredentials(provider, certFile ? provider : null);
}

const providers = new Map<string, FilePairProvider>();

function providerFor(certFile: string, keyFile: string, caFile: string, log: Logger | undefined): FilePairProvider {
  const key = `${certFile}|${keyFile}|${caFile}`;
  let p = providers.get(key);
  if (!p) {
    p = new FilePairProvider(certFile, keyFile, caFile, log);
    providers.set(key, p);
  }
  return p;
}

/**
 * grpc-js's CertificateProvider over the peer pair and CA files: re-checked every
 * PEER_CERT_RECHECK_MS while a channel uses it; a change that does not parse keeps the last good
 * material (and is logged), like the serving side's ReloadingSecureContext.
 */
class FilePairProvider implements grpc.experimental.CertificateProvider {
  private ca: Buffer;
  private identity: { certificate: Buffer; privateKey: Buffer } | undefined;
  private stamp: string;
  private timer: NodeJS.Timeout | undefined;
  private readonly caListeners = new Set<grpc.experimental.CaCertificateUpdateListener>();
  private readonly idListeners = new Set<grpc.experimental.IdentityCertificateUpdateListener>();

  constructor(
    private readonly certFile: string,
    private readonly keyFile: string,
    private readonly caFile: string,
    private readonly log: Logger | undefined,
  ) {
    this.stamp = this.fileStamp();
    const m = this.load();
    this.ca = m.ca;
    this.identity = m.identity;
  }

  private fileStamp(): string {
    return [this.certFile, this.keyFile, this.caFile]
      .filter(Boolean)
      .map((f) => {
        const st = fs.statSync(f);
        return `${st.ino}:${st.size}:${st.mtimeMs}`;
      })
      .join('|');
  }

  private load(): { ca: Buffer; identity: { certificate: Buffer; privateKey: Buffer } | undefined } {
    const ca = fs.readFileSync(this.caFile);
    const identity = this.certFile ? { certificate: fs.readFileSync(this.certFile), privateKey: fs.readFileSync(this.keyFile) } : undefined;
    tls.createSecureContext({ ca, cert: identity?.certificate, key: identity?.privateKey });
    return { ca, identity };
  }

  private recheck(): void {
    try {
      const stamp = this.fileStamp();
      if (stamp === this.stamp) return;
      this.stamp = stamp;
      const m = this.load();
      this.ca = m.ca;
      this.identity = m.identity;
      this.log?.info({ cert: this.certFile, key: this.keyFile }, 'reloaded peer TLS certificate files for dialing');
      for (const l of this.caListeners) l({ caCertificate: this.ca });
      if (this.identity) for (const l of this.idListeners) l(this.identity);
    } catch (e) {
      this.log?.warn({ cert: this.certFile, key: this.keyFile, error: e instanceof Error ? e.message : String(e) }, 'failed to reload peer TLS certificate files; keeping the previous certificate');
    }
  }

  private watch(): void {
    const used = this.caListeners.size + this.idListeners.size > 0;
    if (used && !this.timer) {
      this.timer = setInterval(() => this.recheck(), PEER_CERT_RECHECK_MS);
      this.timer.unref();
    } else if (!used && this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  addCaCertificateListener(l: grpc.experimental.CaCertificateUpdateListener): void {
    // A new channel starts from the files as they are now.
    this.recheck();
    this.caListeners.add(l);
    this.watch();
    l({ caCertificate: this.ca });
  }
  removeCaCertificateListener(l: grpc.experimental.CaCertificateUpdateListener): void {
    this.caListeners.delete(l);
    this.watch();
  }
  addIdentityCertificateListener(l: grpc.experimental.IdentityCertificateUpdateListener): void {
    this.idListeners.add(l);
    this.watch();
    if (this.identity) l(this.identity);
  }
  removeIdentityCertificateListener(l: grpc.experimental.IdentityCertificateUpdateListener): void {
    this.idListeners.delete(l);
    this.watch();
  }
}

/**
 * gRPC channel options for a TLS peer dialed at `target` (host:port): when a dial override sends
 * the connection elsewhere (a fault-injection proxy), the certificate is still checked against
 * the peer URL's host.
 */
export function peerChannelOptions(peerUrl: string, target: string): grpc.ChannelOptions {
  const scheme = urlScheme(peerUrl);
  if (!scheme.secure) return {};
  // A unix socket has no host to verify against but the certificate's localhost (grpc-js's
  // authority for a unix: target).
  if (scheme.unix) return {};
  const host = new URL(peerUrl).hostname.replace(/^\[|\]$/g, '');
  const targetHost = target.slice(0, target.lastIndexOf(':')).replace(/^\[|\]$/g, '');
  if (targetHost === host || (host === 'localhost' && targetHost === '127.0.0.1')) return {};
  return { 'grpc.ssl_target_name_override': host };
}

/**
 * Serves `server`'s peer service on an https:// or unixs:// peer URL: a TCP or unix socket listener whose connections are
 * TLS-terminated (peer CA, --peer-client-cert-auth, allowed CN/hostname, the SAN check) and then
 * injected into the gRPC server, which sees an ordinary HTTP/2 connection.
 */
export async function listenPeerTls(server: grpc.Server, url: URL, info: TLSInfo, log: Logger): Promise<net.Server> {
  const injector = server.createConnectionInjector(grpc.ServerCredentials.createInsecure());
  const sockets = new Set<net.Socket>();
  const terminator = new TlsTerminator(
    info,
    log,
    (socket) => {
      // Node's HTTP/2 server only takes a TLS socket that negotiated h2 (every gRPC client does).
      if (socket.alpnProtocol !== 'h2') return socket.destroy();
      socket.pause();
      injector.injectConnection(socket);
    },
    ['h2'],
  );
  const tcp = net.createServer({ noDelay: true }, (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    terminator.accept(socket);
  });
  const options = listenOptions(url, 'peer', 2380);
  await new Promise<void>((resolve, reject) => {
    tcp.once('error', reject);
    tcp.listen(options, () => {
      tcp.off('error', reject);
      resolve();
    });
  });
  const close = tcp.close.bind(tcp);
  // Closing the listener also drops its connections (the gRPC server's forceShutdown does not know them).
  tcp.close = (cb?: (err?: Error) => void): net.Server => {
    for (const s of sockets) s.destroy();
    injector.destroy();
    return close(cb);
  };
  return tcp;
}
