/**
 * A rotating pool of independent keys. Each key takes at most `opsPerKey` operations and is then
 * replaced by a fresh one, which keeps every key's sub-history small enough for the
 * linearizability search (Jepsen's `independent` keys do the same).
 */
import type { Prng } from '../prng';

export class KeyPool {
  private readonly active: { name: string; ops: number }[] = [];
  private next = 0;

  constructor(
    private readonly prefix: string,
    size: number,
    private readonly opsPerKey: number,
  ) {
    for (let i = 0; i < size; i++) this.active.push({ name: this.fresh(), ops: 0 });
  }

  private fresh(): string {
    return `${this.prefix}${String(this.next++).padStart(6, '0')}`;
  }

  /** A key for one more operation. */
  take(r: Prng): string {
    const i = r.int(0, this.active.length - 1);
    const k = this.active[i];
    k.ops++;
    if (k.ops >= this.opsPerKey) this.active[i] = { name: this.fresh(), ops: 0 };
    return k.name;
  }
}

/** Values unique across the run (the checkers rely on one writer per value). */
export class UniqueValues {
  private n = 0;
  next(): string {
    return String(++this.n);
  }
}
