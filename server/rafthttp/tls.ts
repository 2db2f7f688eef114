import * as grpc from '@grpc/grpc-js';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as tls from 'node:tls';
import type { Logger } from 'pino';
import { TlsTerminator } from '../transport/tls/tls-terminator';
import type { TLSInfo } from '../transport/tls/tls-info';

/**
 * Peer TLS (etcd's --peer-* flags) beside the transport: how a member dials another member's
 * https:// peer URL, and how it serves its own https:// peer URLs.
 */

/**
 * Credentials to dial `peerUrl` with: plaintext for http://, else TLS with the peer pair
 * (--peer-client-cert-file if given, else --peer-cert-file) and the peer CA. The files are read
 * when a connection to a peer is set up, so a rotated pair is used by connections made after it.
 * A self-signed (auto TLS) member skips verifying the other side, as etcd's selfCert TLSInfo does
 * (InsecureSkipVerify); the other side's --peer-client-cert-auth still checks it.
 */
export function peerCredentials(info: TLSInfo | undefined, peerUrl: string): grpc.ChannelCredentials {
  if (!peerUrl.startsWith('https://') || !info) return grpc.credentials.createInsecure();
  const read = (f: string | undefined): Buffer | undefined => (f ? fs.readFileSync(f) : undefined);
  const certFile = info.clientCertFile || info.certFile;
  const keyFile = info.clientKeyFile || info.keyFile;
  const context = tls.createSecureContext({
    ca: read(info.trustedCAFile),
    cert: read(certFile),
    key: read(keyFile),
    minVersion: info.minVersion,
    maxVersion: info.maxVersion,
    ...(info.ciphers !== '' ? { ciphers: info.ciphers } : {}),
  });
  if (info.selfSigned) return grpc.credentials.createFromSecureContext(context, { rejectUnauthorized: false, checkServerIdentity: () => undefined });
  return grpc.credentials.createFromSecureContext(context);
}

/**
 * gRPC channel options for a TLS peer dialed at `target` (host:port): when a dial override sends
 * the connection elsewhere (a fault-injection proxy), the certificate is still checked against
 * the peer URL's host.
 */
export function peerChannelOptions(peerUrl: string, target: string): grpc.ChannelOptions {
  if (!peerUrl.startsWith('https://')) return {};
  const host = new URL(peerUrl).hostname.replace(/^\[|\]$/g, '');
  const targetHost = target.slice(0, target.lastIndexOf(':')).replace(/^\[|\]$/g, '');
  if (targetHost === host || (host === 'localhost' && targetHost === '127.0.0.1')) return {};
  return { 'grpc.ssl_target_name_override': host };
}

/**
 * Serves `server`'s peer service on an https:// peer URL: a TCP listener whose connections are
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
  const host = url.hostname === 'localhost' ? '127.0.0.1' : url.hostname.replace(/^\[|\]$/g, '');
  await new Promise<void>((resolve, reject) => {
    tcp.once('error', reject);
    tcp.listen({ host, port: Number(url.port || 2380) }, () => {
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
