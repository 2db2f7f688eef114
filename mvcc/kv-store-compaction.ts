/**
 * Compaction (etcd mvcc/kvstore_compaction.go + treeIndex.Compact), in two chunked phases so that
 * reads and writes are never blocked for long:
 *
 *  1. Index: for every key drop the history compaction makes unreachable, keeping the newest
 *     revision <= atRev unless it is a tombstone (then the key's history up to it goes, and the key
 *     leaves the index if nothing newer exists). The kept revisions form the `keep` set.
 *  2. Backend: delete every stored revision with main <= atRev that is not in `keep`.
 *
 * Both phases only touch revisions <= atRev, while writers only add revisions > the current
 * revision >= atRev, so interleaving with writers is safe. Reads at any revision >= atRev find the
 * kept revision (or newer ones) throughout.
 *
 * The store queues compactions (CompactionQueue) and each one runs both phases (runCompaction).
 */
import type { Backend } from './backend';
import { ErrClosed } from './errors';
import type { TreeIndex } from './tree-index';
import { REVISION_BYTES, encodeRevision } from './revision';
import type { StoreMetricsHooks } from './metrics-hooks';

export interface CompactionContext {
  readonly index: TreeIndex;
  readonly backend: Backend;
  /** The full backend key of revision (main, 0): the key bucket prefix + encoded revision. */
  readonly revisionKey: (main: number) => Buffer;
  /** Length of the key bucket prefix in full backend keys. */
  readonly prefixBytes: number;
  /** Index keys / backend revisions handled per chunk before yielding to the event loop. */
  readonly chunkSize: number;
  /** When true, stop at the next chunk boundary (the store is closing; resumed on open). */
  readonly shouldStop: () => boolean;
}

/** Set of kept revisions, each as the latin1 string of its 17-byte encoding. */
type KeepSet = Set<string>;

export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * What a compaction reports for etcd's compaction histograms: the time each phase held the event
 * loop (etcd's index and db compaction pauses; here the chunks' synchronous work) and the number
 * of backend revisions deleted (etcd_debugging_mvcc_db_compaction_keys_total).
 */
export interface CompactionStats {
  indexPauseMs: number;
  dbPauseMs: number[];
  keysCompacted: number;
}

/** Phase 1. Returns the keep set, or undefined if stopped early. */
export async function compactIndex(ctx: CompactionContext, atRev: number, stats?: CompactionStats): Promise<KeepSet | undefined> {
  const keep: KeepSet = new Set();
  let after: string | undefined;
  for (;;) {
    if (ctx.shouldStop()) return undefined;
    const chunk = ctx.index.chunkAfter(after, ctx.chunkSize);
    if (chunk.length === 0) return keep;
    const started = performance.now();
    for (const [latin1, ki] of chunk) {
      const kept = ki.compact(atRev);
      if (kept !== undefined) keep.add(encodeRevision(kept.main, kept.sub).toString('latin1'));
      if (ki.isEmpty) ctx.index.delete(latin1);
    }
    if (stats) stats.indexPauseMs += performance.now() - started;
    after = chunk[chunk.length - 1][0];
    await yieldToEventLoop();
  }
}

/** Phase 2. Returns false if stopped early. */
export async function compactBackend(ctx: CompactionContext, atRev: number, keep: KeepSet, stats?: CompactionStats): Promise<boolean> {
  // Everything <= atRev was written before compaction was scheduled; after this flush it is all
  // in LevelDB, so the scan below needs no overlay and its deletes go to the pending batch.
  await ctx.backend.forceCommit();
  const start = ctx.revisionKey(0);
  const end = ctx.revisionKey(atRev + 1);
  const revStart = ctx.prefixBytes;
  const revEnd = revStart + REVISION_BYTES;
  for await (const chunk of ctx.backend.iterateChunks(start, end, { values: false, chunkSize: ctx.chunkSize })) {
    const started = performance.now();
    for (const [key] of chunk) {
      // A tombstone's key is one byte longer and a tombstone is never kept.
      const isTombstone = key.length !== revEnd;
      if (isTombstone || !keep.has(key.toString('latin1', revStart, revEnd))) {
        ctx.backend.delKey(key);
        if (stats) stats.keysCompacted++;
      }
    }
    ctx.backend.commitIfFull();
    stats?.dbPauseMs.push(performance.now() - started);
    if (ctx.shouldStop()) return false;
    await yieldToEventLoop();
  }
  return true;
}

/**
 * Compactions run one after another (etcd's FIFO compaction scheduler, pkg/schedule): each job
 * starts when the one before it has settled.
 */
export class CompactionQueue {
  private tail: Promise<void> = Promise.resolve();
  private running = 0;

  /** Queues `job`; the returned promise settles with it. */
  schedule(job: () => Promise<void>): Promise<void> {
    this.running++;
    const done = this.tail.then(job).finally(() => {
      this.running--;
    });
    this.tail = done.catch(() => undefined);
    done.catch(() => undefined); // the caller may ignore `done`; failures stay observable through it
    return done;
  }

  /** Resolves when no compaction is queued or running. */
  async idle(): Promise<void> {
    while (this.running > 0) await this.tail;
  }

  /** Settles when every compaction queued so far has (never rejects). */
  drained(): Promise<void> {
    return this.tail;
  }
}

/**
 * One compaction to `rev` (etcd store.compact's job): both phases, then `finished` records it in
 * the meta bucket and the backend is flushed. Rejects with ErrClosed if the store closed first.
 */
export async function runCompaction(ctx: CompactionContext, rev: number, finished: (rev: number) => void, metrics: StoreMetricsHooks): Promise<void> {
  const started = performance.now();
  const stats: CompactionStats = { indexPauseMs: 0, dbPauseMs: [], keysCompacted: 0 };
  const keep = await compactIndex(ctx, rev, stats);
  if (keep === undefined || !(await compactBackend(ctx, rev, keep, stats))) throw new ErrClosed();
  finished(rev);
  await ctx.backend.forceCommit();
  metrics.compaction?.({ ...stats, totalMs: performance.now() - started });
}
