import type * as grpc from '@grpc/grpc-js';
import type { ClusterServer } from '../etcdserver/interfaces';
import { unary } from './interceptor';
import { Membership } from '../etcdserver/membership/membership';
import type { ServerMetrics } from '../etcdserver/metrics';
import type { AuthServer } from '../etcdserver/interfaces';
import type { AuthResolver } from './auth-interceptor';

/** etcdserverpb.Cluster: membership changes go through Raft as configuration changes. */
export function clusterService(server: ClusterServer, metrics: ServerMetrics, auth: AuthServer, resolver: AuthResolver): grpc.UntypedServiceImplementation {
  const u = <Req, Res>(m: string, fn: (r: Req) => Promise<Res> | Res) => unary<Req, Res>(metrics, 'etcdserverpb.Cluster', m, fn);
  // etcd's checkMembershipOperationPermission: add, remove, update and promote need the root role.
  const admin = <Req, Res>(m: string, fn: (r: Req) => Promise<Res>) =>
    unary<Req, Res>(metrics, 'etcdserverpb.Cluster', m, async (r, call) => {
      auth.isAdminPermitted(await resolver.authInfo(call));
      return fn(r);
    });
  // etcd's Cluster responses carry no revision (only cluster, member and term).
  const header = () => server.header(0);
  return {
    MemberList: u('MemberList', async (r: { linearizable: boolean }) => {
      if (r.linearizable) await server.linearizableReadNotify();
      return { header: header(), members: server.members().map(Membership.toMsg) };
    }),
    MemberAdd: admin('MemberAdd', async (r: { peerURLs: string[]; isLearner: boolean }) => {
      const { member, members } = await server.addMember(r.peerURLs, r.isLearner);
      return { header: header(), member: Membership.toMsg(member), members: members.map(Membership.toMsg) };
    }),
    MemberRemove: admin('MemberRemove', async (r: { ID: string }) => {
      const members = await server.removeMember(BigInt(r.ID));
      return { header: header(), members: members.map(Membership.toMsg) };
    }),
    MemberUpdate: admin('MemberUpdate', async (r: { ID: string; peerURLs: string[] }) => {
      const members = await server.updateMember(BigInt(r.ID), r.peerURLs);
      return { header: header(), members: members.map(Membership.toMsg) };
    }),
    MemberPromote: admin('MemberPromote', async (r: { ID: string }) => {
      const members = await server.promoteMember(BigInt(r.ID));
      return { header: header(), members: members.map(Membership.toMsg) };
    }),
  };
}
