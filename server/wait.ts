/**
 * Pending requests keyed by ID, resolved when their log entry is applied (etcd pkg/wait).
 * A request proposed on this member and applied here is answered exactly once.
 */
export class Wait<T> {
  private readonly pending = new Map<string, (value: T) => void>();

  register(id: string): Promise<T> {
    return new Promise<T>((resolve) => this.pending.set(id, resolve));
  }

  trigger(id: string, value: T): void {
    const resolve = this.pending.get(id);
    if (!resolve) return;
    this.pending.delete(id);
    resolve(value);
  }

  cancel(id: string): void {
    this.pending.delete(id);
  }

  get size(): number {
    return this.pending.size;
  }
}

/** Waiters for the applied index to reach a value (etcd's applyWait). */
export class AppliedIndexWait {
  private waiters: { index: number; resolve: () => void }[] = [];

  constructor(private applied: number) {}

  get index(): number {
    return this.applied;
  }

  wait(index: number): Promise<void> {
    if (index <= this.applied) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ index, resolve }));
  }

  advance(index: number): void {
    this.applied = index;
    if (this.waiters.length === 0) return;
    const still: { index: number; resolve: () => void }[] = [];
    for (const w of this.waiters) {
      if (w.index <= index) w.resolve();
      else still.push(w);
    }
    this.waiters = still;
  }
}
