/**
 * Pending requests keyed by ID, resolved when their log entry is applied (etcd pkg/wait).
 * A request proposed on this member and applied here is answered exactly once.
 */
export class Wait<T> {
  private readonly pending = new Map<string, { resolve: (value: T) => void; deadlineMs: number }>();

  /** Waits for `trigger(id)`; `expire` resolves it with a timeout value after `deadlineMs`. */
  register(id: string, deadlineMs = Number.POSITIVE_INFINITY): Promise<T> {
    return new Promise<T>((resolve) => this.pending.set(id, { resolve, deadlineMs }));
  }

  trigger(id: string, value: T): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    p.resolve(value);
  }

  /** Resolves every wait past its deadline with `timedOut()` (one sweep instead of a timer each). */
  expire(nowMs: number, timedOut: () => T): void {
    for (const [id, p] of this.pending) {
      if (p.deadlineMs > nowMs) continue;
      this.pending.delete(id);
      p.resolve(timedOut());
    }
  }

  /** Every pending wait gets `value` (the server is stopping). */
  triggerAll(value: T): void {
    for (const [id, p] of this.pending) {
      this.pending.delete(id);
      p.resolve(value);
    }
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
