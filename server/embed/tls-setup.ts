import * as http from 'node:http';
import * as net from 'node:net';
import * as path from 'node:path';
import type { Logger } from 'pino';
import type { ServerConfig } from './config';
import { selfCert, urlHosts } from '../transport/tls/self-signed';
import { tlsInfoEmpty, validateTls, type TLSInfo } from '../transport/tls/tls-info';
import { TlsTerminator } from '../transport/tls/tls-terminator';
import { listenOptions, urlScheme } from '../transport/url-scheme';

/**
 * The member's TLS at startup (etcd's embed.StartEtcd): --auto-tls / --peer-auto-tls generate a
 * self-signed pair into <data-dir>/fixtures/client and fixtures/peer when no pair is given, then
 * the configuration is checked and refused (TlsConfigError, etcd's messages) if it asks for TLS
 * it does not have the material for. Returns the config with the generated paths filled in.
 */
export function resolveTls(cfg: ServerConfig, log: Logger): ServerConfig {
  const { client, peer } = cfg.tls;
  const auto = (info: TLSInfo, kind: 'client' | 'peer', urls: URL[]): TLSInfo => {
    if (!info.autoTls) return info;
    if (!tlsInfoEmpty(info)) {
      log.warn(`ignoring ${kind} auto TLS since certs given`);
      return info;
    }
    const pair = selfCert(log, path.join(cfg.dataDir, 'fixtures', kind), urlHosts(urls), cfg.tls.selfSignedCertValidityYears);
    return { ...info, certFile: pair.certFile, keyFile: pair.keyFile, selfSigned: true };
  };
  const resolved: ServerConfig = {
    ...cfg,
    tls: {
      ...cfg.tls,
      client: auto(client, 'client', cfg.listenClientUrls),
      peer: auto(peer, 'peer', cfg.listenPeerUrls),
    },
  };
  validateTls(resolved);
  for (const u of cfg.listenClientUrls) {
    // etcd serves such a URL without client certificates and says so.
    if (!urlScheme(u).secure && client.clientCertAuth) log.warn({ 'client-url': u.href }, 'scheme is HTTP while --client-cert-auth is enabled; ignoring client cert auth for this URL');
  }
  return resolved;
}

/**
 * One --listen-metrics-urls listener; https:// and unixs:// use the client TLS settings, as etcd
 * does (embed/etcd.go serveMetrics uses ClientTLSInfo); unix:// and unixs:// listen on a unix
 * socket (see transport/url-scheme.ts).
 */
export async function listenMetrics(url: URL, handler: http.RequestListener, clientTls: TLSInfo, log: Logger): Promise<http.Server> {
  const server = http.createServer(handler);
  const options = listenOptions(url, 'metrics', 2379);
  if (urlScheme(url).secure) {
    // HTTP/1.1 only: this listener has no gRPC server to take HTTP/2.
    const terminator = new TlsTerminator(clientTls, log, (socket) => server.emit('connection', socket), ['http/1.1']);
    const tcp = net.createServer((socket) => terminator.accept(socket));
    await new Promise<void>((resolve, reject) => {
      tcp.once('error', reject);
      tcp.listen(options, () => {
        tcp.off('error', reject);
        resolve();
      });
    });
    // Closing the metrics server closes its listener and connections too.
    const close = server.close.bind(server);
    server.close = (cb?: (err?: Error) => void): http.Server => {
      tcp.close();
      server.closeAllConnections();
      return close(cb);
    };
    log.info({ address: url.href }, 'serving metrics securely');
    return server;
  }
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options, () => {
      server.off('error', reject);
      resolve();
    });
  });
  log.info({ address: url.href }, 'serving metrics');
  return server;
}
