import * as path from 'node:path';
import { ByteArena } from '../../../raft/byte-arena';
import { SegmentDecoder, WalCorruptionError, isSegmentEnd } from './decoder';
import { SNAPSHOT_REPLACES_LOG, decodeEntry, decodeHardState, decodeSnapshot, snapshotRecordIndex, type WalEntry, type WalHardState, type WalSnapshotMeta } from './payload';
import { RecordType, type DecodedRecord } from './record';
import type { SegmentName } from './segment-files';

/**
 * Replay (etcd's WAL.ReadAll): the segments from the last snapshot's on, in sequence order, every
 * record's crc checked. The
 * result is Raft's durable state, plus where the tail ends so appending can continue the chain.
 */

export interface WalContents {
  hardState?: WalHardState;
  snapshot?: WalSnapshotMeta;
  /** The entries after the snapshot, contiguous, later records replacing earlier ones at the same index. */
  entries: WalEntry[];
  /** Member metadata written once at bootstrap (member ID, cluster ID). */
  metadata?: Uint8Array;
}

export interface Replayed {
  contents: WalContents;
  /** Offset after the last valid record of the last segment: appending starts here. */
  tailOffset: number;
  /** Set when the last segment ended in a torn write at `tailOffset` (to be zeroed). */
  torn: boolean;
  /** Chain crc after the last valid record. */
  crc: number;
  /** Index of the last entry record read (etcd's enti): names the next segment. */
  lastEntryIndex: number;
}

const EMPTY = new Uint8Array(0);

/** Accumulates records into Raft's state; memory stays bounded by the entries after the latest snapshot. */
class ReplayState {
  hardState: WalHardState | undefined;
  snapshot: WalSnapshotMeta | undefined;
  metadata: Buffer | undefined;
  entries: WalEntry[] = [];
  lastEntryIndex = 0;
  /** The entries become MemoryStorage's: their payloads go into chunks freed as the log is compacted (raft/byte-arena.ts). */
  private readonly arena = new ByteArena();
  /**
   * Payloads of entries at or below `coveredUpTo` are not kept: a later snapshot record drops
   * those entries (see replay), so copying them would only cost time and a peak of memory.
   */
  private readonly copy = (b: Buffer, index: number): Uint8Array => (index <= this.coveredUpTo ? EMPTY : this.arena.copy(b));

  constructor(private readonly coveredUpTo: number) {}

  apply(rec: DecodedRecord, file: string, offset: number): void {
    switch (rec.type) {
      case RecordType.Entry:
        return this.entry(decodeEntry(rec.data, this.copy), file, offset);
      case RecordType.State:
        this.hardState = decodeHardState(rec.data);
        return;
      case RecordType.Metadata:
        if (this.metadata && !this.metadata.equals(rec.data)) throw new WalCorruptionError('wal: conflicting metadata found', file, offset);
        this.metadata = Buffer.from(rec.data);
        return;
      case RecordType.Snapshot:
        return this.snapshotRecord(rec.data);
      case RecordType.Crc:
        return;
    }
  }

  private entry(e: WalEntry, file: string, offset: number): void {
    this.lastEntryIndex = e.index;
    // Covered by the snapshot already (a marker copied to a segment's head precedes older entries).
    if (this.snapshot && e.index <= this.snapshot.index) return;
    const ents = this.entries;
    if (ents.length === 0 || e.index < ents[0].index) {
      this.entries = [e];
      return;
    }
    const last = ents[ents.length - 1].index;
    // etcd's ErrSliceOutOfRange: an entry beyond the one after the last means entries are missing.
    if (e.index > last + 1) throw new WalCorruptionError(`wal: slice bounds out of range (entry ${e.index} after ${last})`, file, offset);
    // A later record at an index replaces the suffix from it (Raft overwrote a conflicting tail).
    ents.length = e.index - ents[0].index;
    ents.push(e);
  }

  private snapshotRecord(data: Buffer): void {
    const { snapshot, flags } = decodeSnapshot(data);
    this.snapshot = snapshot;
    // A snapshot from the leader replaced the whole log; any other drops only what it covers.
    if (flags & SNAPSHOT_REPLACES_LOG) this.entries = [];
    else if (this.entries.length > 0) this.entries = this.entries.slice(Math.max(0, snapshot.index + 1 - this.entries[0].index));
  }
}

