import type * as grpc from '@grpc/grpc-js';
import type { AlarmRequest } from '../../proto/etcd-types';
import { SERVER_VERSION } from '../version';
import type { EtcdServer } from '../etcdserver/server';
import { unary } from './interceptor';
import type { ServerMetrics } from '../etcdserver/metrics';
import { ErrFutureRev } from '../etcdserver/errors';
import { toServiceError } from './grpc-errors';
import { encodeEntries, frameSnapshot } from '../api/snapshot-file';
import { createHash } from 'node:crypto';

/** Bytes per Snapshot response message (etcd: 32 KiB). */
export const SNAPSHOT_BLOB_BYTES = 32 * 1024;

/**
 * Maintenance.Snapshot: a consistent copy of the whole backend (one LevelDB iterator snapshot),
 * streamed in 32 KiB blobs with remaining_bytes counting down, then the sha256 of the data as the
 * final blob, as etcd does. The copy is built in memory first so remaining_bytes is exact.
 */
async function streamSnapshot(server: EtcdServer, call: grpc.ServerWritableStream<unknown, unknown>): Promise<void> {
  const parts: Buffer[] = [];
  for await (const chunk of server.store.snapshotEntries()) parts.push(encodeEntries(chunk));
  const data = frameSnapshot(Buffer.concat(parts));
  const sum = createHash('sha256').update(data).digest();
  const header = server.header(server.store.rev);
  const write = (msg: unknown): Promise<void> =>
    new Promise((resolve) => {
      if (call.write(msg)) resolve();
      else call.once('drain', () => resolve());
    });
  for (let o = 0; o < data.length; o += SNAPSHOT_BLOB_BYTES) {
    const blob = data.subarray(o, o + SNAPSHOT_BLOB_BYTES);
    await write({ header, remaining_bytes: data.length - o - blob.length + sum.length, blob });
  }
  await write({ header, remaining_bytes: 0, blob: sum });
  call.end();
}

/** etcdserverpb.Maintenance. Snapshot, MoveLeader and Downgrade come with the cluster work. */
export function maintenanceService(server: EtcdServer, metrics: ServerMetrics): grpc.UntypedServiceImplementation {
  const u = <Req, Res>(m: string, fn: (r: Req) => Promise<Res> | Res) => unary<Req, Res>(metrics, 'etcdserverpb.Maintenance', m, fn, server);
  return {
    Status: u('Status', async () => {
      const [dbSize, approxInUse] = await Promise.all([server.store.backend.sizeBytes(), server.store.backend.sizeInUseBytes()]);
      // LevelDB's estimate covers only compacted tables; data still in its log is in use too.
      const dbSizeInUse = approxInUse > 0 ? Math.min(approxInUse, dbSize) : dbSize;
      return {
        header: server.header(server.store.rev),
        version: SERVER_VERSION,
        dbSize,
        leader: server.leader.toString(),
        raftIndex: server.raftIndex,
        raftTerm: server.raftTerm,
        raftAppliedIndex: server.appliedIndex,
        errors: server.alarmErrors(),
        dbSizeInUse,
        isLearner: server.isLearner,
      };
    }),
    Hash: u('Hash', async () => {
      const hash = await server.store.hash();
      return { header: server.header(server.store.rev), hash };
    }),
    HashKV: u('HashKV', async (r: { revision: string }) => {
      const rev = Number(r.revision);
      if (rev > server.store.rev) throw new ErrFutureRev();
      const res = await server.store.hashKV(rev);
      return { header: server.header(server.store.rev), hash: res.hash, compact_revision: res.compactRev, hash_revision: res.hashRev };
    }),
    Defragment: u('Defragment', async () => {
      // A compaction still deleting holds a LevelDB iterator, which pins the files a defragment
      // would drop; wait for it, as etcd's defrag waits for the backend lock.
      await server.store.compactionIdle();
      await server.store.backend.defragment();
      await server.refreshDbSize();
      return { header: server.header(server.store.rev) };
    }),
    Snapshot: (call: grpc.ServerWritableStream<unknown, unknown>) => {
      metrics.grpcStarted.inc({ grpc_type: 'server_stream', grpc_service: 'etcdserverpb.Maintenance', grpc_method: 'Snapshot' });
      void streamSnapshot(server, call).catch((e: unknown) => call.emit('error', toServiceError(e)));
    },
    MoveLeader: u('MoveLeader', async (r: { targetID: string }) => {
      await server.moveLeader(BigInt(r.targetID));
      return { header: server.header(server.store.rev) };
    }),
    Alarm: u('Alarm', (r: AlarmRequest) => server.alarm(r)),
  };
}
