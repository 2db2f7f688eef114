import * as grpc from '@grpc/grpc-js';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import pino from 'pino';
import { serviceDefinition } from '../../../proto';
import { buildConfig, parseFlags } from '../../../server/embed/config';
import { electionService } from '../../../server/api/election';
import { EtcdServer } from '../../../server/etcdserver/server';
import { kvService } from '../../../server/v3rpc/kv';
import { leaseService } from '../../../server/v3rpc/lease';
import { authResolver } from '../../../server/v3rpc/auth-interceptor';
import { lockService } from '../../../server/api/lock';
import { ServerMetrics } from '../../../server/etcdserver/metrics';
import { watchService, watchServiceDefinition } from '../../../server/v3rpc/watch';

/**
 * An in-process cairn member bound directly with grpc-js (no client-port sniffing), wired exactly as
 * server/embed/etcd.ts wires the services. Used with CONFORMANCE_SUBJECT=inproc while bin/cairn's client
 * listener is unavailable, and by scale tests that want the server's internals.
 */
export interface InprocMember {
  endpoint: string;
  server: EtcdServer;
  hub: WatchableStore;
  metrics: ServerMetrics;
  close(): Promise<void>;
}

export async function startInproc(extraArgs: string[] = []): Promise<InprocMember> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-inproc-'));
  const peer = 'http://127.0.0.1:1';
  const cfg = buildConfig(
    parseFlags(
      ['--name', 'n1', '--data-dir', path.join(dir, 'data'), '--listen-client-urls', 'http://127.0.0.1:0', '--advertise-client-urls', 'http://127.0.0.1:0',
        '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer, '--initial-cluster', `n1=${peer}`, ...extraArgs],
      {},
    ),
  );
  const metrics = new ServerMetrics();
  const server = await EtcdServer.open(cfg, pino({ level: 'silent' }), metrics);
  const grpcServer = new grpc.Server({ 'grpc.max_receive_message_length': cfg.maxRequestBytes + 512 * 1024, 'grpc.max_send_message_length': -1 });
  grpcServer.addService(serviceDefinition('etcdserverpb', 'KV'), kvService(server, metrics, authResolver(server.auth, { clientCertAuth: false })));
  grpcServer.addService(serviceDefinition('etcdserverpb', 'Lease'), leaseService(server, metrics, authResolver(server.auth, { clientCertAuth: false })));
  const hub = server.watchable;
  grpcServer.addService(watchServiceDefinition(), watchService(server, hub, metrics));
  grpcServer.addService(serviceDefinition('v3electionpb', 'Election'), electionService(server, hub, metrics));
  grpcServer.addService(serviceDefinition('v3lockpb', 'Lock'), lockService(server, hub, metrics));
  const port = await new Promise<number>((resolve, reject) =>
    grpcServer.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
  );
  server.start();
  const deadline = Date.now() + 10_000;
  while (server.leader === 0n) {
    if (Date.now() > deadline) throw new Error('in-process member elected no leader');
    await new Promise((r) => setTimeout(r, 20));
  }
  return {
    endpoint: `127.0.0.1:${port}`,
    server,
    hub,
    metrics,
    async close() {
      grpcServer.forceShutdown();
      hub.close();
      await server.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
