import type * as grpc from '@grpc/grpc-js';
import { serviceDefinition } from '../../proto';
import type { EtcdServer } from '../etcdserver/server';
import type { ServerMetrics } from '../etcdserver/metrics';
import { clusterService } from '../v3rpc/cluster';
import { kvService, kvServiceDefinition } from '../v3rpc/kv';
import { leaseService } from '../v3rpc/lease';
import { maintenanceService } from '../v3rpc/maintenance';
import { watchService, watchServiceDefinition } from '../v3rpc/watch';
import { electionService } from '../api/election';
import { lockService } from '../api/lock';
import { authService } from '../v3rpc/auth';
import type { AuthResolver } from '../v3rpc/auth-interceptor';

/**
 * One client-facing gRPC service: its full proto name, the definition grpc-js registers and the
 * handlers. The same entries are registered on the grpc-js Server and dispatched into by the JSON
 * gateway (server/api/gateway), so a request is validated, counted and answered by one code path
 * whichever way it arrives, as etcd's grpc-gateway dials the member's own gRPC server.
 */
export interface ClientService {
  /** `package.Service`, e.g. `etcdserverpb.KV`. */
  readonly name: string;
  readonly definition: grpc.ServiceDefinition;
  readonly implementation: grpc.UntypedServiceImplementation;
}

/** Every service of the client port, listed once (etcd v3rpc.Server plus v3election and v3lock). */
export function clientServices(server: EtcdServer, metrics: ServerMetrics, resolver: AuthResolver): ClientService[] {
  // The store notifies its watch hub of every commit itself (etcd's watchableStore).
  const watchHub = server.watchable;
  const of = (pkg: string, svc: string, implementation: grpc.UntypedServiceImplementation): ClientService => ({
    name: `${pkg}.${svc}`,
    definition: serviceDefinition(pkg, svc),
    implementation,
  });
  return [
    { name: 'etcdserverpb.KV', definition: kvServiceDefinition(), implementation: kvService(server, metrics, resolver) },
    of('etcdserverpb', 'Lease', leaseService(server, metrics, resolver)),
    of('etcdserverpb', 'Auth', authService(server.auth, resolver, metrics, server)),
    { name: 'etcdserverpb.Watch', definition: watchServiceDefinition(), implementation: watchService(server, watchHub, metrics, { server: server.auth, resolver }) },
    of('v3electionpb', 'Election', electionService(server, watchHub, metrics, resolver)),
    of('v3lockpb', 'Lock', lockService(server, watchHub, metrics, resolver)),
    of('etcdserverpb', 'Maintenance', maintenanceService(server, metrics, server.auth, resolver)),
    of('etcdserverpb', 'Cluster', clusterService(server, metrics, server.auth, resolver)),
    of('grpc.health.v1', 'Health', {
      Check: (_call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) => cb(null, { status: 1 }),
      Watch: (call: grpc.ServerWritableStream<unknown, unknown>) => call.write({ status: 1 }),
    }),
  ];
}
