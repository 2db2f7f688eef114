import { ConfChangeType, type Status } from '../../../raft';
import {
  ErrLearnerNotReady,
  ErrMemberBadURLs,
  ErrMemberExist,
  ErrMemberNotEnoughStarted,
  ErrMemberNotFound,
  ErrMemberNotLearner,
  ErrNoLeader,
  ErrNotLeader,
  ErrPeerURLExist,
  ErrTooManyLearners,
  ErrUnhealthy,
} from '../errors';
import { computeMemberId } from './member-id';
import { urlScheme } from '../../transport/url-scheme';
import type { Member, Membership } from './membership';

/** etcd allows one learner at a time (maxLearners). */
export const MAX_LEARNERS = 1;
/** A learner may be promoted once its log is within this fraction of the leader's (etcd: readyPercent 0.9). */
export const LEARNER_READY_PERCENT = 0.9;
/** etcd's HealthInterval: a peer counts as connected once its connection has been up this long. */
export const HEALTH_INTERVAL_MS = 5_000;

export interface ReconfigDeps {
  memberId: bigint;
  /** --strict-reconfig-check (etcd's default: true). */
  strictReconfigCheck: boolean;
  membership: Membership;
  raftStatus(): Status;
  /** When a peer's current connection became active, undefined while it is down (etcd's transport.ActiveSince). */
  activeSince(id: bigint): number | undefined;
  proposeConfChange(type: ConfChangeType, nodeId: bigint, member?: Member): Promise<void>;
  /** Asks the leader whether a learner is ready (MemberPromote arriving at a follower). */
  askLeaderLearnerReady(id: bigint): Promise<boolean>;
}

/**
 * Membership changes as the Cluster API asks for them (etcd 3.4's server.go AddMember,
 * RemoveMember, PromoteMember, UpdateMember with mayAddMember, mayRemoveMember and
 * mayPromoteMember). Each one is checked here, proposed as a Raft conf change, and takes effect
 * when applied (apply/apply-chain.ts).
 */
export class Reconfig {
  constructor(private readonly d: ReconfigDeps) {}

  /**
   * MemberAdd: a new member (or learner) with an ID derived from its URLs and the time, as etcd's
   * v3rpc MemberAdd builds it (membership.NewMember("", urls, "", &now): no cluster token). The
   * checks come in etcd's order: mayAddMember before proposing, then ValidateConfigurationChange's
   * (a removed ID, an existing ID, a peer URL in use, too many learners), so the same request
   * meets the same refusal (two adds of the same URLs within one second: "member ID already exist").
   */
  async addMember(peerUrls: string[], isLearner: boolean): Promise<{ member: Member; members: Member[] }> {
    const { membership } = this.d;
    if (peerUrls.length === 0 || !peerUrls.every(isPeerUrl)) throw new ErrMemberBadURLs();
    if (this.d.strictReconfigCheck) this.mayAddMember(isLearner);
    const id = computeMemberId(peerUrls, '', Math.floor(Date.now() / 1000));
    // ErrIDRemoved, which etcd's togRPCError answers as ErrGRPCMemberNotFound.
    if (membership.isRemoved(id)) throw new ErrMemberNotFound();
    if (membership.get(id)) throw new ErrMemberExist();
    const taken = new Set(membership.list().flatMap((m) => m.peerUrls));
    if (peerUrls.some((u) => taken.has(u))) throw new ErrPeerURLExist();
    if (isLearner && membership.list().filter((m) => m.isLearner).length >= MAX_LEARNERS) throw new ErrTooManyLearners();
    const member: Member = { id, name: '', peerUrls, clientUrls: [], isLearner };
    await this.d.proposeConfChange(isLearner ? ConfChangeType.AddLearnerNode : ConfChangeType.AddNode, id, member);
    return { member, members: membership.list() };
  }

  async removeMember(id: bigint): Promise<Member[]> {
    const m = this.d.membership.get(id);
    if (!m) throw new ErrMemberNotFound();
    if (this.d.strictReconfigCheck && !m.isLearner) this.mayRemoveVoter(id);
    await this.d.proposeConfChange(ConfChangeType.RemoveNode, id);
    return this.d.membership.list();
  }

