import * as grpc from '@grpc/grpc-js';
import * as http from 'node:http';
import pino, { type Logger } from 'pino';
import { ClientListener } from './client-listener';
import type { ServerConfig } from './config';
import { EtcdServer } from '../etcdserver/server';
import { httpHandler } from '../api/http-handler';
import { Gateway } from '../api/gateway/gateway';
import { clientServices } from './services';
import { ServerMetrics } from '../etcdserver/metrics';
import { PeerTransport, REMOVED_MEMBER_DETAILS } from '../rafthttp/transport';
import { Compactor } from '../api/compactor';
import { encodeMember } from '../etcdserver/membership/membership';
import { CLUSTER_VERSION, SERVER_VERSION } from '../version';
import { setFatalLogger } from '../etcdserver/fatal';
import { acquireDataDirLock } from '../storage/datadir-lock';
import { MemberLifecycle } from './lifecycle';
import { listenMetrics, resolveTls } from './tls-setup';
import { callCounter, grpcMetricsInterceptor, initializeGrpcMetrics, withByteCounters } from '../v3rpc/grpc-metrics';
import { authResolver } from '../v3rpc/auth-interceptor';
import { UnaryFastPath, injectedHttp2Server, unaryMethods, type FastUnaryMethod } from '../v3rpc/unary-fast-path';

/** gRPC's own receive limit sits 512 KiB above --max-request-bytes, as in etcd (v3rpc/grpc.go). */
export const GRPC_OVERHEAD_BYTES = 512 * 1024;

/**
 * A running member: the server plus its client-facing listeners. This is what bin/cairn starts and
 * what a Node program embeds (`await startMember(config)`).
 */
export interface RunningMember extends MemberLifecycle {
  server: EtcdServer;
  metrics: ServerMetrics;
  /** The bound client address of each TCP --listen-client-urls entry (useful with port 0); unix sockets are not listed. */
  clientAddresses: { host: string; port: number }[];
  /** Stops the member and releases its data dir; idempotent. Emits 'stopped'. */
  close(): Promise<void>;
}

export async function startMember(config: ServerConfig, log: Logger = pino({ level: config.logLevel })): Promise<RunningMember> {
  setFatalLogger(log);
  const metrics = new ServerMetrics({ extensive: config.metrics === 'extensive' });
  metrics.serverVersion.set({ server_version: SERVER_VERSION }, 1);
  // etcd labels the cluster version major.minor (version.Cluster).
  metrics.clusterVersion.set({ cluster_version: CLUSTER_VERSION.split('.').slice(0, 2).join('.') }, 1);
  metrics.quotaBackendBytes.set(config.quotaBackendBytes);
  // One process per data dir, as etcd's file locks ensure; rejects with DataDirLockedError.
  const dataDirLock = await acquireDataDirLock(config.dataDir);
  let cfg: ServerConfig;
  try {
    // Fail closed before anything listens (TlsConfigError, etcd's messages). Auto TLS writes
    // <data-dir>/fixtures, so it runs once the data dir is this process's.
    cfg = resolveTls(config, log);
  } catch (e) {
    await dataDirLock.release();
    throw e;
  }
  const server = await EtcdServer.open(cfg, log, metrics).catch(async (e: unknown) => {
    await dataDirLock.release();
    throw e;
  });

  const grpcServer = new grpc.Server({
    'grpc.max_receive_message_length': cfg.maxRequestBytes + GRPC_OVERHEAD_BYTES,
    'grpc.max_send_message_length': -1,
    // channelz (grpc-js's per-call and per-socket introspection counters) has no etcd counterpart
    // and costs every call a tracker; etcd does not register channelz either (issue 12, hot path).
    'grpc.enable_channelz': 0,
    'grpc.keepalive_time_ms': cfg.grpcKeepaliveIntervalMs,
    'grpc.keepalive_timeout_ms': cfg.grpcKeepaliveTimeoutMs,
    // Accept client pings as often as --grpc-keepalive-min-time allows (kube-apiserver pings every 30 s).
    'grpc.http2.min_ping_interval_without_data_ms': cfg.grpcKeepaliveMinTimeMs,
    // grpc_server_*_total and etcd_server_client_requests_total, for every call (v3rpc/grpc-metrics.ts).
    interceptors: [grpcMetricsInterceptor(metrics)],
  });
  // Who makes each call: its token, or with --client-cert-auth its verified certificate's CN.
  const resolver = authResolver(server.auth, { clientCertAuth: cfg.tls.client.clientCertAuth });
  const services = clientServices(server, metrics, resolver);
  // Client gRPC bytes are counted where grpc-js encodes and decodes; etcd pre-initializes the
  // grpc_server_* series of the services it registers before Election and Lock.
  const fastMethods: FastUnaryMethod[] = [];
  for (const s of services) {
    if (s.name !== 'v3electionpb.Election' && s.name !== 'v3lockpb.Lock') initializeGrpcMetrics(metrics, [s.definition]);
    const definition = withByteCounters(s.definition, metrics);
    grpcServer.addService(definition, s.implementation);
    if (s.name === 'etcdserverpb.KV') fastMethods.push(...unaryMethods(definition, s.implementation));
  }
  // The gateway's calls are counted as gRPC calls, as etcd's gateway (a gRPC client of its member) is.
  const countCall = callCounter(metrics);
  const gateway = new Gateway(services.map((sv) => ({ ...sv, definition: withByteCounters(sv.definition, metrics) })), {
    maxMessageBytes: cfg.maxRequestBytes + GRPC_OVERHEAD_BYTES,
    log,
    countCall,
  });
  const injector = grpcServer.createConnectionInjector(grpc.ServerCredentials.createInsecure());
  // The KV service's unary calls skip grpc-js's per-call machinery (v3rpc/unary-fast-path.ts).
  const fastPath = new UnaryFastPath(fastMethods, { maxReceiveMessageBytes: cfg.maxRequestBytes + GRPC_OVERHEAD_BYTES, countCall });
  const injectorServer = injectedHttp2Server(grpcServer);
  if (injectorServer) fastPath.attach(injectorServer);
  else log.warn('grpc-js keeps its HTTP/2 servers elsewhere than this version did: KV calls take grpc-js\'s own path');
  const httpServer = http.createServer(httpHandler(server, metrics, gateway));

  const transport = new PeerTransport({
    memberId: server.memberId,
    clusterId: server.clusterId,
    log,
    dialOverride: cfg.peerDialOverride,
    memberName: (id) => server.membership.get(id)?.name || undefined,
    metrics,
    tls: cfg.tls.peer,
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
      const l = new ClientListener(url, { grpc: (sock) => injector.injectConnection(sock), http: httpServer }, log, cfg.tls.client);
      await l.listen();
      listeners.push(l);
    }
    for (const url of cfg.listenMetricsUrls) {
      metricsServers.push(await listenMetrics(url, httpHandler(server, metrics), cfg.tls.client, log));
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
    clientAddresses: listeners.flatMap((l) => {
      const a = l.address();
      return a ? [{ host: a.address, port: a.port }] : [];
    }),
    close,
  });
}
