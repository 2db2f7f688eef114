import type * as grpc from '@grpc/grpc-js';
import type { EtcdServer } from './etcd-server';
import { unary } from './grpc-handler';
import { Membership } from './membership';
import type { ServerMetrics } from './metrics';

/** etcdserverpb.Cluster. Membership changes come with the multi-member cluster. */
export function clusterService(server: EtcdServer, metrics: ServerMetrics): grpc.UntypedServiceImplementation {
  const u = <Req, Res>(m: string, fn: (r: Req) => Promise<Res> | Res) => unary<Req, Res>(metrics, 'etcdserverpb.Cluster', m, fn);
  return {
    MemberList: u('MemberList', async (r: { linearizable: boolean }) => {
      if (r.linearizable) await server.linearizableReadNotify();
      return { header: server.header(0), members: server.membership.list().map(Membership.toMsg) };
    }),
  };
}
