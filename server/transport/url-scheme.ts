import * as fs from 'node:fs';
import type * as net from 'node:net';

/**
 * The one place that decides what a listen or dial URL's scheme asks for (etcd's
 * embed.configureClientListeners, pkg/transport.NewListener): https:// and unixs:// are TLS,
 * http:// and unix:// are plaintext; unix:// and unixs:// are a unix socket, the others TCP.
 * Every listener and dialer asks this module, so no scheme can be served or dialed with less
 * security than it names. Any other scheme is refused.
 */
export interface UrlScheme {
  /** TLS: https:// or unixs://. */
  secure: boolean;
  /** A unix socket: unix:// or unixs://. */
  unix: boolean;
}

export function urlScheme(url: URL | string): UrlScheme {
  const protocol = typeof url === 'string' ? schemeOf(url) : url.protocol;
  switch (protocol) {
    case 'http:':
      return { secure: false, unix: false };
    case 'https:':
      return { secure: true, unix: false };
    case 'unix:':
      return { secure: false, unix: true };
    case 'unixs:':
      return { secure: true, unix: true };
    default:
      throw new Error(`unsupported URL scheme ${JSON.stringify(protocol.replace(/:$/, ''))} (must be http, https, unix, or unixs)`);
  }
}

function schemeOf(url: string): string {
  const i = url.indexOf('://');
  return i < 0 ? '' : `${url.slice(0, i).toLowerCase()}:`;
}

export function isSecureUrl(url: URL | string): boolean {
  return urlScheme(url).secure;
}

/**
 * The unix socket path of a unix:// or unixs:// URL, as etcd takes it: the URL's host (and, on a
 * client URL, its path: etcd's client listener uses u.Host + u.Path; the peer and metrics
 * listeners use u.Host). `unix://localhost:2379` is the file `localhost:2379` in the working
 * directory.
 */
export function unixSocketPath(url: URL, kind: 'client' | 'peer' | 'metrics'): string {
  const p = kind === 'client' ? url.host + (url.pathname === '/' ? '' : url.pathname) : url.host;
  if (p === '') throw new Error(`no unix socket path in ${url.href}`);
  return p;
}

/**
 * net.Server.listen options for a URL: a unix socket path (a stale socket file left by an earlier
 * run is removed, as etcd's NewUnixListener does; any other file there is left alone and the
 * listen fails), or TCP host and port.
 */
export function listenOptions(url: URL, kind: 'client' | 'peer' | 'metrics', defaultPort: number): net.ListenOptions {
  const s = urlScheme(url);
  if (s.unix) {
    const path = unixSocketPath(url, kind);
    try {
      if (fs.lstatSync(path).isSocket()) fs.unlinkSync(path);
    } catch {
      /* not there */
    }
    return { path };
  }
  const host = url.hostname.replace(/^\[|\]$/g, '');
  return { host: host === 'localhost' ? '127.0.0.1' : host, port: Number(url.port || defaultPort) };
}

/** A gRPC dial target for a peer URL: `unix:<path>` or `host:port`. */
export function grpcDialTarget(url: URL | string, defaultPort: number): string {
  const u = typeof url === 'string' ? new URL(url) : url;
  if (urlScheme(u).unix) return `unix:${unixSocketPath(u, 'peer')}`;
  return `${u.hostname === 'localhost' ? '127.0.0.1' : u.hostname}:${u.port || defaultPort}`;
}
