/**
 * grpc_server_*_total as go-grpc-prometheus counts them on etcd's gRPC server, plus etcd's
 * etcd_server_client_requests_total and etcd_network_client_grpc_{sent,received}_bytes_total.
 * One grpc-js server interceptor sees every call, unary and streaming, so each is counted once:
 * started when its metadata arrives, handled once with the status it ends with (a stream the client
 * cancels included), and every message each way.
 */
import * as grpc from '@grpc/grpc-js';
import type { ServerMetrics } from '../etcdserver/metrics';
import type { CounterSeries } from '../etcdserver/metrics/families';

/** grpc-go's codes.Code.String(), indexed by status number: the grpc_code label values. */
export const GRPC_CODE_NAMES = [
  'OK', 'Canceled', 'Unknown', 'InvalidArgument', 'DeadlineExceeded', 'NotFound', 'AlreadyExists',
  'PermissionDenied', 'ResourceExhausted', 'FailedPrecondition', 'Aborted', 'OutOfRange',
  'Unimplemented', 'Internal', 'Unavailable', 'DataLoss', 'Unauthenticated',
] as const;

/** etcd clientv3 sends its API version under this metadata key (rpctypes.MetadataClientAPIVersionKey). */
const CLIENT_API_VERSION_KEY = 'client-api-version';
/** Distinct (type, client version) series counted by handle; past it, by prom-client's inc. */
const MAX_CLIENT_VERSION_SERIES = 64;

export type GrpcType = 'unary' | 'client_stream' | 'server_stream' | 'bidi_stream';

export function grpcType(d: { requestStream: boolean; responseStream: boolean }): GrpcType {
  if (d.requestStream) return d.responseStream ? 'bidi_stream' : 'client_stream';
  return d.responseStream ? 'server_stream' : 'unary';
}

function codeName(code: number): string {
  return GRPC_CODE_NAMES[code] ?? 'Unknown';
}

/**
 * The code a call the client cancelled ends with in etcd. LeaseKeepAlive maps a cancelled context
 * to ErrGRPCNoLeader (v3rpc/lease.go: "the only server-side cancellation is noleader for now"),
 * so it is counted Unavailable; every other handler returns the context's Canceled.
 */
function cancelledCode(method: string): number {
  return method === 'LeaseKeepAlive' ? grpc.status.UNAVAILABLE : grpc.status.CANCELLED;
}

function split(path: string): { service: string; method: string } {
  const [, service = '', method = ''] = path.split('/');
  return { service, method };
}

/** One method's series, resolved once (metrics/families.ts hotCounterVec: no label hash per call). */
interface MethodSeries {
  readonly method: string;
  readonly type: GrpcType;
  readonly labels: { grpc_type: GrpcType; grpc_service: string; grpc_method: string };
  readonly started: CounterSeries;
  readonly received: CounterSeries;
  readonly sent: CounterSeries;
  readonly handled: Map<number, CounterSeries>;
}

/** One call's counting: started at creation; then messages each way, and the status it ends with (once). */
export interface CallCounts {
  received(): void;
  sent(): void;
  finish(code: number): void;
  /** The client went away: the code etcd's handler returns for a cancelled context. */
  cancelled(): void;
}

/** A method's description, as grpc-js gives it to interceptors and as its MethodDefinition has it. */
export interface MethodDesc {
  path: string;
  requestStream: boolean;
  responseStream: boolean;
}

/**
 * The counting of every client call, whichever front end it arrives through: the grpc-js
 * interceptor below, and the JSON gateway (etcd's gateway is a gRPC client of its own member, so
 * its requests are counted as gRPC calls there too).
 */
