import type * as grpc from '@grpc/grpc-js';
import type { CompactionRequest, DeleteRangeRequest, PutRequest, RangeRequest, TxnRequest } from '../../proto/etcd-types';
import type { KvServer } from '../etcdserver/interfaces';
import { unary } from './interceptor';
import type { ServerMetrics } from '../etcdserver/metrics';
import { checkDeleteRequest, checkPutRequest, checkRangeRequest, checkTxnIntervals, checkTxnRequest } from './txn-check';

/** etcdserverpb.KV: validation at the edge (v3rpc/key.go), then the server's read or write path. */
export function kvService(server: KvServer, metrics: ServerMetrics): grpc.UntypedServiceImplementation {
  const u = <Req, Res>(m: string, fn: (r: Req) => Promise<Res> | Res) => unary<Req, Res>(metrics, 'etcdserverpb.KV', m, fn, server);
  return {
    Range: u('Range', (r: RangeRequest) => {
      checkRangeRequest(r);
      return server.range(r);
    }),
    Put: u('Put', (r: PutRequest) => {
      checkPutRequest(r);
      return server.put(r);
    }),
    DeleteRange: u('DeleteRange', (r: DeleteRangeRequest) => {
      checkDeleteRequest(r);
      return server.deleteRange(r);
    }),
    Txn: u('Txn', (r: TxnRequest) => {
      checkTxnRequest(r, server.cfg.maxTxnOps);
      // Checked after the op limit, so a huge txn cannot make this quadratic check expensive.
      checkTxnIntervals(r);
      return server.txn(r);
    }),
    Compact: u('Compact', (r: CompactionRequest) => server.compact(r)),
  };
}
