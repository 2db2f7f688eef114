import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { REPO_ROOT } from './member';
import { BRANCH_PAGE_FLAG, LEAF_PAGE_FLAG, readPageHeader, type BboltReader } from '../../server/storage/bbolt';

/** tools/bboltcheck (Go, go.etcd.io/bbolt), built once per checkout into .bench/. */
export function buildBboltcheck(): string {
  const out = path.join(REPO_ROOT, '.bench', 'bboltcheck');
  if (fs.existsSync(out)) return out;
  fs.mkdirSync(path.dirname(out), { recursive: true });
  execFileSync('bash', [path.join(REPO_ROOT, 'tools/bboltcheck/build.sh'), out], { stdio: ['ignore', 'ignore', 'inherit'] });
  return out;
}

export interface DumpedBucket {
  name: string;
  keys: Array<[string, string]>;
  buckets: DumpedBucket[];
}

export interface DumpResult {
  /** Exit code: 0 = tx.Check() found nothing, 1 = check errors (in stderr). */
  code: number;
  stderr: string;
  size: number;
  buckets: DumpedBucket[];
}

/** Opens `file` with Go's bbolt, runs tx.Check() and dumps every bucket (hex keys and values). */
export function bboltDump(file: string): DumpResult {
  const r = spawnSync(buildBboltcheck(), ['dump', file], { encoding: 'utf8', maxBuffer: 1 << 30 });
  if (r.status !== 0 && r.status !== 1) throw new Error(`bboltcheck dump failed (${r.status}): ${r.stderr}`);
  const parsed = JSON.parse(r.stdout) as { size: number; buckets: DumpedBucket[] };
  return { code: r.status, stderr: r.stderr, size: parsed.size, buckets: parsed.buckets };
}

/** Writes `file` through Go's bbolt (many transactions, deletes in between) from dump-format buckets. */
export function bboltWrite(file: string, buckets: DumpedBucket[]): void {
  const r = spawnSync(buildBboltcheck(), ['write', file], { input: JSON.stringify({ size: 0, buckets }), encoding: 'utf8', maxBuffer: 1 << 30 });
  if (r.status !== 0) throw new Error(`bboltcheck write failed (${r.status}): ${r.stderr}`);
}

/**
 * Page headers from page 3 to the high-water mark, stepping over overflow pages: how many
 * branch and leaf pages a file has and how many pages spill into overflow pages. Free pages keep
 * the header they had when in use, so they are counted too.
 */
export function pageKinds(r: BboltReader): { branch: number; leaf: number; overflowed: number } {
  const out = { branch: 0, leaf: 0, overflowed: 0 };
  for (let id = 3n; id < r.meta.pgid; ) {
    const h = readPageHeader(r.page(id));
    if (h.flags & BRANCH_PAGE_FLAG) out.branch++;
    if (h.flags & LEAF_PAGE_FLAG) out.leaf++;
    if (h.overflow > 0) out.overflowed++;
    id += BigInt(h.overflow + 1);
  }
  return out;
}
