import type * as grpc from '@grpc/grpc-js';
import type { AlarmRequest } from '../../proto/etcd-types';
import { SERVER_VERSION } from '../version';
import type { MaintenanceServer } from '../etcdserver/interfaces';
import { unary } from './interceptor';
import type { ServerMetrics } from '../etcdserver/metrics';
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
async function streamSnapshot(server: MaintenanceServer, call: grpc.ServerWritableStream<unknown, unknown>): Promise<void> {
  const parts: Buffer[] = [];
  for await (const chunk of server.snapshotEntries()) parts.push(encodeEntries(chunk));
  const data = frameSnapshot(Buffer.concat(parts));
  const sum = createHash('sha256').update(data).digest();
  const write = (msg: unknown): Promise<void> =>
    new Promise((resolve) => {
      if (call.write(msg)) resolve();
      else call.once('drain', () => resolve());
    });
  for (let o = 0; o < data.length; o += SNAPSHOT_BLOB_BYTES) {
    const blob = data.subarray(o, o + SNAPSHOT_BLOB_BYTES);
    // etcd 3.4 (v3rpc/maintenance.go): no header, remaining_bytes = total - sent, not counting the checksum.
    await write({ remaining_bytes: data.length - o - blob.length, blob });
  }
  await write({ remaining_bytes: 0, blob: sum });
  call.end();
}

/** etcdserverpb.Maintenance. Snapshot, MoveLeader and Downgrade come with the cluster work. */
export function maintenanceService(server: MaintenanceServer, metrics: ServerMetrics): grpc.UntypedServiceImplementation {
  const u = <Req, Res>(m: string, fn: (r: Req) => Promise<Res> | Res) => unary<Req, Res>(metrics, 'etcdserverpb.Maintenance', m, fn, server);
  return {
    Status: u('Status', async () => {
      const { dbSize, dbSizeInUse } = await server.backendSize();
      return {
        header: server.header(server.revision()),
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
      const hash = await server.hash();
      return { header: server.header(server.revision()), hash };
    }),
    HashKV: u('HashKV', async (r: { revision: string }) => {
      const res = await server.hashKV(Number(r.revision));
      return { header: server.header(server.revision()), hash: res.hash, compact_revision: res.compactRev, hash_revision: res.hashRev };
    }),
    Defragment: u('Defragment', async () => {
      await server.defragment();
      return { header: server.header(server.revision()) };
    }),
    Snapshot: (call: grpc.ServerWritableStream<unknown, unknown>) => {
      void streamSnapshot(server, call).catch((e: unknown) => call.emit('error', toServiceError(e)));
    },
    MoveLeader: u('MoveLeader', async (r: { targetID: string }) => {
      await server.moveLeader(BigInt(r.targetID));
      return { header: server.header(server.revision()) };
    }),
    // etcd's AlarmResponse carries no header (the applier builds it bare, maintenanceServer passes it on).
    Alarm: u('Alarm', async (r: AlarmRequest) => ({ alarms: (await server.alarm(r)).alarms })),
  };
}
