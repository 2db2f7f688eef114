import type { Member } from './membership';

/**
 * What a ConfChange entry carries in its context (etcd puts the marshalled Member there): who waits
 * for it on the proposing member, and the member it adds or updates.
 */
export interface ConfChangeContext {
  requestId?: string;
  member?: MemberJson;
}

interface MemberJson {
  id: string;
  name: string;
  peerUrls: string[];
  clientUrls: string[];
  isLearner: boolean;
}

export function encodeConfChangeContext(requestId: string, member: Member | undefined): Buffer {
  const ctx: ConfChangeContext = {
    requestId,
    member: member ? { id: member.id.toString(), name: member.name, peerUrls: member.peerUrls, clientUrls: member.clientUrls, isLearner: member.isLearner } : undefined,
  };
  return Buffer.from(JSON.stringify(ctx));
}

export function decodeConfChangeContext(b: Uint8Array | undefined): ConfChangeContext | undefined {
  return b && b.length > 0 ? (JSON.parse(Buffer.from(b).toString()) as ConfChangeContext) : undefined;
}

export function memberFromContext(ctx: ConfChangeContext): Member | undefined {
  const j = ctx.member;
  return j ? { id: BigInt(j.id), name: j.name, peerUrls: j.peerUrls, clientUrls: j.clientUrls, isLearner: j.isLearner } : undefined;
}
