import { ConfChangeType, type Status } from '../../../raft';
import {
  ErrLearnerNotReady,
  ErrMemberBadURLs,
  ErrMemberExist,
  ErrMemberNotEnoughStarted,
  ErrMemberNotFound,
  ErrMemberNotLearner,
  ErrNoLeader,
  ErrPeerURLExist,
  ErrTooManyLearners,
  ErrUnhealthy,
} from '../errors';
import { computeMemberId } from './member-id';
import type { Member, Membership } from './membership';

/** etcd allows one learner at a time (maxLearners). */
export const MAX_LEARNERS = 1;
/** A learner may be promoted once its log is within this fraction of the leader's (etcd: readyPercent 0.9). */
export const LEARNER_READY_PERCENT = 0.9;

export interface ReconfigDeps {
  memberId: bigint;
  initialClusterToken: string;
  /** --strict-reconfig-check (etcd's default: true). */
  strictReconfigCheck: boolean;
  membership: Membership;
  raftStatus(): Status;
  proposeConfChange(type: ConfChangeType, nodeId: bigint, member?: Member): Promise<void>;
  /** Asks the leader whether a learner is ready (MemberPromote arriving at a follower). */
  askLeaderLearnerReady(id: bigint): Promise<boolean>;
}

/**
 * Membership changes as the Cluster API asks for them (etcd's server.go AddMember, RemoveMember,
 * PromoteMember, UpdateMember and their mayAdd/mayRemove/mayPromote checks). Each one is checked
 * here, proposed as a Raft conf change, and takes effect when applied (apply/apply-chain.ts).
 */
export class Reconfig {
  constructor(private readonly d: ReconfigDeps) {}

  /** MemberAdd: a new member (or learner) with an ID derived from its URLs, the token and the time. */
  async addMember(peerUrls: string[], isLearner: boolean): Promise<{ member: Member; members: Member[] }> {
    const { membership } = this.d;
    if (peerUrls.length === 0 || !peerUrls.every(isPeerUrl)) throw new ErrMemberBadURLs();
    const taken = new Set(membership.list().flatMap((m) => m.peerUrls));
    if (peerUrls.some((u) => taken.has(u))) throw new ErrPeerURLExist();
    if (isLearner && membership.list().filter((m) => m.isLearner).length >= MAX_LEARNERS) throw new ErrTooManyLearners();
    // etcd's mayAddMember: a voter may only be added while a quorum of the new configuration is started.
    if (this.d.strictReconfigCheck && !isLearner && !this.readyToAddVoter()) throw new ErrMemberNotEnoughStarted();
    const id = computeMemberId(peerUrls, this.d.initialClusterToken, Math.floor(Date.now() / 1000));
    if (membership.get(id) || membership.isRemoved(id)) throw new ErrMemberExist();
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
   * (etcd forwards the whole promote to the leader when it gets ErrNotLeader locally).
   */
  async promoteMember(id: bigint): Promise<Member[]> {
    const m = this.d.membership.get(id);
    if (!m) throw new ErrMemberNotFound();
    if (!m.isLearner) throw new ErrMemberNotLearner();
    if (this.d.strictReconfigCheck && !this.readyToPromote()) throw new ErrMemberNotEnoughStarted();
    const st = this.d.raftStatus();
    const ready = st.lead === this.d.memberId ? this.learnerReady(id) : st.lead === 0n ? Promise.reject(new ErrNoLeader()) : this.d.askLeaderLearnerReady(id);
    if (!(await ready)) throw new ErrLearnerNotReady();
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
    if (st.lead !== this.d.memberId) throw new ErrNoLeader();
    const pr = st.progress?.get(id);
    return pr !== undefined && pr.match >= st.commit * LEARNER_READY_PERCENT;
  }

  /** A member has started once it published its name (etcd's Member.IsStarted). */
  private started(): { voters: Member[]; started: number } {
    const voters = this.d.membership.list().filter((m) => !m.isLearner);
    return { voters, started: voters.filter((m) => m.name !== '').length };
  }

  /** etcd's IsReadyToAddVotingMember: a quorum of the grown cluster must already be started. */
  private readyToAddVoter(): boolean {
    const { voters, started } = this.started();
    const members = voters.length + 1;
    // Adding a second member to a one-member cluster (restoring a cluster from one member) is allowed.
    if (started === 1 && members === 2) return true;
    return started >= Math.floor(members / 2) + 1;
  }

  /** etcd's IsReadyToPromoteMember: the learner counts as started, for the future quorum. */
  private readyToPromote(): boolean {
    const { voters, started } = this.started();
    return started + 1 >= Math.floor((voters.length + 1) / 2) + 1;
  }

  /**
   * etcd's mayRemoveMember: the members left must have a started quorum, and removing the voter
   * must not break the quorum of members this one is actually in touch with (etcd counts peers
   * its transport heard from within HealthInterval; the leader's Raft progress, recently active
   * within an election timeout under check-quorum, is the same evidence here).
   */
  private mayRemoveVoter(id: bigint): void {
    const { voters } = this.started();
    const rest = voters.filter((m) => m.id !== id);
    const startedRest = rest.filter((m) => m.name !== '').length;
    if (startedRest < Math.floor(rest.length / 2) + 1) throw new ErrMemberNotEnoughStarted();
    const st = this.d.raftStatus();
    if (st.lead !== this.d.memberId || !st.progress) return;
    let active = 0;
    for (const m of voters) {
      if (m.id === this.d.memberId) active++;
      else if (st.progress.get(m.id)?.recentActive) active++;
    }
    // The member being removed may be one of the active ones: what remains must still be a quorum.
    if (active - 1 < Math.floor((voters.length - 1) / 2) + 1) throw new ErrUnhealthy();
  }
}

function isPeerUrl(u: string): boolean {
  try {
    const url = new URL(u);
    return url.protocol === 'http:' || url.protocol === 'https:';
  } catch {
    return false;
  }
}
