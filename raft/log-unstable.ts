import type { Entry, Snapshot } from './types';
import { assert } from './errors';

/**
 * Entries and a snapshot that are not yet persisted (etcd-io/raft log_unstable.go). `entries[i]`
 * has index `offset + i`. Entries from `offsetInProgress` on have not been handed to the caller
 * yet; those before it are in a Ready being persisted.
 */
export class Unstable {
  snapshot: Snapshot | undefined = undefined;
  entries: Entry[] = [];
  offset: number;
  offsetInProgress: number;
  snapshotInProgress = false;

  constructor(offset: number) {
    this.offset = offset;
    this.offsetInProgress = offset;
  }

  /** First index if there is an unstable snapshot (the snapshot's index + 1). */
  maybeFirstIndex(): number | undefined {
    return this.snapshot ? this.snapshot.metadata.index + 1 : undefined;
  }

  maybeLastIndex(): number | undefined {
    if (this.entries.length > 0) return this.offset + this.entries.length - 1;
    return this.snapshot ? this.snapshot.metadata.index : undefined;
  }

  maybeTerm(i: number): number | undefined {
    if (i < this.offset) {
      if (this.snapshot && this.snapshot.metadata.index === i) return this.snapshot.metadata.term;
      return undefined;
    }
    const last = this.maybeLastIndex();
    if (last === undefined || i > last) return undefined;
    return this.entries[i - this.offset].term;
  }

  /** Entries not yet handed out in a Ready. */
  nextEntries(): Entry[] {
    const inProgress = this.offsetInProgress - this.offset;
    if (inProgress >= this.entries.length) return [];
    return inProgress === 0 ? this.entries.slice() : this.entries.slice(inProgress);
  }

  hasNextEntries(): boolean {
    return this.offsetInProgress - this.offset < this.entries.length;
  }

  nextSnapshot(): Snapshot | undefined {
    return this.snapshot && !this.snapshotInProgress ? this.snapshot : undefined;
  }

  /** Marks everything currently unstable as handed out in a Ready. */
  acceptInProgress(): void {
    if (this.entries.length > 0) this.offsetInProgress = this.offset + this.entries.length;
    if (this.snapshot) this.snapshotInProgress = true;
  }

  /** Entries up to (i, t) are persisted: drop them, unless they were since replaced. */
  stableTo(i: number, t: number): void {
    const gt = this.maybeTerm(i);
    if (gt === undefined) return; // an unstable snapshot covers i, or i is gone
    // Only drop if the entry at i is still the one that was persisted (not truncated meanwhile).
    if (gt === t && i >= this.offset) {
      const num = i + 1 - this.offset;
      this.entries = num === this.entries.length ? [] : this.entries.slice(num);
      this.offset = i + 1;
      this.offsetInProgress = Math.max(this.offsetInProgress, this.offset);
    }
  }

  stableSnapTo(i: number): void {
    if (this.snapshot && this.snapshot.metadata.index === i) {
      this.snapshot = undefined;
      this.snapshotInProgress = false;
    }
  }

  restore(s: Snapshot): void {
    this.offset = s.metadata.index + 1;
    this.offsetInProgress = this.offset;
    this.entries = [];
    this.snapshot = s;
    this.snapshotInProgress = false;
  }

  truncateAndAppend(ents: readonly Entry[]): void {
    const fromIndex = ents[0].index;
    const end = this.offset + this.entries.length;
    if (fromIndex === end) {
      // The common case: append directly after the last unstable entry.
      for (let i = 0; i < ents.length; i++) this.entries.push(ents[i]);
    } else if (fromIndex <= this.offset) {
      // Replace all unstable entries (and, implicitly, any stable suffix from fromIndex on).
      this.entries = ents.slice();
      this.offset = fromIndex;
      this.offsetInProgress = this.offset;
    } else {
      // Keep [offset, fromIndex), then append.
      assert(fromIndex < end, 'unstable.truncateAndAppend: gap');
      this.entries = this.entries.slice(0, fromIndex - this.offset);
      for (let i = 0; i < ents.length; i++) this.entries.push(ents[i]);
      this.offsetInProgress = Math.min(this.offsetInProgress, fromIndex);
    }
  }

  /** Entries [lo, hi) that are all in the unstable part. */
  slice(lo: number, hi: number): Entry[] {
    assert(lo <= hi && lo >= this.offset && hi <= this.offset + this.entries.length, 'unstable.slice out of bounds');
    return this.entries.slice(lo - this.offset, hi - this.offset);
  }
}
