import type * as grpc from '@grpc/grpc-js';
import type { CompactionRequest, DeleteRangeRequest, DeleteRangeResponse, PutRequest, PutResponse, RangeRequest, RangeResponse, TxnRequest } from '../../proto/etcd-types';
import type { KvServer } from '../etcdserver/interfaces';
import { serviceDefinition } from '../../proto';
import { unary } from './interceptor';
import { encodeDeleteRangeResponse, encodePutResponse, encodeRangeResponse } from './kv-response-encoder';
import type { ServerMetrics } from '../etcdserver/metrics';
import type { AuthResolver } from './auth-interceptor';
import { checkDeleteRequest, checkPutRequest, checkRangeRequest, checkTxnIntervals, checkTxnRequest } from './txn-check';

/**
 * The KV service definition with Range, Put and DeleteRange responses encoded by hand
 * (kv-response-encoder.ts): a large Range is where protobufjs's per-field encoding costs most, and
 * a Put's header where its uint64 parsing runs on every write. A copy, so the shared definition
 * (used by clients too) keeps protobufjs's serializer.
 */
export function kvServiceDefinition(): grpc.ServiceDefinition {
  const def = serviceDefinition('etcdserverpb', 'KV');
  const range = def.Range as grpc.MethodDefinition<RangeRequest, RangeResponse>;
  const put = def.Put as grpc.MethodDefinition<PutRequest, PutResponse>;
  const del = def.DeleteRange as grpc.MethodDefinition<DeleteRangeRequest, DeleteRangeResponse>;
  return {
    ...def,
    Range: { ...range, responseSerialize: encodeRangeResponse },
    Put: { ...put, responseSerialize: encodePutResponse },
    DeleteRange: { ...del, responseSerialize: encodeDeleteRangeResponse },
  };
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
