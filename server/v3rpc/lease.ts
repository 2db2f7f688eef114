import type * as grpc from '@grpc/grpc-js';
import type { LeaseGrantRequest } from '../../proto/etcd-types';
import type { LeaseServer } from '../etcdserver/interfaces';
import { unary } from './interceptor';
import type { ServerMetrics } from '../etcdserver/metrics';
import { toServiceError } from './grpc-errors';
import { ErrLeaseNotFound as LessorLeaseNotFound, ErrNotPrimary } from '../../mvcc/lessor';
import { ErrNoLeader } from '../etcdserver/errors';
import { leaderMonitor, requiresLeader } from './watch';

/** etcdserverpb.Lease: grant and revoke go through the log; keepalive and TTL reads are the leader's. */
export function leaseService(server: LeaseServer, metrics: ServerMetrics): grpc.UntypedServiceImplementation {
  const u = <Req, Res>(m: string, fn: (r: Req) => Promise<Res> | Res) => unary<Req, Res>(metrics, 'etcdserverpb.Lease', m, fn);
  return {
    LeaseGrant: u('LeaseGrant', (r: LeaseGrantRequest) => server.leaseGrant(r)),
    LeaseRevoke: u('LeaseRevoke', (r: { ID: string }) => server.leaseRevoke(BigInt(r.ID))),
    LeaseTimeToLive: u('LeaseTimeToLive', async (r: { ID: string; keys: boolean }) => {
      await server.linearizableReadNotify();
      // Answered by the leader's lessor (a follower forwards), which alone tracks expiry.
      const ttl = await server.leaseTimeToLive(BigInt(r.ID), r.keys);
      const header = server.header(server.revision());
      // An unknown lease is not an error here: TTL -1, as etcd answers.
      if (!ttl.found) return { header, ID: r.ID, TTL: -1, grantedTTL: 0, keys: [] };
      return { header, ID: r.ID, TTL: ttl.ttl, grantedTTL: ttl.grantedTtl, keys: ttl.keys };
    }),
    LeaseLeases: u('LeaseLeases', async () => {
      await server.linearizableReadNotify();
      return { header: server.header(server.revision()), leases: server.leaseIds().map((id) => ({ ID: id.toString() })) };
    }),
    LeaseKeepAlive: (call: grpc.ServerDuplexStream<{ ID: string }, unknown>) => {
      // clientv3 opens keepalive streams WithRequireLeader: refused at once without a leader
      // (etcd newStreamInterceptor), and cancelled after 3 election timeouts without one (monitorLeader).
      const requireLeader = requiresLeader(call.metadata);
      if (requireLeader && server.leader === 0n) {
        call.emit('error', toServiceError(new ErrNoLeader()));
        return;
      }
      let ended = false;
      const fail = (e: unknown): void => {
        if (ended) return;
        ended = true;
        stopMonitor?.();
        call.emit('error', toServiceError(e));
      };
      const stopMonitor = requireLeader ? leaderMonitor(server).register(() => fail(new ErrNoLeader())) : undefined;
      // Renewals may be forwarded to the leader (async); answers keep the order of the requests.
      let chain: Promise<void> = Promise.resolve();
      call.on('data', (req: { ID: string }) => {
        if (ended) return;
        chain = chain.then(async () => {
          if (ended) return;
          // The header is taken before the renewal, as etcd does.
          const header = server.header(server.revision());
          let ttl = 0;
          try {
            // An unknown or expired lease answers TTL 0 with no error; anything else ends the stream.
            const r = await server.leaseRenew(BigInt(req.ID));
            ttl = r.notFound ? 0 : r.ttl;
            if (!r.notFound) metrics.leaseRenewed.inc();
          } catch (e) {
            if (!(e instanceof LessorLeaseNotFound)) {
              fail(e instanceof ErrNotPrimary && server.leader === 0n ? new ErrNoLeader() : e);
              return;
            }
          }
          if (!ended) call.write({ header, ID: req.ID, TTL: ttl });
        });
      });
      const done = (): void => {
        ended = true;
        stopMonitor?.();
      };
      // A half-close ends the stream once the renewals already received are answered (etcd's
      // leaseKeepAlive loop answers each request before it reads the next, then sees io.EOF).
      call.on('end', () => {
        void chain.then(() => {
          if (ended) return;
          done();
          call.end();
        });
      });
      call.on('cancelled', done);
      call.on('close', done);
      call.on('error', done);
    },
  };
}
