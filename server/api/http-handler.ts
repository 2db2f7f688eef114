import type * as http from 'node:http';
import type { HealthServer } from '../etcdserver/interfaces';
import type { ServerMetrics } from '../etcdserver/metrics';
import { CLUSTER_VERSION, SERVER_VERSION } from '../version';
import { AlarmType } from '../../proto/etcd-types';

/** A handler that serves some paths of the client port's HTTP side and declines the rest. */
export interface HttpSubHandler {
  handle(req: http.IncomingMessage, res: http.ServerResponse): boolean;
}

const CORS_HEADERS = {
  'Access-Control-Allow-Origin': '*',
  'Access-Control-Allow-Methods': 'POST, GET, OPTIONS, PUT, DELETE',
  'Access-Control-Allow-Headers': 'accept, content-type, authorization',
};

/** How long /health waits for its probe read (etcd's health check uses the request timeout). */
export const HEALTH_CHECK_TIMEOUT_MS = 5_000;

/**
 * The HTTP/1.1 side of the client port (etcd etcdhttp): /health, /livez, /readyz, /version and
 * /metrics. /health answers as etcd 3.4 does (etcdhttp/metrics.go NewHealthHandler, checkHealth):
 * no alarm, a leader, then a quorum read; it has no serializable mode, so ?serializable=true is
 * ignored and a member without a leader is unhealthy either way. /livez and /readyz (later
 * releases) keep ?serializable=true, which skips the leader and reads locally.
 */
export function httpHandler(server: HealthServer, metrics: ServerMetrics, gateway?: HttpSubHandler): http.RequestListener {
  return (req, res) => {
    // etcd's accessController (embed/serve.go) writes CORS headers on every answer (the default
    // --cors is "*") and answers OPTIONS itself.
    for (const [k, v] of Object.entries(CORS_HEADERS)) res.setHeader(k, v);
    if (req.method === 'OPTIONS') {
      res.writeHead(200).end();
      return;
    }
    if (gateway?.handle(req, res)) return; // /v3/ and /v3beta/: the JSON gateway (api/gateway)
    const url = new URL(req.url ?? '/', 'http://localhost');
    const route = url.pathname;
    if (!['/health', '/livez', '/readyz', '/version', '/metrics'].includes(route)) {
      goHttpError(res, 404, '404 page not found'); // Go's http.NotFound
      return;
    }
    if (route === '/health' && req.method !== 'GET') {
      // etcd 3.4's health handler takes GET only (HEAD too is refused), with http.Error's framing.
      res.setHeader('Allow', 'GET');
      goHttpError(res, 405, 'Method Not Allowed');
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
      // promhttp.InstrumentMetricHandler: scrapes in flight, and each finished scrape by status.
      metrics.scrapesInFlight.inc();
      const done = (code: number): void => {
        metrics.scrapesInFlight.dec();
        metrics.scrapes.inc({ code: String(code) });
      };
      metrics.registry.metrics().then(
        (body) => {
          res.writeHead(200, { 'Content-Type': metrics.registry.contentType }).end(body);
          done(200);
        },
        (e: unknown) => {
          res.writeHead(500).end(String(e));
          done(500);
        },
      );
      return;
    }
    const excluded = new Set(url.searchParams.getAll('exclude'));
    if (route === '/health') {
      void checkHealth(server, false, excluded).then((reason) => {
        (reason ? metrics.healthFailures : metrics.healthSuccess).inc();
        const body = JSON.stringify({ health: String(!reason) });
        // Healthy: Go writes the JSON with no Content-Type set, so net/http sniffs text/plain.
        // Unhealthy: http.Error(w, body, 503), which adds nosniff and a trailing newline.
        if (reason) goHttpError(res, 503, body);
        else res.writeHead(200, { 'Content-Type': GO_SNIFFED_TEXT }).end(body);
      });
      return;
    }
    const serializable = url.searchParams.get('serializable') === 'true';
    void checkHealth(server, serializable, excluded).then((reason) => {
      res.writeHead(reason ? 503 : 200, { 'Content-Type': GO_SNIFFED_TEXT }).end(reason ? `[-]${reason}\n` : 'ok\n');
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

/** The Content-Type Go's net/http sends for a text body written without one, and http.Error's. */
const GO_SNIFFED_TEXT = 'text/plain; charset=utf-8';

/** Go's http.Error: plain text, nosniff, the message and a newline. */
function goHttpError(res: http.ServerResponse, status: number, message: string): void {
  res.writeHead(status, { 'Content-Type': GO_SNIFFED_TEXT, 'X-Content-Type-Options': 'nosniff' }).end(`${message}\n`);
}

function json(res: http.ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'Content-Type': 'application/json' }).end(JSON.stringify(body));
}
