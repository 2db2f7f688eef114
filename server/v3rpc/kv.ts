import type * as grpc from '@grpc/grpc-js';
import type { CompactionRequest, DeleteRangeRequest, PutRequest, RangeRequest, RangeResponse, TxnRequest } from '../../proto/etcd-types';
import type { KvServer } from '../etcdserver/interfaces';
import { serviceDefinition } from '../../proto';
import { unary } from './interceptor';
import { encodeRangeResponse } from './range-response-encoder';
import type { ServerMetrics } from '../etcdserver/metrics';
import type { AuthResolver } from './auth-interceptor';
import { checkDeleteRequest, checkPutRequest, checkRangeRequest, checkTxnIntervals, checkTxnRequest } from './txn-check';

/**
 * The KV service definition with Range responses encoded by hand (range-response-encoder.ts): a
 * large Range is where protobufjs's per-field encoding costs most. A copy, so the shared
 * definition (used by clients too) keeps protobufjs's serializer.
 */
export function kvServiceDefinition(): grpc.ServiceDefinition {
  const def = serviceDefinition('etcdserverpb', 'KV');
  const range = def.Range as grpc.MethodDefinition<RangeRequest, RangeResponse>;
  return { ...def, Range: { ...range, responseSerialize: encodeRangeResponse } };
}

/** etcdserverpb.KV: validation at the edge (v3rpc/key.go), then the server's read or write path. */
export function kvService(server: KvServer, metrics: ServerMetrics, auth: AuthResolver): grpc.UntypedServiceImplementation {
  const u = <Req, Res>(m: string, fn: (r: Req, call: grpc.ServerUnaryCall<Req, Res>) => Promise<Res> | Res) => unary<Req, Res>(metrics, 'etcdserverpb.KV', m, fn, server);
  return {
    Range: u('Range', async (r: RangeRequest, call) => {
      checkRangeRequest(r);
      return server.range(r, await auth.authInfo(call));
    }),
    Put: u('Put', async (r: PutRequest, call) => {
      checkPutRequest(r);
      return server.put(r, await auth.authInfo(call));
    }),
    DeleteRange: u('DeleteRange', async (r: DeleteRangeRequest, call) => {
      checkDeleteRequest(r);
      return server.deleteRange(r, await auth.authInfo(call));
    }),
    Txn: u('Txn', async (r: TxnRequest, call) => {
      checkTxnRequest(r, server.cfg.maxTxnOps);
      // Checked after the op limit, so a huge txn cannot make this quadratic check expensive.
      checkTxnIntervals(r);
      return server.txn(r, await auth.authInfo(call));
    }),
    Compact: u('Compact', async (r: CompactionRequest, call) => server.compact(r, await auth.authInfo(call))),
  };
}
