import type * as grpc from '@grpc/grpc-js';
import { toServiceError } from './grpc-errors';
import type { ServerMetrics } from '../etcdserver/metrics';
import { ErrNotSupportedForLearner } from '../etcdserver/errors';

/** etcd's isRPCSupportedForLearner: a learner serves Status and serializable Range only. */
function isRpcSupportedForLearner(method: string, req: unknown): boolean {
  if (method === 'Status') return true;
  if (method === 'Range') return (req as { serializable?: boolean }).serializable === true;
  return false;
}

/**
 * Adapts an async function to a grpc-js unary handler: errors of every kind are mapped to etcd's
 * status once, here, and every call is counted under grpc_server_*_total as etcd's interceptor does.
 */
export function unary<Req, Res>(
  metrics: ServerMetrics,
  service: string,
  method: string,
  fn: (req: Req, call: grpc.ServerUnaryCall<Req, Res>) => Promise<Res> | Res,
  member?: { readonly isLearner: boolean },
): grpc.handleUnaryCall<Req, Res> {
  const labels = { grpc_type: 'unary', grpc_service: service, grpc_method: method };
  const started = metrics.grpcStarted.labels(labels);
  const okCounter = metrics.grpcHandled.labels({ ...labels, grpc_code: 'OK' });
  return (call, callback) => {
    started.inc();
    let result: Promise<Res> | Res;
    try {
      if (member?.isLearner && !isRpcSupportedForLearner(method, call.request)) throw new ErrNotSupportedForLearner();
      result = fn(call.request, call);
    } catch (e) {
      return fail(e);
    }
    if (result instanceof Promise) {
      result.then(
        (res) => {
          okCounter.inc();
          callback(null, res);
        },
        fail,
      );
    } else {
      okCounter.inc();
      callback(null, result);
    }
    function fail(e: unknown): void {
      const err = toServiceError(e);
      metrics.grpcHandled.inc({ ...labels, grpc_code: String(err.code) });
      callback(err as grpc.ServiceError);
    }
  };
}
