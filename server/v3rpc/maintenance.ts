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
import type { AuthServer } from '../etcdserver/interfaces';
import type { AuthResolver } from './auth-interceptor';
import { ErrInvalidAuthToken, ErrPermissionDenied, ErrUserEmpty, ErrUserNotFound, EtcdError } from '../etcdserver/errors';
import { status } from '@grpc/grpc-js';

/**
 * etcd's authMaintenanceServer returns the auth package's errors untranslated, so clients see
 * codes.Unknown with "auth: ..." text (etcdctl defrag: "rpc error: code = Unknown desc = auth:
 * permission denied"); kept so, as clients may match it.
 */
function untranslated(e: unknown): unknown {
  if (e instanceof ErrPermissionDenied) return new EtcdError('auth: permission denied', status.UNKNOWN);
  if (e instanceof ErrUserEmpty) return new EtcdError('auth: user name is empty', status.UNKNOWN);
  if (e instanceof ErrUserNotFound) return new EtcdError('auth: user not found', status.UNKNOWN);
  if (e instanceof ErrInvalidAuthToken) return new EtcdError('auth: invalid auth token', status.UNKNOWN);
  return e;
}

/** The root-role check of Defragment, Snapshot, Hash and HashKV. */
async function checkAdmin(auth: AuthServer, resolver: AuthResolver, call: { metadata: grpc.Metadata }): Promise<void> {
  try {
    auth.isAdminPermitted(await resolver.authInfo(call));
  } catch (e) {
    throw untranslated(e);
  }
}

/** Bytes per Snapshot response message (etcd's snapshotSendBufferSize: 32 KiB). */
export const SNAPSHOT_BLOB_BYTES = 32 * 1024;
/** Bytes of the temporary database read at a time while streaming it (a multiple of the blob size). */
const SNAPSHOT_READ_BYTES = 32 * SNAPSHOT_BLOB_BYTES;

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
      const readAt = async (at: number): Promise<Buffer> => {
        const buf = Buffer.allocUnsafe(Math.min(SNAPSHOT_READ_BYTES, total - at));
        const { bytesRead } = await fh.read(buf, 0, buf.length, at);
        if (bytesRead !== buf.length) throw new Error('snapshot: short read of the temporary database');
        return buf;
      };
      const h = createHash('sha256');
      // The file is read SNAPSHOT_READ_BYTES at a time, the next read in flight while this one's
      // blobs (views into it) are sent, so the stream rarely waits on the disk.
      let next: Promise<Buffer> | null = total > 0 ? readAt(0) : null;
      for (let readTo = 0, sent = 0; next !== null && !cancelled; ) {
        const chunk = await next;
        readTo += chunk.length;
        next = readTo < total ? readAt(readTo) : null;
        next?.catch(() => undefined); // awaited next round, or dropped on cancel
        h.update(chunk);
        for (let o = 0; o < chunk.length && !cancelled; o += SNAPSHOT_BLOB_BYTES) {
          const blob = chunk.subarray(o, Math.min(o + SNAPSHOT_BLOB_BYTES, chunk.length));
          sent += blob.length;
          // etcd 3.4 (v3rpc/maintenance.go): no header, remaining_bytes = total - sent, not counting the checksum.
          await write({ remaining_bytes: total - sent, blob });
        }
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
export function maintenanceService(server: MaintenanceServer, metrics: ServerMetrics, auth: AuthServer, resolver: AuthResolver): grpc.UntypedServiceImplementation {
  const u = <Req, Res>(m: string, fn: (r: Req, call: grpc.ServerUnaryCall<Req, Res>) => Promise<Res> | Res) =>
    unary<Req, Res>(metrics, 'etcdserverpb.Maintenance', m, fn, server);
  // etcd's authMaintenanceServer: Defragment, Snapshot, Hash and HashKV need the root role;
  // Status, MoveLeader and Alarm do not (etcd 3.4).
  const admin = <Req, Res>(m: string, fn: (r: Req) => Promise<Res>) =>
    u<Req, Res>(m, async (r, call) => {
      await checkAdmin(auth, resolver, call);
      return fn(r);
    });
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
    Hash: admin('Hash', async () => {
      const hash = await server.hash();
      return { header: server.header(server.revision()), hash };
    }),
    HashKV: admin('HashKV', async (r: { revision: string }) => {
      const res = await server.hashKV(Number(r.revision));
      return { header: server.header(server.revision()), hash: res.hash, compact_revision: res.compactRev, hash_revision: res.hashRev };
    }),
    // etcd 3.4 answers Defragment and MoveLeader with empty responses (&pb.DefragmentResponse{},
    // &pb.MoveLeaderResponse{}): no header.
    Defragment: admin('Defragment', async () => {
      await server.defragment();
      return {};
    }),
    Snapshot: (call: grpc.ServerWritableStream<unknown, unknown>) => {
      void checkAdmin(auth, resolver, call)
        .then(() => streamSnapshot(server, call))
        .catch((e: unknown) => call.emit('error', toServiceError(e)));
    },
    MoveLeader: u('MoveLeader', async (r: { targetID: string }) => {
      await server.moveLeader(BigInt(r.targetID));
      return {};
    }),
    // etcd's AlarmResponse carries no header (the applier builds it bare, maintenanceServer passes it on).
    // Any caller may raise, list or clear alarms (etcd 3.4), but the request goes through Raft, so
    // etcd's processInternalRaftRequestOnce reads its auth info first: a token that does not
    // resolve (forged, expired) fails it with "invalid auth token" — untranslated, as etcd 3.4's
    // maintenanceServer.Alarm returns it ("auth: invalid auth token", codes.Unknown).
    Alarm: u('Alarm', async (r: AlarmRequest, call) => {
      await resolver.authInfo(call).catch((e: unknown) => {
        throw untranslated(e);
      });
      return { alarms: (await server.alarm(r)).alarms };
    }),
  };
}
