import type * as grpc from '@grpc/grpc-js';
import type { CompactionRequest, DeleteRangeRequest, PutRequest, RangeRequest, TxnRequest } from '../../proto/etcd-types';
import type { KvServer } from '../etcdserver/interfaces';
import { unary } from './interceptor';
import type { ServerMetrics } from '../etcdserver/metrics';
import type { AuthResolver } from './auth-interceptor';
import { checkDeleteRequest, checkPutRequest, checkRangeRequest, checkTxnIntervals, checkTxnRequest } from './txn-check';

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
