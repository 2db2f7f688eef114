import { Unstable } from './log-unstable';
import { limitSize, type Storage } from './storage';
import { ErrCompacted, ErrUnavailable, assert } from './errors';
import { entrySizeBytes, type Entry, type Snapshot } from './types';

/** No limit on a slice's size. */
export const NO_LIMIT = Number.MAX_SAFE_INTEGER;

/**
 * The replicated log (thesis §3.5): the stable part in Storage, the unstable tail in Unstable
 * (etcd-io/raft log.go). Tracks `committed` (known to be on a quorum), `applying` (handed to the
 * caller in a Ready) and `applied` (the caller said it applied them, in advance()).
 */
export class RaftLog {
  readonly storage: Storage;
  unstable: Unstable;
  committed: number;
  applying: number;
  applied: number;
  /** Bound on the bytes of committed entries handed out per Ready (maxCommittedSizePerReady). */
  private readonly maxApplyingEntsSizeBytes: number;

  constructor(storage: Storage, maxApplyingEntsSizeBytes: number) {
    this.storage = storage;
    this.maxApplyingEntsSizeBytes = maxApplyingEntsSizeBytes;
    const first = storage.firstIndex();
    const last = storage.lastIndex();
    this.unstable = new Unstable(last + 1);
    // Everything up to the snapshot is committed and applied by definition.
    this.committed = first - 1;
    this.applying = first - 1;
    this.applied = first - 1;
  }

  /**
   * The follower side of AppendEntries (thesis Figure 3.1, receiver steps 2-5). Returns the index
   * of the last new entry, or undefined if the log does not contain (index, logTerm).
   */
  maybeAppend(index: number, logTerm: number, committed: number, ents: readonly Entry[], commitPastLastNewBug = false): number | undefined {
    if (!this.matchTerm(index, logTerm)) return undefined;
    const lastNew = index + ents.length;
    const ci = this.findConflict(ents);
    if (ci !== 0) {
      assert(ci > this.committed, 'maybeAppend: conflict with a committed entry');
      const first = ci - (index + 1);
      this.append(first === 0 ? ents : ents.slice(first));
    }
    // Only entries known to match the leader's log may be committed: up to lastNew, no further.
    // BROKEN ON PURPOSE when commitPastLastNewBug (tests only): entries after lastNew are unverified.
    this.commitTo(Math.min(committed, commitPastLastNewBug ? this.lastIndex() : lastNew));
    return lastNew;
  }

  append(ents: readonly Entry[]): number {
    if (ents.length === 0) return this.lastIndex();
    assert(ents[0].index - 1 >= this.committed, 'append: would overwrite committed entries');
    this.unstable.truncateAndAppend(ents);
    return this.lastIndex();
  }

  /**
   * The index of the first entry whose term conflicts with the log, or the first new entry, or 0
   * if all entries are already present. Entries must be contiguous.
   */
  findConflict(ents: readonly Entry[]): number {
    for (let i = 0; i < ents.length; i++) {
      if (!this.matchTerm(ents[i].index, ents[i].term)) return ents[i].index;
    }
    return 0;
  }

  /**
   * Fast backtracking (thesis §5.3 / etcd's findConflictByTerm): the largest index ≤ index whose
   * term is ≤ term, with that term. Every entry after it up to index has a larger term, so it
   * cannot match a leader's entry of that term.
   */
  findConflictByTerm(index: number, term: number): [number, number] {
    for (; index > 0; index--) {
      const t = this.termOrUndefined(index);
      if (t === undefined) return [index, 0]; // compacted or beyond: give up with no term hint
      if (t <= term) return [index, t];
    }
    return [0, 0];
  }

  hasNextUnstableEnts(): boolean {
    return this.unstable.hasNextEntries();
  }

  nextUnstableEnts(): Entry[] {
    return this.unstable.nextEntries();
  }

  hasNextUnstableSnapshot(): boolean {
    return this.unstable.nextSnapshot() !== undefined;
  }

  nextUnstableSnapshot(): Snapshot | undefined {
    return this.unstable.nextSnapshot();
  }

  /** An unstable snapshot exists (handed out or not): the node must not campaign until it lands. */
  hasNextOrInProgressSnapshot(): boolean {
    return this.unstable.snapshot !== undefined;
  }

  /** The highest index that may be handed out for applying. */
  private maxAppliableIndex(allowUnstable: boolean): number {
    let hi = this.committed;
    if (!allowUnstable) hi = Math.min(hi, this.unstable.offset - 1);
    return hi;
  }

  hasNextCommittedEnts(allowUnstable: boolean): boolean {
    if (this.hasNextOrInProgressSnapshot()) return false; // apply the snapshot first
    return this.applying < this.maxAppliableIndex(allowUnstable);
  }

  /** Committed entries not yet handed out, bounded by maxApplyingEntsSizeBytes (at least one). */
  nextCommittedEnts(allowUnstable: boolean): Entry[] {
    if (this.hasNextOrInProgressSnapshot()) return [];
    const lo = this.applying + 1;
    const hi = this.maxAppliableIndex(allowUnstable) + 1;
    if (lo >= hi) return [];
    return this.slice(lo, hi, this.maxApplyingEntsSizeBytes);
  }

  snapshot(): Snapshot {
    if (this.unstable.snapshot) return this.unstable.snapshot;
    return this.storage.snapshot();
  }

  firstIndex(): number {
    const i = this.unstable.maybeFirstIndex();
    return i !== undefined ? i : this.storage.firstIndex();
  }