export function callCounter(m: ServerMetrics): (desc: MethodDesc, md: grpc.Metadata) => CallCounts {
  const byPath = new Map<string, MethodSeries>();
  const seriesOf = (desc: MethodDesc): MethodSeries => {
    let s = byPath.get(desc.path);
    if (!s) {
      const { service, method } = split(desc.path);
      const type = grpcType(desc);
      const labels = { grpc_type: type, grpc_service: service, grpc_method: method };
      s = { method, type, labels, started: m.grpcStarted.series(labels), received: m.grpcMsgReceived.series(labels), sent: m.grpcMsgSent.series(labels), handled: new Map() };
      byPath.set(desc.path, s);
    }
    return s;
  };
  // etcd_server_client_requests_total by type and client version. The version is the client's
  // word, so the series kept here are capped like the label values prom-client would keep anyway.
  const requests = new Map<string, CounterSeries>();
  const requestsOf = (type: 'unary' | 'stream', version: string): CounterSeries => {
    const k = `${type} ${version}`;
    let r = requests.get(k);
    if (r) return r;
    const labels = { type, client_api_version: version };
    // Past the cap, prom-client's own (hashing) inc: a deferred series is never forgotten.
    if (requests.size >= MAX_CLIENT_VERSION_SERIES) return { inc: (by = 1) => m.clientRequests.inc(labels, by) };
    r = m.clientRequests.series(labels);
    requests.set(k, r);
    return r;
  };
  return (desc, md) => {
    const s = seriesOf(desc);
    const started = performance.now();
    s.started.inc();
    const version = md.get(CLIENT_API_VERSION_KEY)[0];
    requestsOf(s.type === 'unary' ? 'unary' : 'stream', version ? String(version) : 'unknown').inc();
    let handled = false;
    const finish = (code: number): void => {
      if (handled) return;
      handled = true;
      let h = s.handled.get(code);
      if (!h) {
        h = m.grpcHandled.series({ ...s.labels, grpc_code: codeName(code) });
        s.handled.set(code, h);
      }
      h.inc();
      m.grpcHandlingSeconds?.observe(s.labels, (performance.now() - started) / 1000);
    };
    return {
      received: () => s.received.inc(),
      sent: () => s.sent.inc(),
      finish,
      cancelled: () => finish(cancelledCode(s.method)),
    };
  };
}

export function grpcMetricsInterceptor(m: ServerMetrics): grpc.ServerInterceptor {
  const count = callCounter(m);
  return (desc, call) => {
    let counts: CallCounts | undefined;
    return new grpc.ServerInterceptingCall(call, {
      start: (next) => {
        next({
          onReceiveMetadata: (md, nextMd) => {
            counts = count(desc, md);
            nextMd(md);
          },
          onReceiveMessage: (msg, nextMsg) => {
            counts?.received();
            nextMsg(msg);
          },
          onCancel: () => counts?.cancelled(),
        });
      },
      sendMessage: (msg, nextMsg) => {
        counts?.sent();
        nextMsg(msg);
      },
      sendStatus: (status, nextStatus) => {
        counts?.finish(status.code ?? grpc.status.UNKNOWN);
        nextStatus(status);
      },
    });
  };
}

/**
 * Counts the wire bytes of every request and response of a service, where grpc-js decodes and
 * encodes them (the interceptor only sees decoded messages).
 */
export function withByteCounters(def: grpc.ServiceDefinition, m: ServerMetrics): grpc.ServiceDefinition {
  const out: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const [name, d] of Object.entries(def)) {
    out[name] = {
      ...d,
      requestDeserialize: (buf: Buffer) => {
        m.clientGrpcReceivedBytes.inc(buf.length);
        return d.requestDeserialize(buf);
      },
      responseSerialize: (value: unknown) => {
        const buf = d.responseSerialize(value);
        m.clientGrpcSentBytes.inc(buf.length);
        return buf;
      },
    };
  }
  return out;
}

/**
 * go-grpc-prometheus InitializeMetrics: every method of the services registered before it (etcd:
 * KV, Watch, Lease, Cluster, Auth, Maintenance, Health; not Election and Lock) starts at 0 under
 * every code, so rate() and absent() see the series before the first call.
 */
export function initializeGrpcMetrics(m: ServerMetrics, defs: readonly grpc.ServiceDefinition[]): void {
  for (const def of defs) {
    for (const d of Object.values(def)) {
      const { service, method } = split(d.path);
      const labels = { grpc_type: grpcType(d), grpc_service: service, grpc_method: method };
      m.grpcStarted.inc(labels, 0);
      m.grpcMsgReceived.inc(labels, 0);
      m.grpcMsgSent.inc(labels, 0);
      for (const code of GRPC_CODE_NAMES) m.grpcHandled.inc({ ...labels, grpc_code: code }, 0);
      m.grpcHandlingSeconds?.zero(labels);
    }
  }
}
