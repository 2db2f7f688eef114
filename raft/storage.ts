import {
  EMPTY_BYTES,
  EntryType,
  emptySnapshot,
  entrySizeBytes,
  type ConfState,
  type Entry,
  type HardState,
  type Snapshot,
} from './types';
import { assert, ErrCompacted, ErrSnapOutOfDate, ErrUnavailable } from './errors';

/**
 * The stable log, as Raft reads it (etcd-io/raft storage.go). Synchronous: the caller keeps an
 * in-memory copy of everything it has persisted (MemoryStorage) and Raft reads from that.
 * Methods throw ErrCompacted / ErrUnavailable / ErrSnapshotTemporarilyUnavailable.
 */
export interface Storage {
  initialState(): { hardState: HardState; confState: ConfState };
  /** Entries in [lo, hi), at most maxSizeBytes in total but always at least one. */
  entries(lo: number, hi: number, maxSizeBytes: number): Entry[];
  /** Term of entry i; i may be firstIndex()-1 (the snapshot's index). */
  term(i: number): number;
  firstIndex(): number;
  lastIndex(): number;
  snapshot(): Snapshot;
}

/** Trims `ents` so their total size stays within maxSizeBytes, keeping at least one. */
export function limitSize(ents: Entry[], maxSizeBytes: number): Entry[] {
  if (ents.length === 0) return ents;
  let size = entrySizeBytes(ents[0]);
  let limit = 1;
  for (; limit < ents.length; limit++) {
    size += entrySizeBytes(ents[limit]);
    if (size > maxSizeBytes) break;
  }
  return limit === ents.length ? ents : ents.slice(0, limit);
}

/**
 * Storage backed by an array. ents[0] is a dummy entry holding the snapshot's index and term,
 * so term(firstIndex()-1) answers without a special case (etcd MemoryStorage).
 */
export class MemoryStorage implements Storage {
  private hardState: HardState = { term: 0, vote: 0n, commit: 0 };
  private snap: Snapshot = emptySnapshot();
  private ents: Entry[] = [{ term: 0, index: 0, type: EntryType.Normal, data: EMPTY_BYTES }];

  initialState(): { hardState: HardState; confState: ConfState } {
    return { hardState: { ...this.hardState }, confState: this.snap.metadata.confState };
  }

  setHardState(hs: HardState): void {
    this.hardState = { term: hs.term, vote: hs.vote, commit: hs.commit };
  }

  hardStateNow(): HardState {
    return { ...this.hardState };
  }

  entries(lo: number, hi: number, maxSizeBytes: number): Entry[] {
    const offset = this.ents[0].index;
    if (lo <= offset) throw new ErrCompacted();
    assert(hi <= this.lastIndex() + 1, 'MemoryStorage.entries: hi beyond lastIndex+1');
    assert(lo <= hi, 'MemoryStorage.entries: lo > hi');
    // Only the dummy entry: nothing stored beyond the snapshot.
    if (this.ents.length === 1) throw new ErrUnavailable();
    return limitSize(this.ents.slice(lo - offset, hi - offset), maxSizeBytes);
  }

  term(i: number): number {
    const offset = this.ents[0].index;
    if (i < offset) throw new ErrCompacted();
    if (i - offset >= this.ents.length) throw new ErrUnavailable();
    return this.ents[i - offset].term;
  }

  lastIndex(): number {
    return this.ents[0].index + this.ents.length - 1;
  }

  firstIndex(): number {
    return this.ents[0].index + 1;
  }

  snapshot(): Snapshot {
    return this.snap;
  }

  /** Replaces the whole log with a snapshot (a follower installing the leader's snapshot). */
  applySnapshot(snap: Snapshot): void {
    if (snap.metadata.index <= this.snap.metadata.index) throw new ErrSnapOutOfDate();
    this.snap = snap;
    this.ents = [{ term: snap.metadata.term, index: snap.metadata.index, type: EntryType.Normal, data: EMPTY_BYTES }];
  }

  /** Records a snapshot of the applied state at index i (≤ lastIndex). Compact separately. */
  createSnapshot(i: number, confState: ConfState | undefined, data: Uint8Array): Snapshot {
    if (i <= this.snap.metadata.index) throw new ErrSnapOutOfDate();
    const offset = this.ents[0].index;
    assert(i <= this.lastIndex(), 'createSnapshot: index beyond lastIndex');
    this.snap = {
      data,
      metadata: { index: i, term: this.ents[i - offset].term, confState: confState ?? this.snap.metadata.confState },
    };
    return this.snap;
  }

  /** Discards entries up to and including compactIndex. The caller must not compact past applied. */
  compact(compactIndex: number): void {
    const offset = this.ents[0].index;
    if (compactIndex <= offset) throw new ErrCompacted();
    assert(compactIndex <= this.lastIndex(), 'compact: index beyond lastIndex');
    const i = compactIndex - offset;
    const dummy: Entry = { term: this.ents[i].term, index: this.ents[i].index, type: EntryType.Normal, data: EMPTY_BYTES };
    const rest = this.ents.slice(i + 1);
    rest.unshift(dummy);
    this.ents = rest;
  }

  /** Appends entries, truncating any conflicting suffix (entries must be contiguous). */
  append(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    const first = this.firstIndex();
    const last = entries[0].index + entries.length - 1;
    if (last < first) return; // entirely compacted already
    // Skip the part that is already compacted.
    let k = 0;
    if (first > entries[0].index) k = first - entries[0].index;
    const startIndex = entries[k].index;
    const offset = startIndex - this.ents[0].index;
    assert(offset <= this.ents.length, 'MemoryStorage.append: gap in log');
    if (offset < this.ents.length) this.ents.length = offset; // truncate the conflicting suffix
    for (let j = k; j < entries.length; j++) {
      assert(entries[j].index === this.ents[this.ents.length - 1].index + 1, 'MemoryStorage.append: non-contiguous entries');
      this.ents.push(entries[j]);
    }
  }
}
