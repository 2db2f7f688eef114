/**
 * The revision history of one key (etcd mvcc/key_index.go).
 *
 * etcd keeps a list of generations, each a run of puts ended by a tombstone. We keep the same
 * information as one ascending list of revisions with a tombstone flag: a tombstone ends a
 * generation, and the next put starts a new one. Of the generations' counters only the current
 * generation's are needed: its created revision and version (etcd generation.created / .ver), so
 * a put takes create_revision and version from here, as etcd's put does with kvindex.Get, and reads
 * no value. Values are not kept here: they are read from the backend by revision (etcd keeps only
 * revisions in its treeIndex too).
 */
import assert from 'node:assert/strict';

/** The lease of a key without one; shared so a key index costs no BigInt of its own. */
export const NO_LEASE = 0n;

export interface IndexedRevision {
  readonly main: number;
  readonly sub: number;
  readonly tombstone: boolean;
}

export class KeyIndex {
  /** Ascending by (main, sub). */
  private revs: IndexedRevision[] = [];
  /**
   * The lease of the key's latest put while it is live (NO_LEASE otherwise), so a restart can
   * re-attach leases without reading values (etcd's restore collects keyToLease the same way).
   */
  lease: bigint = NO_LEASE;
  /**
   * The current generation's create_revision and version while the key is live (0 otherwise).
   * Kept apart from `revs` because compaction drops a generation's older revisions while its
   * version keeps counting them (etcd's generation.ver). Two small integers: Smis in V8.
   */
  createRevision = 0;
  version = 0;

  /**
   * A key's state as an index checkpoint recorded it (mvcc/index-checkpoint.ts); `revs` ascending
   * by (main, sub), which the checkpoint's reader has checked.
   */
  static restored(revs: IndexedRevision[], createRevision: number, version: number, lease: bigint): KeyIndex {
    const ki = new KeyIndex();
    ki.revs = revs;
    ki.createRevision = createRevision;
    ki.version = version;
    ki.lease = lease === NO_LEASE ? NO_LEASE : lease;
    return ki;
  }

  get revisionCount(): number {
    return this.revs.length;
  }

  get isEmpty(): boolean {
    return this.revs.length === 0;
  }

  /** The newest revision, or undefined when the history is empty. */
  get latest(): IndexedRevision | undefined {
    return this.revs[this.revs.length - 1];
  }

  /** True when the newest revision is a put (the key exists at the current revision). */
  get isLive(): boolean {
    const last = this.latest;
    return last !== undefined && !last.tombstone;
  }

  /**
   * Records a put at (main, sub) with `lease` (etcd keyIndex.put): on a live key the generation's
   * version goes up by one, otherwise a new generation starts at version 1 created at `main`.
   */
  put(main: number, sub: number, lease: bigint): void {
    if (this.isLive) {
      this.version++;
    } else {
      this.createRevision = main;
      this.version = 1;
    }
    this.append(main, sub, false);
    this.lease = lease;
  }

  /** Records a tombstone at (main, sub), which ends the generation (etcd keyIndex.tombstone). */
  tombstone(main: number, sub: number): void {
    this.append(main, sub, true);
    this.createRevision = 0;
    this.version = 0;
    this.lease = NO_LEASE;
  }

  /**
   * Records a revision read back from the key bucket on restore, with the create_revision, version
   * and lease its record holds (the record of the key's newest revision sets the final state).
   */
  restore(main: number, sub: number, tombstone: boolean, createRevision: number, version: number, lease: bigint): void {
    this.append(main, sub, tombstone);
    this.createRevision = tombstone ? 0 : createRevision;
    this.version = tombstone ? 0 : version;
    this.lease = tombstone || lease === NO_LEASE ? NO_LEASE : lease;
  }

  /** Records a put or tombstone at (main, sub); revisions only grow. Counters are the caller's. */
  append(main: number, sub: number, tombstone: boolean): IndexedRevision {
    const last = this.latest;
    assert(last === undefined || main > last.main || (main === last.main && sub > last.sub),
      'key index revisions must increase');
    const rev: IndexedRevision = { main, sub, tombstone };
    this.revs.push(rev);
    return rev;
  }

  /**
   * The revision holding the key's value as of `atRev` (the newest with main <= atRev), or
   * undefined when the key did not exist then (never written, or its newest revision is a
   * tombstone). etcd `keyIndex.get`.
   */
  revisionAt(atRev: number): IndexedRevision | undefined {
    const i = this.newestAtOrBefore(atRev);
    if (i < 0) return undefined;
    const rev = this.revs[i];
    return rev.tombstone ? undefined : rev;
  }

  /**
   * Drops the history that compaction at `atRev` makes unreachable (etcd `keyIndex.compact`):
   * keeps the newest revision <= atRev unless it is a tombstone, in which case that tombstone and
   * everything before it go. Returns the kept revision <= atRev (which must survive physical
   * compaction), if any. The caller removes the key from the index when `isEmpty`.
   */
  compact(atRev: number): IndexedRevision | undefined {
    const i = this.newestAtOrBefore(atRev);
    if (i < 0) return undefined;
    const newest = this.revs[i];
    if (newest.tombstone) {
      this.revs = this.revs.slice(i + 1);
      return undefined;
    }
    if (i > 0) this.revs = this.revs.slice(i);
    return newest;
  }

  /** All revisions, oldest first (tests and diagnostics). */
  revisions(): readonly IndexedRevision[] {
    return this.revs;
  }

  /** Index of the newest revision with main <= atRev, or -1. */
  private newestAtOrBefore(atRev: number): number {
    const revs = this.revs;
    let lo = 0;
    let hi = revs.length - 1;
    // Fast path: most reads are at or after the newest revision.
    if (hi < 0) return -1;
    if (revs[hi].main <= atRev) return hi;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (revs[mid].main <= atRev) {
        found = mid;
        lo = mid + 1;
      } else {
        hi = mid - 1;
      }
    }
    return found;
  }
}