  /**
   * MemberPromote: only the leader knows whether the learner has caught up, so a follower asks it
   * (etcd forwards the whole promote to the leader when isLearnerReady answers ErrNotLeader).
   */
  async promoteMember(id: bigint): Promise<Member[]> {
    const m = this.d.membership.get(id);
    if (!m) throw new ErrMemberNotFound();
    if (!m.isLearner) throw new ErrMemberNotLearner();
    const st = this.d.raftStatus();
    if (st.lead === 0n) throw new ErrNoLeader();
    const ready = st.lead === this.d.memberId ? await this.learnerReady(id) : await this.d.askLeaderLearnerReady(id);
    if (!ready) throw new ErrLearnerNotReady();
    // etcd's IsReadyToPromoteMember: the learner counts as started, for the future quorum.
    if (this.d.strictReconfigCheck) {
      const { voters, started } = this.started();
      if (started + 1 < Math.floor((voters.length + 1) / 2) + 1) throw new ErrMemberNotEnoughStarted();
    }
    await this.d.proposeConfChange(ConfChangeType.AddNode, id, { ...m, isLearner: false });
    return this.d.membership.list();
  }

  async updateMember(id: bigint, peerUrls: string[]): Promise<Member[]> {
    const { membership } = this.d;
    const m = membership.get(id);
    if (!m) throw new ErrMemberNotFound();
    if (peerUrls.length === 0 || !peerUrls.every(isPeerUrl)) throw new ErrMemberBadURLs();
    const taken = new Set(membership.list().filter((x) => x.id !== id).flatMap((x) => x.peerUrls));
    if (peerUrls.some((u) => taken.has(u))) throw new ErrPeerURLExist();
    await this.d.proposeConfChange(ConfChangeType.UpdateNode, id, { ...m, peerUrls });
    return membership.list();
  }

  /** etcd's isLearnerReady, on the leader: the learner's match index is within 90% of the leader's commit. */
  async learnerReady(id: bigint): Promise<boolean> {
    const st = this.d.raftStatus();
    // etcd's isLearnerReady answers ErrNotLeader off the leader (its caller then forwards).
    if (st.lead !== this.d.memberId) throw new ErrNotLeader();
    const pr = st.progress?.get(id);
    return pr !== undefined && pr.match >= st.commit * LEARNER_READY_PERCENT;
  }

  /** A member has started once it published its name (etcd's Member.IsStarted). */
  private started(): { voters: Member[]; started: number } {
    const voters = this.d.membership.list().filter((m) => !m.isLearner);
    return { voters, started: voters.filter((m) => m.name !== '').length };
  }

  /** Connected, and for at least HEALTH_INTERVAL_MS (etcd's numConnectedSince counts this member too). */
  private connectedSince(voters: Member[], sinceMs: number): number {
    let n = 0;
    for (const m of voters) {
      const t = m.id === this.d.memberId ? 0 : this.d.activeSince(m.id);
      if (t !== undefined && t <= sinceMs) n++;
    }
    return n;
  }

  /** etcd's mayAddMember. */
  private mayAddMember(isLearner: boolean): void {
    const { voters, started } = this.started();
    if (!isLearner) {
      // IsReadyToAddVotingMember: a quorum of the grown cluster must already be started; adding a
      // second member to a one-member cluster (restoring a cluster from one member) is allowed.
      const members = voters.length + 1;
      if (!(started === 1 && members === 2) && started < Math.floor(members / 2) + 1) throw new ErrMemberNotEnoughStarted();
    }
    // isConnectedFullySince: every voting member connected for HealthInterval.
    if (this.connectedSince(voters, Date.now() - HEALTH_INTERVAL_MS) < voters.length) throw new ErrUnhealthy();
  }

  /** etcd's mayRemoveMember, for a voter. */
  private mayRemoveVoter(id: bigint): void {
    const { voters } = this.started();
    const rest = voters.filter((m) => m.id !== id);
    const startedRest = rest.filter((m) => m.name !== '').length;
    if (startedRest < Math.floor(rest.length / 2) + 1) throw new ErrMemberNotEnoughStarted();
    // A member that is down is safe to remove: it is not part of the active quorum.
    if (id !== this.d.memberId && this.d.activeSince(id) === undefined) return;
    const active = this.connectedSince(voters, Date.now() - HEALTH_INTERVAL_MS);
    if (active - 1 < 1 + Math.floor((voters.length - 1) / 2)) throw new ErrUnhealthy();
  }
}

/** etcd's types.NewURLs: http, https, unix or unixs. */
function isPeerUrl(u: string): boolean {
  try {
    urlScheme(new URL(u));
    return true;
  } catch {
    return false;
  }
}
