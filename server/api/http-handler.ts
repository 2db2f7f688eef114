import type * as http from 'node:http';
import type { HealthServer } from '../etcdserver/interfaces';
import type { ServerMetrics } from '../etcdserver/metrics';
import { CLUSTER_VERSION, SERVER_VERSION } from '../version';
import { AlarmType } from '../../proto/etcd-types';

/** How long /health waits for its probe read (etcd's health check uses the request timeout). */
export const HEALTH_CHECK_TIMEOUT_MS = 5_000;

/**
 * The HTTP/1.1 side of the client port (etcd etcdhttp): /health, /livez, /readyz, /version and
 * /metrics. /health probes like etcd: leader present (unless ?serializable=true), then a read.
 */
export function httpHandler(server: HealthServer, metrics: ServerMetrics): http.RequestListener {
  return (req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const route = url.pathname;
    if (!['/health', '/livez', '/readyz', '/version', '/metrics'].includes(route)) {
      res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' }).end('404 page not found\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET' }).end('Method Not Allowed');
      return;
    }
    if (route === '/version') {
      json(res, 200, { etcdserver: SERVER_VERSION, etcdcluster: CLUSTER_VERSION });
      return;
    }
    if (route === '/metrics') {
      metrics.registry.metrics().then(
        (body) => res.writeHead(200, { 'Content-Type': metrics.registry.contentType }).end(body),
        (e: unknown) => res.writeHead(500).end(String(e)),
      );
      return;
    }
    const serializable = url.searchParams.get('serializable') === 'true';
    const excluded = new Set(url.searchParams.getAll('exclude'));
    void checkHealth(server, serializable, excluded).then((reason) => {
      if (route === '/health') json(res, reason ? 503 : 200, { health: String(!reason) });
      else res.writeHead(reason ? 503 : 200, { 'Content-Type': 'text/plain; charset=utf-8' }).end(reason ? `[-]${reason}\n` : 'ok\n');
    });
  };
}

async function checkHealth(server: HealthServer, serializable: boolean, excludedAlarms: Set<string>): Promise<string | undefined> {
  for (const a of server.raisedAlarms()) {
    if (!excludedAlarms.has(AlarmType[a.type])) return `ALARM ${AlarmType[a.type]}`;
  }
  if (!serializable && server.leader === 0n) return 'RAFT NO LEADER';
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      server.range({
        key: Buffer.from('health'),
        range_end: Buffer.alloc(0),
        limit: '1',
        revision: '0',
        sort_order: 0,
        sort_target: 0,
        serializable,
        keys_only: true,
        count_only: false,
        min_mod_revision: '0',
        max_mod_revision: '0',
        min_create_revision: '0',
        max_create_revision: '0',
      }),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error('timeout')), HEALTH_CHECK_TIMEOUT_MS);
      }),
    ]);
    return undefined;
  } catch (e) {
    return `QGET ERROR ${e instanceof Error ? e.message : String(e)}`;
  } finally {
    clearTimeout(timer);
  }
}

function json(res: http.ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'Content-Type': 'application/json' }).end(JSON.stringify(body));
}
