import type { MemberMsg } from '../../../proto/etcd-types';
import type { FetchedMembers } from '../../rafthttp/transport';

/**
 * The cluster's members (etcd membership.RaftCluster): IDs, names, peer and client URLs and
 * learner status. Every member holds the same list because it changes only through the log.
 */
export interface Member {
  id: bigint;
  name: string;
  peerUrls: string[];
  clientUrls: string[];
  isLearner: boolean;
}

export interface MembershipPersistence {
  putMember(m: Member): void;
  deleteMember(id: bigint): void;
  /** Records a removed ID for good (etcd's members_removed bucket). */
  putRemoved(id: bigint): void;
}

export class Membership {
  private readonly members = new Map<bigint, Member>();
  private readonly removed = new Set<bigint>();

  constructor(
    readonly clusterId: bigint,
    private readonly persistence: MembershipPersistence,
  ) {}

  restore(members: Iterable<Member>, removed: Iterable<bigint> = []): void {
    this.members.clear();
    this.removed.clear();
    for (const m of members) this.members.set(m.id, m);
    for (const id of removed) this.removed.add(id);
  }

  add(m: Member): void {
    this.members.set(m.id, m);
    this.persistence.putMember(m);
  }

  remove(id: bigint): void {
    this.members.delete(id);
    this.removed.add(id);
    this.persistence.deleteMember(id);
    this.persistence.putRemoved(id);
  }

  /** Writes the whole list (a joining member persists what it fetched, before it has a snapshot). */
  persistAll(): void {
    for (const m of this.members.values()) this.persistence.putMember(m);
    for (const id of this.removed) this.persistence.putRemoved(id);
  }

  get(id: bigint): Member | undefined {
    return this.members.get(id);
  }

  isRemoved(id: bigint): boolean {
    return this.removed.has(id);
  }

  removedIds(): bigint[] {
    return [...this.removed];
  }

  list(): Member[] {
    return [...this.members.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  voters(): bigint[] {
    return this.list().filter((m) => !m.isLearner).map((m) => m.id);
  }

  static toMsg(m: Member): MemberMsg {
    return { ID: m.id.toString(), name: m.name, peerURLs: m.peerUrls, clientURLs: m.clientUrls, isLearner: m.isLearner };
  }
}

export function encodeMember(m: Member): Buffer {
  return Buffer.from(JSON.stringify({ id: m.id.toString(), name: m.name, peerUrls: m.peerUrls, clientUrls: m.clientUrls, isLearner: m.isLearner }));
}

export function decodeMember(b: Buffer): Member {
  const o = JSON.parse(b.toString()) as { id: string; name: string; peerUrls: string[]; clientUrls: string[]; isLearner: boolean };
  return { id: BigInt(o.id), name: o.name, peerUrls: o.peerUrls, clientUrls: o.clientUrls, isLearner: o.isLearner };
}

/**
 * The member list a joining member trusts: the one from the peer that has applied the most (it has
 * seen every membership change the others have), minus IDs that any peer knows were removed.
 */
export function chooseMemberList(answers: FetchedMembers[]): { clusterId: bigint; members: Member[]; removed: bigint[] } {
  const clusterIds = new Set(answers.map((a) => a.clusterId));
  if (clusterIds.size > 1) throw new Error(`peers disagree on the cluster ID: ${[...clusterIds].map((c) => c.toString(16)).join(', ')}`);
  const best = answers.reduce((a, b) => (b.appliedIndex > a.appliedIndex ? b : a));
  const removed = [...new Set(answers.flatMap((a) => a.removed))];
  return { clusterId: best.clusterId, members: best.members.map(decodeMember).filter((m) => !removed.includes(m.id)), removed };
}
