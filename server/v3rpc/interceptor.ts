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
 * status once, here. Calls are counted under grpc_server_*_total by the server-wide interceptor
 * (grpc-metrics.ts), which also sees streams; `metrics` and `service` stay in the signature for the callers.
 */
export function unary<Req, Res>(
  _metrics: ServerMetrics,
  _service: string,
  method: string,
  fn: (req: Req, call: grpc.ServerUnaryCall<Req, Res>) => Promise<Res> | Res,
  member?: { readonly isLearner: boolean },
): grpc.handleUnaryCall<Req, Res> {
  return (call, callback) => {
    let result: Promise<Res> | Res;
    try {
      if (member?.isLearner && !isRpcSupportedForLearner(method, call.request)) throw new ErrNotSupportedForLearner();
      result = fn(call.request, call);
    } catch (e) {
      return fail(e);
    }
    if (result instanceof Promise) {
      result.then(
        (res) => callback(null, res),
        fail,
      );
    } else {
      callback(null, result);
    }
    function fail(e: unknown): void {
      callback(toServiceError(e) as grpc.ServiceError);
    }
  };
}
