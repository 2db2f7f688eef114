import type { NodeId } from './types';

/**
 * Majority and joint-majority math (etcd-io/raft quorum/). A joint configuration (thesis §4.3)
 * needs a majority of the incoming AND of the outgoing voters for every decision.
 */

export enum VoteResult {
  Pending = 1,
  Lost = 2,
  Won = 3,
}

/** Index acknowledged by a voter, or undefined if unknown. */
export type AckedIndexer = (id: NodeId) => number | undefined;

// Reused scratch space: committedIndex runs on every append acknowledgement, so it must not allocate.
let scratch: number[] = new Array<number>(8).fill(0);

/**
 * The largest index acknowledged by a majority of `voters`. An empty config returns +Infinity so
 * that the other half of a joint config decides alone (etcd returns math.MaxUint64).
 */
export function majorityCommittedIndex(voters: ReadonlySet<NodeId>, acked: AckedIndexer): number {
  const n = voters.size;
  if (n === 0) return Number.POSITIVE_INFINITY;
  if (scratch.length < n) scratch = new Array<number>(n).fill(0);
  let k = 0;
  for (const id of voters) {
    const idx = acked(id);
    // Insertion sort, descending: configs are small (3-7 voters).
    const v = idx === undefined ? 0 : idx;
    let j = k++;
    while (j > 0 && scratch[j - 1] < v) {
      scratch[j] = scratch[j - 1];
      j--;
    }
    scratch[j] = v;
  }
  // With n voters sorted descending, the (n/2+1)-th largest is on a majority.
  return scratch[(n >> 1)];
}

export function majorityVoteResult(voters: ReadonlySet<NodeId>, votes: ReadonlyMap<NodeId, boolean>): VoteResult {
  const n = voters.size;
  // An empty config wins every vote, so a joint config with an empty half behaves like the other half.
  if (n === 0) return VoteResult.Won;
  let granted = 0;
  let missing = 0;
  for (const id of voters) {
    const v = votes.get(id);
    if (v === undefined) missing++;
    else if (v) granted++;
  }
  const q = (n >> 1) + 1;
  if (granted >= q) return VoteResult.Won;
  if (granted + missing >= q) return VoteResult.Pending;
  return VoteResult.Lost;
}

export function jointCommittedIndex(
  incoming: ReadonlySet<NodeId>,
  outgoing: ReadonlySet<NodeId>,
  acked: AckedIndexer,
): number {
  const a = majorityCommittedIndex(incoming, acked);
  const b = majorityCommittedIndex(outgoing, acked);
  return a < b ? a : b;
}

export function jointVoteResult(
  incoming: ReadonlySet<NodeId>,
  outgoing: ReadonlySet<NodeId>,
  votes: ReadonlyMap<NodeId, boolean>,
): VoteResult {
  const r1 = majorityVoteResult(incoming, votes);
  const r2 = majorityVoteResult(outgoing, votes);
  if (r1 === r2) return r1;
  if (r1 === VoteResult.Lost || r2 === VoteResult.Lost) return VoteResult.Lost;
  // One half won, the other is pending.
  return VoteResult.Pending;
}
