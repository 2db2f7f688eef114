import { assert } from './errors';

/**
 * Flow control for one follower in StateReplicate (etcd-io/raft tracker/inflights.go): the last
 * index of each MsgApp sent and not yet acknowledged, in a ring buffer. Full when maxCount
 * messages or maxBytes bytes are in flight; the leader then pauses until acknowledgements free
 * slots (freeLE).
 */
export class Inflights {
  private start = 0;
  private count = 0;
  private bytesInFlight = 0;
  private indexes: number[] = [];
  private sizes: number[] = [];

  constructor(
    readonly maxCount: number,
    /** 0 = unlimited. */
    readonly maxBytes: number,
  ) {
    assert(maxCount > 0, 'Inflights: maxCount must be > 0');
  }

  /** A shallow copy sharing nothing mutable (confchange works on copies). */
  clone(): Inflights {
    const c = new Inflights(this.maxCount, this.maxBytes);
    c.start = this.start;
    c.count = this.count;
    c.bytesInFlight = this.bytesInFlight;
    c.indexes = this.indexes.slice();
    c.sizes = this.sizes.slice();
    return c;
  }

  add(index: number, bytes: number): void {
    assert(!this.full(), 'Inflights.add: full');
    // A logical ring of maxCount slots; the backing arrays grow sequentially as slots are first
    // used (like etcd's lazily grown buffer), so idle followers cost nothing.
    let next = this.start + this.count;
    if (next >= this.maxCount) next -= this.maxCount;
    this.indexes[next] = index;
    this.sizes[next] = bytes;
    this.count++;
    this.bytesInFlight += bytes;
  }

  /** Frees every inflight message whose last index is ≤ to. */
  freeLE(to: number): void {
    if (this.count === 0 || to < this.indexes[this.start]) return;
    const size = this.maxCount;
    let idx = this.start;
    let i = 0;
    let bytes = 0;
    for (; i < this.count; i++) {
      if (to < this.indexes[idx]) break;
      bytes += this.sizes[idx];
      idx++;
      if (idx >= size) idx -= size;
    }
    this.count -= i;
    this.bytesInFlight -= bytes;
    this.start = idx;
    if (this.count === 0) this.start = 0;
  }

  full(): boolean {
    return this.count === this.maxCount || (this.maxBytes !== 0 && this.bytesInFlight >= this.maxBytes);
  }

  get length(): number {
    return this.count;
  }

  get bytes(): number {
    return this.bytesInFlight;
  }

  reset(): void {
    this.count = 0;
    this.start = 0;
    this.bytesInFlight = 0;
  }
}
