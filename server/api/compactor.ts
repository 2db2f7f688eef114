import type { Logger } from 'pino';
import { parseDurationMs } from '../embed/config';

/**
 * --auto-compaction-mode / --auto-compaction-retention (etcd's v3compactor), run on the leader:
 * - periodic: the retention is a duration (a bare number means hours); the revision is sampled
 *   every tenth of the retention (at most every hour), and the store is compacted to the revision
 *   seen one retention ago;
 * - revision: every 5 minutes, compact to (current revision - retention).
 */
export const REVISION_COMPACTOR_INTERVAL_MS = 5 * 60 * 1000;
export const MAX_PERIODIC_SAMPLE_MS = 60 * 60 * 1000;

export interface CompactorTarget {
  readonly isLeader: boolean;
  currentRevision(): number;
  compact(revision: number): Promise<unknown>;
}

export function retentionMs(retention: string): number {
  return /^\d+$/.test(retention) ? Number(retention) * 3_600_000 : parseDurationMs(retention, 'auto-compaction-retention');
}

export class Compactor {
  private timer: NodeJS.Timeout | undefined;
  private samples: { atMs: number; rev: number }[] = [];

  constructor(
    private readonly mode: 'periodic' | 'revision',
    private readonly retention: string,
    private readonly target: CompactorTarget,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  /** True when a retention other than 0 was configured. */
  get enabled(): boolean {
    return this.retention !== '0' && this.retention !== '' && (this.mode === 'revision' ? Number(this.retention) > 0 : retentionMs(this.retention) > 0);
  }

  start(): void {
    if (!this.enabled) return;
    const interval = this.mode === 'revision' ? REVISION_COMPACTOR_INTERVAL_MS : Math.min(MAX_PERIODIC_SAMPLE_MS, Math.max(1000, retentionMs(this.retention) / 10));
    this.timer = setInterval(() => this.tick(), interval);
    this.timer.unref();
    this.log.info({ mode: this.mode, retention: this.retention, 'interval-ms': interval }, 'auto compaction enabled');
  }

  /** One step; exposed for tests. */
  tick(): void {
    if (!this.target.isLeader) {
      this.samples = [];
      return;
    }
    const rev = this.target.currentRevision();
    let compactTo: number | undefined;
    if (this.mode === 'revision') {
      compactTo = rev - Number(this.retention);
    } else {
      const now = this.now();
      this.samples.push({ atMs: now, rev });
      const cutoff = now - retentionMs(this.retention);
      let chosen: { atMs: number; rev: number } | undefined;
      while (this.samples.length > 0 && this.samples[0].atMs <= cutoff) chosen = this.samples.shift();
      compactTo = chosen?.rev;
    }
    if (compactTo === undefined || compactTo <= 0) return;
    this.target.compact(compactTo).then(
      () => this.log.info({ revision: compactTo }, 'completed auto revision compaction'),
      (e: unknown) => this.log.debug({ revision: compactTo, err: e instanceof Error ? e.message : String(e) }, 'auto compaction skipped'),
    );
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }
}
