/**
 * The most recent committed revisions, as the commit listener delivered them (with the prev_kv the
 * commit had or the hub read for a prev_kv watcher), so lagging watchers can catch up without
 * reading the revisions from LevelDB. Contiguous: it always holds every revision from `firstRev` to
 * `lastRev`, and `lastRev` is the store's revision (asserted on every push).
 */
import assert from 'node:assert/strict';
import type { Event } from './kv';

interface Entry {
  readonly rev: number;
  readonly events: readonly Event[];
  readonly bytes: number;
}

export class RecentHistory {
  private readonly entries: Entry[] = [];
  private head = 0;
  private bytes = 0;
  private last: number;

  constructor(
    currentRev: number,
    private readonly maxRevs: number,
    private readonly maxBytes: number,
  ) {
    assert(maxRevs > 0 && maxBytes > 0);
    this.last = currentRev;
  }

  /** The revision of the newest entry (the store revision when the last commit was pushed). */
  get lastRev(): number {
    return this.last;
  }

  /** The oldest revision held; lastRev + 1 when empty. */
  get firstRev(): number {
    return this.head < this.entries.length ? this.entries[this.head].rev : this.last + 1;
  }

  push(rev: number, events: readonly Event[]): void {
    assert.equal(rev, this.last + 1, 'commits must arrive in revision order without gaps');
    const bytes = sizeOf(events);
    this.entries.push({ rev, events, bytes });
    this.bytes += bytes;
    this.last = rev;
    while (this.entries.length - this.head > this.maxRevs || (this.bytes > this.maxBytes && this.entries.length - this.head > 1)) {
      this.bytes -= this.entries[this.head].bytes;
      this.head++;
    }
    if (this.head > 1024 && this.head * 2 > this.entries.length) {
      this.entries.splice(0, this.head);
      this.head = 0;
    }
  }

  /** Every event with revision >= fromRev, in order; fromRev must be >= firstRev. */
  eventsFrom(fromRev: number): Event[] {
    assert(fromRev >= this.firstRev, 'revision no longer in recent history');
    const out: Event[] = [];
    for (let i = this.head + Math.max(0, fromRev - this.firstRev); i < this.entries.length; i++) {
      for (const ev of this.entries[i].events) out.push(ev);
    }
    return out;
  }
}

function sizeOf(events: readonly Event[]): number {
  let n = 0;
  for (const ev of events) {
    n += 64 + ev.kv.key.length + ev.kv.value.length;
    if (ev.prevKv) n += 64 + ev.prevKv.key.length + ev.prevKv.value.length;
  }
  return n;
}
