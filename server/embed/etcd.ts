import * as grpc from '@grpc/grpc-js';
import * as http from 'node:http';
import pino, { type Logger } from 'pino';
import { serviceDefinition } from '../../proto';
import { ClientListener } from './client-listener';
import { clusterService } from '../v3rpc/cluster';
import type { ServerConfig } from './config';
import { EtcdServer } from '../etcdserver/server';
import { httpHandler } from '../api/http-handler';
import { kvService } from '../v3rpc/kv';
import { leaseService } from '../v3rpc/lease';
import { maintenanceService } from '../v3rpc/maintenance';
import { ServerMetrics } from '../etcdserver/metrics';
import { PeerTransport, REMOVED_MEMBER_DETAILS } from '../rafthttp/transport';
import { Compactor } from '../api/compactor';
import { encodeMember } from '../etcdserver/membership/membership';
import { SERVER_VERSION } from '../version';
import { watchService, watchServiceDefinition } from '../v3rpc/watch';
import { electionService } from '../api/election';
import { lockService } from '../api/lock';
import { setFatalLogger } from '../etcdserver/fatal';
import { acquireDataDirLock } from '../storage/datadir-lock';
import { MemberLifecycle } from './lifecycle';

/** gRPC's own receive limit sits 512 KiB above --max-request-bytes, as in etcd (v3rpc/grpc.go). */
export const GRPC_OVERHEAD_BYTES = 512 * 1024;

/**
 * A running member: the server plus its client-facing listeners. This is what bin/cairn starts and
 * what a Node program embeds (`await startMember(config)`).
 */
export interface RunningMember extends MemberLifecycle {
  server: EtcdServer;
  metrics: ServerMetrics;
  /** The bound client address of each --listen-client-urls entry (useful with port 0). */
  clientAddresses: { host: string; port: number }[];
  /** Stops the member and releases its data dir; idempotent. Emits 'stopped'. */
  close(): Promise<void>;
}

