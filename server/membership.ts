import type { MemberMsg } from '../proto/etcd-types';

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
  }

  get(id: bigint): Member | undefined {
    return this.members.get(id);
  }

  isRemoved(id: bigint): boolean {
    return this.removed.has(id);
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