/**
 * Replays the segments from the one holding the last snapshot, as etcd's wal.Open(snap) selects
 * them (selectWALFiles / searchIndex: the last segment whose first index is at or below the
 * snapshot's index; earlier ones hold only entries the snapshot covers and are neither read nor
 * checked). etcd learns the snapshot's index from its .snap file; cairn's markers are in the WAL,
 * so a first pass skims the frames of the newest segments, without crcs, for the last snapshot
 * record's index (every segment's head repeats the latest marker, so the newest segment almost
 * always has one). The verifying pass then starts at the selected segment, whose crc record
 * carries the chain value, and keeps no payload at or below the index. The skim is only a hint:
 * should the verified replay end at a lower snapshot (the record it saw was torn or damaged), the
 * replay is done again over every segment without it.
 */
export async function replay(dir: string, segments: readonly SegmentName[]): Promise<Replayed> {
  const hint = await lastSnapshotIndexHint(dir, segments);
  const from = firstSegmentToRead(segments, hint);
  const r = await replayFrom(dir, segments.slice(from), hint);
  if (hint > 0 && (r.contents.snapshot?.index ?? 0) < hint) return replayFrom(dir, segments, 0);
  return r;
}

/** etcd's searchIndex: the last segment whose first entry index is at or below `index` (0 if none). */
export function firstSegmentToRead(segments: readonly SegmentName[], index: number): number {
  for (let i = segments.length - 1; i > 0; i--) if (segments[i].index <= index) return i;
  return 0;
}

/** The index in the last snapshot record, unverified (0 when there is none): newest segment first. */
async function lastSnapshotIndexHint(dir: string, segments: readonly SegmentName[]): Promise<number> {
  for (let i = segments.length - 1; i >= 0; i--) {
    let hint = 0;
    const d = await SegmentDecoder.open(path.join(dir, segments[i].name), 0);
    try {
      await d.skim(8, (type, head) => {
        if (type === RecordType.Snapshot && head.length >= 8) hint = snapshotRecordIndex(head);
      });
    } finally {
      await d.close();
    }
    if (hint > 0) return hint;
  }
  return 0;
}

async function replayFrom(dir: string, segments: readonly SegmentName[], coveredUpTo: number): Promise<Replayed> {
  const state = new ReplayState(coveredUpTo);
  // A segment is named for the entry after the last one before it: where naming the next cut continues from if no entry follows.
  state.lastEntryIndex = Math.max(0, segments[0].index - 1);
  let crc = 0;
  let tailOffset = 0;
  let torn = false;
  let firstEntryAt: { file: string; offset: number } | undefined;
  for (let i = 0; i < segments.length; i++) {
    const last = i === segments.length - 1;
    const file = path.join(dir, segments[i].name);
    const d = await SegmentDecoder.open(file, crc);
    try {
      for (;;) {
        const at = d.offset;
        const r = await d.next(last);
        if (isSegmentEnd(r)) {
          tailOffset = r.offset;
          torn = r.kind === 'torn';
          break;
        }
        if (r.type === RecordType.Entry && !firstEntryAt) firstEntryAt = { file, offset: at };
        state.apply(r, file, at);
      }
      crc = d.crc;
    } finally {
      await d.close();
    }
  }
  const { snapshot, entries } = state;
  // Entries must follow the snapshot without a hole (a segment lost between them).
  if (snapshot && entries.length > 0 && entries[0].index !== snapshot.index + 1) {
    const where = firstEntryAt ?? { file: path.join(dir, segments[0].name), offset: 0 };
    throw new WalCorruptionError(`wal: entries start at ${entries[0].index}, after snapshot ${snapshot.index}`, where.file, where.offset);
  }
  return {
    contents: { hardState: state.hardState, snapshot, entries, metadata: state.metadata },
    tailOffset,
    torn,
    crc,
    lastEntryIndex: state.lastEntryIndex,
  };
}
