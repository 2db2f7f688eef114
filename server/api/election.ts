/**
 * v3electionpb.Election (etcd v3election/election.go): the clientv3/concurrency Election recipe,
 * run in the server over its own KV, Lease and Watch APIs (see lock-service.ts for the in-process
 * client). Candidates are keys name + "/" + hex(lease); the leader is the oldest one.
 */
import type * as grpc from '@grpc/grpc-js';
import type { WatchableStore } from '../../mvcc/watchable-store';
import type { KeyValueMsg, ResponseHeader } from '../../proto/etcd-types';
import { toKvMsg } from '../etcdserver/apply/applier';
import { ErrElectionNoLeader, ErrElectionNotLeader, ErrMissingLeaderKey } from '../etcdserver/errors';
import type { KvServer, LeaseServer } from '../etcdserver/interfaces';
import { unary } from '../v3rpc/interceptor';
import { toServiceError } from '../v3rpc/grpc-errors';
import {
  RecipeClient,
  callSignal,
  createRevisionIs,
  firstCreate,
  leaseHex,
  opDelete,
  opGet,
  opPut,
  prefixEnd,
} from './lock';
import type { ServerMetrics } from '../etcdserver/metrics';


interface LeaderKeyMsg {
  name: Buffer;
  key: Buffer;
  rev: string;
  lease: string;
}

const slash = (name: Buffer): Buffer => Buffer.concat([name, Buffer.from('/')]);

export function electionService(server: KvServer & LeaseServer, hub: WatchableStore, metrics: ServerMetrics): grpc.UntypedServiceImplementation {
  const c = new RecipeClient(server, hub);
  const u = <Req, Res>(m: string, fn: (r: Req, call: grpc.ServerUnaryCall<Req, Res>) => Promise<Res>) => unary<Req, Res>(metrics, 'v3electionpb.Election', m, fn);

  /** Election.Proclaim: rewrite the leader key's value if we still own it. */
  async function proclaim(leader: LeaderKeyMsg, value: Buffer): Promise<ResponseHeader> {
    // etcd runs the recipe through its in-process client: a txn on an empty key fails the KV
    // check, and the plain error reaches the caller as codes.Unknown.
    if (leader.key.length === 0) throw new Error('etcdserver: key is not provided');
    const r = await c.txn([createRevisionIs(leader.key, Number(leader.rev))], [opPut(leader.key, value, leader.lease)], []);
    if (!r.succeeded) throw new ErrElectionNotLeader();
    return r.header;
  }

  /** Election.Resign: delete the leader key if we still own it. */
  async function resign(leader: LeaderKeyMsg): Promise<ResponseHeader> {
    if (leader.key.length === 0) throw new Error('etcdserver: key is not provided');
    const r = await c.txn([createRevisionIs(leader.key, Number(leader.rev))], [opDelete(leader.key)], []);
    return r.header;
  }

  return {
    Campaign: u('Campaign', async (r: { name: Buffer; lease: string; value: Buffer }, call) => {
      const signal = callSignal(call);
      const lease = await c.sessionLease(r.lease);
      const pfx = slash(r.name);
      const key = Buffer.concat([pfx, Buffer.from(leaseHex(lease))]);
      const resp = await c.txn([createRevisionIs(key, 0)], [opPut(key, r.value, lease)], [opGet(key)]);
      const leader: LeaderKeyMsg = { name: r.name, key, rev: String(resp.header.revision), lease };
      if (!resp.succeeded) {
        const kv = resp.responses[0].response_range!.kvs[0];
        leader.rev = String(kv.create_revision);
        if (!kv.value.equals(r.value)) {
          try {
            await proclaim(leader, r.value);
          } catch (e) {
            await resign(leader).catch(() => undefined);
            throw e;
          }
        }
      }
      try {
        await c.waitDeletes(pfx, Number(leader.rev) - 1, signal);
      } catch (e) {
        if (signal.aborted) await resign(leader).catch(() => undefined);
        throw e;
      }
      return { header: resp.header, leader: { name: r.name, key, rev: leader.rev, lease } };
    }),
    Proclaim: u('Proclaim', async (r: { leader: LeaderKeyMsg | null; value: Buffer }) => {
      if (!r.leader) throw new ErrMissingLeaderKey();
      return { header: await proclaim(r.leader, r.value) };
    }),
    Resign: u('Resign', async (r: { leader: LeaderKeyMsg | null }) => {
      if (!r.leader) throw new ErrMissingLeaderKey();
      return { header: await resign(r.leader) };
    }),
    Leader: u('Leader', async (r: { name: Buffer }) => {
      const pfx = slash(r.name);
      const resp = await c.get(pfx, firstCreate(pfx));
      if (resp.kvs.length === 0) throw new ErrElectionNoLeader();
      return { header: resp.header, kv: resp.kvs[0] };
    }),
    Observe: (call: grpc.ServerWritableStream<{ name: Buffer }, unknown>) => {
      const signal = callSignal(call);
      observe(c, slash(call.request.name), signal, (header, kv) => call.write({ header, kv })).then(
        () => call.end(),
        (e: unknown) => {
          if (!signal.aborted) call.emit('error', toServiceError(e));
        },
      );
    },
  };
}

/**
 * Election.Observe: report the current leader and each of its value changes; when its key is
 * deleted, wait for the next leader (the first PUT under the prefix if there is none).
 */
async function observe(c: RecipeClient, pfx: Buffer, signal: AbortSignal, send: (h: ResponseHeader, kv: KeyValueMsg) => void): Promise<void> {
  while (!signal.aborted) {
    const resp = await c.get(pfx, firstCreate(pfx));
    let kv: KeyValueMsg | undefined = resp.kvs[0];
    let header = resp.header;
    if (kv === undefined) {
      await c.watch(pfx, prefixEnd(pfx), Number(resp.header.revision), signal, (events) => {
        const put = events.find((e) => e.type === 'PUT');
        if (!put) return false;
        kv = toKvMsg(put.kv);
        header = { ...c.server.header(put.kv.modRevision) };
        return true;
      });
    }
    const leader = kv!;
    send(header, leader);
    await c.watch(leader.key, null, Number(header.revision) + 1, signal, (events, rev) => {
      for (const e of events) {
        if (e.type === 'DELETE') return true;
        send(c.server.header(rev), toKvMsg(e.kv));
      }
      return false;
    });
  }
}
