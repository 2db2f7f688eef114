import type * as grpc from '@grpc/grpc-js';
import type { AlarmRequest } from '../../proto/etcd-types';
import { CLUSTER_VERSION, SERVER_VERSION } from '../version';
import type { MaintenanceServer } from '../etcdserver/interfaces';
import { unary } from './interceptor';
import type { ServerMetrics } from '../etcdserver/metrics';
import { toServiceError } from './grpc-errors';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { writeEtcdDb } from '../storage/schema/etcd-snapshot';

/** Bytes per Snapshot response message (etcd's snapshotSendBufferSize: 32 KiB). */
export const SNAPSHOT_BLOB_BYTES = 32 * 1024;

/**
 * Maintenance.Snapshot, as etcd's v3rpc/maintenance.go: the backend as a bbolt database in etcd's
 * layout (so `etcdctl snapshot status/restore` and etcd itself read it), streamed in 32 KiB blobs
 * with remaining_bytes counting down to 0 over the database, then its sha256 as one last blob.
 * The database is first written to a temporary file from one consistent backend iteration (its
 * size is needed up front for remaining_bytes), page by page, so memory stays small however large
 * the backend is; the file is removed when the stream ends.
 */
async function streamSnapshot(server: MaintenanceServer, call: grpc.ServerWritableStream<unknown, unknown>): Promise<void> {
  const dir = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'cairn-snapshot-'));
  try {
    const file = path.join(dir, 'db');
    const fd = fs.openSync(file, 'w', 0o600);
    let total: number;
    try {
      total = await writeEtcdDb(server.snapshotEntries(), fd, CLUSTER_VERSION);
    } finally {
      fs.closeSync(fd);
    }
    const fh = await fs.promises.open(file, 'r');
    try {
      let cancelled = false;
      call.once('cancelled', () => (cancelled = true));
      const write = (msg: unknown): Promise<void> =>
        new Promise((resolve) => {
          if (call.write(msg)) resolve();
          else {
            const done = (): void => {
              call.off('drain', done);
              call.off('cancelled', done);
              resolve();
            };
            call.once('drain', done);
            call.once('cancelled', done);
          }
        });
      const h = createHash('sha256');
      for (let sent = 0; sent < total && !cancelled; ) {
        const blob = Buffer.allocUnsafe(Math.min(SNAPSHOT_BLOB_BYTES, total - sent));
        const { bytesRead } = await fh.read(blob, 0, blob.length, sent);
        if (bytesRead !== blob.length) throw new Error('snapshot: short read of the temporary database');
        sent += blob.length;
        h.update(blob);
        // etcd 3.4 (v3rpc/maintenance.go): no header, remaining_bytes = total - sent, not counting the checksum.
        await write({ remaining_bytes: total - sent, blob });
      }
      if (!cancelled) await write({ remaining_bytes: 0, blob: h.digest() });
      call.end();
    } finally {
      await fh.close();
    }
  } finally {
    await fs.promises.rm(dir, { recursive: true, force: true });
  }
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
