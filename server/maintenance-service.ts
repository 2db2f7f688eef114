import type * as grpc from '@grpc/grpc-js';
import type { AlarmRequest } from '../proto/etcd-types';
import { SERVER_VERSION } from './version';
import type { EtcdServer } from './etcd-server';
import { unary } from './grpc-handler';
import type { ServerMetrics } from './metrics';
import { ErrFutureRev } from './errors';

/** etcdserverpb.Maintenance. Snapshot, MoveLeader and Downgrade come with the cluster work. */
export function maintenanceService(server: EtcdServer, metrics: ServerMetrics): grpc.UntypedServiceImplementation {
  const u = <Req, Res>(m: string, fn: (r: Req) => Promise<Res> | Res) => unary<Req, Res>(metrics, 'etcdserverpb.Maintenance', m, fn);
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
      await server.store.backend.defragment();
      await server.refreshDbSize();
      return { header: server.header(server.store.rev) };
    }),
    MoveLeader: u('MoveLeader', async (r: { targetID: string }) => {
      await server.moveLeader(BigInt(r.targetID));
      return { header: server.header(server.store.rev) };
    }),
    Alarm: u('Alarm', (r: AlarmRequest) => server.alarm(r)),
  };
}