export async function startMember(cfg: ServerConfig, log: Logger = pino({ level: cfg.logLevel })): Promise<RunningMember> {
  setFatalLogger(log);
  const metrics = new ServerMetrics();
  metrics.serverVersion.set({ server_version: SERVER_VERSION }, 1);
  metrics.quotaBackendBytes.set(cfg.quotaBackendBytes);
  // One process per data dir, as etcd's file locks ensure; rejects with DataDirLockedError.
  const dataDirLock = await acquireDataDirLock(cfg.dataDir);
  const server = await EtcdServer.open(cfg, log, metrics).catch(async (e: unknown) => {
    await dataDirLock.release();
    throw e;
  });

  const grpcServer = new grpc.Server({
    'grpc.max_receive_message_length': cfg.maxRequestBytes + GRPC_OVERHEAD_BYTES,
    'grpc.max_send_message_length': -1,
    'grpc.keepalive_time_ms': cfg.grpcKeepaliveIntervalMs,
    'grpc.keepalive_timeout_ms': cfg.grpcKeepaliveTimeoutMs,
    // Accept client pings as often as --grpc-keepalive-min-time allows (kube-apiserver pings every 30 s).
    'grpc.http2.min_ping_interval_without_data_ms': cfg.grpcKeepaliveMinTimeMs,
  });
  grpcServer.addService(serviceDefinition('etcdserverpb', 'KV'), kvService(server, metrics));
  grpcServer.addService(serviceDefinition('etcdserverpb', 'Lease'), leaseService(server, metrics));
  // The store notifies its watch hub of every commit itself (etcd's watchableStore).
  const watchHub = server.watchable;
  grpcServer.addService(watchServiceDefinition(), watchService(server, watchHub, metrics));
  grpcServer.addService(serviceDefinition('v3electionpb', 'Election'), electionService(server, watchHub, metrics));
  grpcServer.addService(serviceDefinition('v3lockpb', 'Lock'), lockService(server, watchHub, metrics));
  grpcServer.addService(serviceDefinition('etcdserverpb', 'Maintenance'), maintenanceService(server, metrics));
  grpcServer.addService(serviceDefinition('etcdserverpb', 'Cluster'), clusterService(server, metrics));
  grpcServer.addService(serviceDefinition('grpc.health.v1', 'Health'), {
    Check: (_call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) => cb(null, { status: 1 }),
    Watch: (call: grpc.ServerWritableStream<unknown, unknown>) => call.write({ status: 1 }),
  });
  const injector = grpcServer.createConnectionInjector(grpc.ServerCredentials.createInsecure());
  const httpServer = http.createServer(httpHandler(server, metrics));

  const transport = new PeerTransport({
    memberId: server.memberId,
    clusterId: server.clusterId,
    log,
    dialOverride: cfg.peerDialOverride,
    memberName: (id) => server.membership.get(id)?.name || undefined,
    activePeers: metrics.activePeers,
    handlers: {
      onMessages: (m) => server.stepMessages(m),
      onSnapshot: (m, entries) => server.receiveSnapshot(m, entries),
      snapshotEntries: () => server.snapshotEntries(),
      reportUnreachable: (id) => server.reportUnreachable(id),
      reportSnapshot: (id, ok) => server.reportSnapshot(id, ok),
      leaseRenew: (id) => server.leaseRenew(id),
      leaseTimeToLive: (id, keys) => server.leaseTimeToLive(id, keys),
      learnerReady: (id) => server.learnerReady(id),
      members: () => server.members().map(encodeMember),
      // The member list reflects the backend, which can be ahead of the applied index after a restart.
      appliedIndex: () => server.membershipIndex(),
      isRemoved: (id) => server.membership.isRemoved(id),
      removedIds: () => server.membership.removedIds(),
      onRemovedFromCluster: () => server.removedFromCluster(REMOVED_MEMBER_DETAILS),
    },
  });
  const lifecycle = new MemberLifecycle(server.memberId);
  server.leadership.on((lead, term) => lifecycle.leaderChanged(lead, term));
  const listeners: ClientListener[] = [];
  const metricsServers: http.Server[] = [];
  let compactor: Compactor | undefined;
  const shutdown = async (): Promise<void> => {
    for (const l of listeners) await l.close();
    for (const s of metricsServers) s.close();
    injector.destroy();
    grpcServer.forceShutdown();
    httpServer.close();
    compactor?.stop();
    transport.close();
    await server.stop();
    await dataDirLock.release();
  };
  let closing: Promise<void> | undefined;
  const closeWith = (error?: Error): Promise<void> =>
    (closing ??= shutdown().then(
      () => lifecycle.stopped(error),
      (e: unknown) => {
        lifecycle.stopped(e instanceof Error ? e : new Error(String(e)));
        throw e;
      },
    ));
  const close = (): Promise<void> => closeWith();
  // A member removed from the cluster stops serving (etcd's ErrMemberRemoved stops its server).
  server.onSelfRemoved(() => void closeWith(new Error('the member has been permanently removed from the cluster')).catch(() => undefined));
  try {
    await transport.listen(cfg.listenPeerUrls);
    server.start(transport);
    compactor = new Compactor(cfg.autoCompactionMode, cfg.autoCompactionRetention, {
      get isLeader() {
        return server.isLeader;
      },
      currentRevision: () => server.revision(),
      compact: (revision) => server.compact({ revision: String(revision), physical: false }),
    }, log);
    compactor.start();
    for (const url of cfg.listenClientUrls) {
      const l = new ClientListener(url, { grpc: (sock) => injector.injectConnection(sock), http: httpServer }, log);
      await l.listen();
      listeners.push(l);
    }
    for (const url of cfg.listenMetricsUrls) {
      const m = http.createServer(httpHandler(server, metrics));
      await new Promise<void>((resolve, reject) => {
        m.once('error', reject);
        m.listen(Number(url.port), url.hostname, resolve);
      });
      metricsServers.push(m);
    }
  } catch (e) {
    // A listener that cannot bind: release what was opened (the data dir lock included), so an
    // embedding program can retry or exit, then report the cause.
    await close().catch(() => undefined);
    throw e;
  }
  log.info({ name: cfg.name, 'data-dir': cfg.dataDir, 'member-id': server.memberId.toString(16) }, 'ready to serve client requests');

  lifecycle.started();
  return Object.assign(lifecycle, {
    server,
    metrics,
    clientAddresses: listeners.map((l) => ({ host: l.address().address, port: l.address().port })),
    close,
  });
}
