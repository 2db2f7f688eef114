import type { ConfState } from '../../../raft';

/**
 * The conf state as the WAL's snapshot record stores it (the format EtcdServer.open decodes). A
 * snapshot received from the leader carries empty data (its backend travels separately), so the
 * Raft driver encodes the record from the snapshot's metadata.
 */
export function encodeConfStateRecord(cs: ConfState): Buffer {
  const ids = (xs: bigint[]): string[] => xs.map(String);
  return Buffer.from(
    JSON.stringify({ voters: ids(cs.voters), learners: ids(cs.learners), votersOutgoing: ids(cs.votersOutgoing), learnersNext: ids(cs.learnersNext), autoLeave: cs.autoLeave }),
  );
}

/** The inverse of encodeConfStateRecord (the WAL's snapshot record). */
export function decodeConfStateRecord(b: Uint8Array): ConfState {
  const o = JSON.parse(Buffer.from(b).toString()) as { voters: string[]; learners: string[]; votersOutgoing?: string[]; learnersNext?: string[]; autoLeave?: boolean };
  return {
    voters: o.voters.map(BigInt),
    learners: o.learners.map(BigInt),
    votersOutgoing: (o.votersOutgoing ?? []).map(BigInt),
    learnersNext: (o.learnersNext ?? []).map(BigInt),
    autoLeave: o.autoLeave ?? false,
  };
}