  lastIndex(): number {
    const i = this.unstable.maybeLastIndex();
    return i !== undefined ? i : this.storage.lastIndex();
  }

  /**
   * The last index known to be persisted: the leader counts its own log in the commit quorum only
   * up to here (see docs/raft.md, persistence contract).
   */
  stableLastIndex(): number {
    if (this.unstable.snapshot) return 0; // nothing is durable until the snapshot lands
    return this.unstable.offset - 1;
  }

  commitTo(tocommit: number): void {
    if (this.committed < tocommit) {
      assert(this.lastIndex() >= tocommit, 'commitTo: beyond lastIndex (log corrupted, truncated or lost?)');
      this.committed = tocommit;
    }
  }

  /** The caller has applied entries up to i (RawNode.advance). */
  appliedTo(i: number): void {
    if (i === 0) return;
    assert(this.committed >= i && i >= this.applied, 'appliedTo: out of range');
    this.applied = i;
    this.applying = Math.max(this.applying, i);
  }

  acceptApplying(i: number): void {
    assert(i <= this.committed, 'acceptApplying beyond committed');
    this.applying = i;
  }

  stableTo(i: number, t: number): void {
    this.unstable.stableTo(i, t);
  }

  stableSnapTo(i: number): void {
    this.unstable.stableSnapTo(i);
  }

  acceptUnstable(): void {
    this.unstable.acceptInProgress();
  }

  lastTerm(): number {
    const t = this.termOrUndefined(this.lastIndex());
    assert(t !== undefined, 'lastTerm: unexpected error');
    return t;
  }

  /** Term of entry i; throws ErrCompacted / ErrUnavailable. */
  term(i: number): number {
    const t = this.unstable.maybeTerm(i);
    if (t !== undefined) return t;
    // The valid range is [index of the dummy entry, lastIndex].
    const dummyIndex = this.firstIndex() - 1;
    if (i < dummyIndex) throw new ErrCompacted();
    if (i > this.lastIndex()) throw new ErrUnavailable();
    return this.storage.term(i);
  }

  termOrUndefined(i: number): number | undefined {
    const t = this.unstable.maybeTerm(i);
    if (t !== undefined) return t;
    if (i < this.firstIndex() - 1 || i > this.lastIndex()) return undefined;
    try {
      return this.storage.term(i);
    } catch (e) {
      if (e instanceof ErrCompacted || e instanceof ErrUnavailable) return undefined;
      throw e;
    }
  }

  /** Entries from i on, at most maxSizeBytes. Throws ErrCompacted when i was compacted. */
  entries(i: number, maxSizeBytes: number): Entry[] {
    const last = this.lastIndex();
    if (i > last) return [];
    return this.slice(i, last + 1, maxSizeBytes);
  }

  allEntries(): Entry[] {
    return this.entries(this.firstIndex(), NO_LIMIT);
  }

  /** Thesis §3.6.1 election restriction: is (lastIndex, term) at least as up to date as our log? */
  isUpToDate(lastIndex: number, term: number): boolean {
    const ourTerm = this.lastTerm();
    return term > ourTerm || (term === ourTerm && lastIndex >= this.lastIndex());
  }

  matchTerm(i: number, term: number): boolean {
    const t = this.termOrUndefined(i);
    return t !== undefined && t === term;
  }

  /**
   * Commit up to maxIndex only if that entry is from `term`, the leader's current term (thesis
   * §3.6.2, Figure 3.7/"Figure 8"): an entry from an earlier term is committed only indirectly.
   */
  maybeCommit(maxIndex: number, term: number): boolean {
    if (maxIndex > this.committed && this.termOrUndefined(maxIndex) === term) {
      this.commitTo(maxIndex);
      return true;
    }
    return false;
  }

  restore(s: Snapshot): void {
    this.committed = s.metadata.index;
    this.unstable.restore(s);
  }

  /** Entries [lo, hi), at most maxSizeBytes (at least one), spanning storage and unstable. */
  slice(lo: number, hi: number, maxSizeBytes: number): Entry[] {
    this.mustCheckOutOfBounds(lo, hi);
    if (lo === hi) return [];
    const off = this.unstable.offset;
    if (lo >= off) {
      return limitSize(this.unstable.slice(lo, hi), maxSizeBytes);
    }
    let ents = this.storage.entries(lo, Math.min(hi, off), maxSizeBytes);
    // Storage returned fewer than asked: the size limit was hit, stop here.
    if (ents.length < Math.min(hi, off) - lo) return ents;
    if (hi > off) {
      const unstable = this.unstable.slice(off, hi);
      let size = 0;
      for (let k = 0; k < ents.length; k++) size += entrySizeBytes(ents[k]);
      ents = ents.concat(limitSizeRemaining(unstable, maxSizeBytes - size));
    }
    return ents;
  }

  private mustCheckOutOfBounds(lo: number, hi: number): void {
    assert(lo <= hi, 'raftLog.slice: lo > hi');
    const fi = this.firstIndex();
    if (lo < fi) throw new ErrCompacted();
    assert(hi <= this.lastIndex() + 1, 'raftLog.slice: hi out of bounds');
  }
}

/** Like limitSize, but may return nothing when the budget is already spent. */
function limitSizeRemaining(ents: Entry[], budgetBytes: number): Entry[] {
  let size = 0;
  let n = 0;
  for (; n < ents.length; n++) {
    size += entrySizeBytes(ents[n]);
    if (size > budgetBytes) break;
  }
  return n === ents.length ? ents : ents.slice(0, n);
}
