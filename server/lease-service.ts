import type * as grpc from '@grpc/grpc-js';
import type { LeaseGrantRequest } from '../proto/etcd-types';
import type { EtcdServer } from './etcd-server';
import { unary } from './grpc-handler';
import type { ServerMetrics } from './metrics';
import { toServiceError } from './grpc-errors';
import { ErrLeaseNotFound as LessorLeaseNotFound } from '../mvcc/lessor';

/** etcdserverpb.Lease: grant and revoke go through the log; keepalive and TTL reads are the leader's. */
export function leaseService(server: EtcdServer, metrics: ServerMetrics): grpc.UntypedServiceImplementation {
  const u = <Req, Res>(m: string, fn: (r: Req) => Promise<Res> | Res) => unary<Req, Res>(metrics, 'etcdserverpb.Lease', m, fn);
  return {
    LeaseGrant: u('LeaseGrant', (r: LeaseGrantRequest) => server.leaseGrant(r)),
    LeaseRevoke: u('LeaseRevoke', (r: { ID: string }) => server.leaseRevoke(BigInt(r.ID))),
    LeaseTimeToLive: u('LeaseTimeToLive', async (r: { ID: string; keys: boolean }) => {
      await server.linearizableReadNotify();
      const ttl = server.lessor.timeToLive(BigInt(r.ID));
      const header = server.header(server.store.rev);
      // An unknown lease is not an error here: TTL -1, as etcd answers.
      if (!ttl) return { header, ID: r.ID, TTL: -1, grantedTTL: 0, keys: [] };
      return {
        header,
        ID: r.ID,
        TTL: ttl.ttlSeconds,
        grantedTTL: ttl.grantedTtlSeconds,
        keys: r.keys ? ttl.keys.map((k) => Buffer.from(k, 'latin1')) : [],
      };
    }),
    LeaseLeases: u('LeaseLeases', async () => {
      await server.linearizableReadNotify();
      return { header: server.header(server.store.rev), leases: server.lessor.ids().map((id) => ({ ID: id.toString() })) };
    }),
    LeaseKeepAlive: (call: grpc.ServerDuplexStream<{ ID: string }, unknown>) => {
      metrics.grpcStarted.inc({ grpc_type: 'bidi_stream', grpc_service: 'etcdserverpb.Lease', grpc_method: 'LeaseKeepAlive' });
      call.on('data', (req: { ID: string }) => {
        // The header is taken before the renewal, as etcd does.
        const header = server.header(server.store.rev);
        let ttl = 0;
        try {
          ttl = server.lessor.renew(BigInt(req.ID));
          metrics.leaseRenewed.inc();
        } catch (e) {
          // An unknown or expired lease answers TTL 0 with no error; anything else ends the stream.
          if (!(e instanceof LessorLeaseNotFound)) {
            call.emit('error', toServiceError(e));
            return;
          }
        }
        call.write({ header, ID: req.ID, TTL: ttl });
      });
      call.on('end', () => call.end());
      call.on('error', () => undefined);
    },
  };
}
