import { PermissionType, type PermissionMsg } from '../../proto/etcd-types';

/**
 * etcd's range permission cache (auth/range_perm_cache.go): each user's roles merged into one set
 * of read and one set of write intervals, rebuilt whenever users or roles change. Keys compare as
 * bytes; an interval is [key, rangeEnd), a permission without range end is the single key, and a
 * range end of "\0" means "every key >= key" (etcd's affine interval with an infinite end).
 */

/** [begin, end); end null = no upper bound. */
interface Interval {
  begin: Buffer;
  end: Buffer | null;
}

export interface UnifiedRangePermissions {
  read: Interval[];
  write: Interval[];
}

export type PermOp = 'read' | 'write';

const OPEN_END = Buffer.from([0]);

function isOpenEnd(end: Buffer): boolean {
  return end.length === 1 && end[0] === 0;
}

/** A point key k is the interval [k, k + "\0"). */
function pointEnd(key: Buffer): Buffer {
  return Buffer.concat([key, OPEN_END]);
}

function permInterval(p: PermissionMsg): Interval {
  if (p.range_end.length === 0) return { begin: p.key, end: pointEnd(p.key) };
  return { begin: p.key, end: isOpenEnd(p.range_end) ? null : p.range_end };
}

/** Merges the permissions of every role a user has (etcd's getMergedPerms). */
export function mergePerms(perms: Iterable<PermissionMsg>): UnifiedRangePermissions {
  const out: UnifiedRangePermissions = { read: [], write: [] };
  for (const p of perms) {
    const ivl = permInterval(p);
    if (p.permType === PermissionType.READ || p.permType === PermissionType.READWRITE) out.read.push(ivl);
    if (p.permType === PermissionType.WRITE || p.permType === PermissionType.READWRITE) out.write.push(ivl);
  }
  // Sorted once here so every check is a single sweep.
  for (const list of [out.read, out.write]) list.sort((a, b) => Buffer.compare(a.begin, b.begin));
  return out;
}

/**
 * Whether the union of `ivls` (sorted by begin) covers [begin, end) entirely (etcd's
 * IntervalTree.Contains): extend the covered prefix interval by interval until it reaches `end`;
 * an interval starting beyond the prefix is a gap. An empty or inverted target intersects no
 * permission, so etcd denies it, and so does this.
 */
function covers(ivls: Interval[], target: Interval): boolean {
  if (target.end !== null && Buffer.compare(target.begin, target.end) >= 0) return false;
  let reached = target.begin; // [target.begin, reached) is covered
  for (const ivl of ivls) {
    if (Buffer.compare(ivl.begin, reached) > 0) return false;
    if (ivl.end === null) return true;
    if (Buffer.compare(ivl.end, reached) > 0) reached = ivl.end;
    if (target.end !== null && Buffer.compare(reached, target.end) >= 0) return true;
  }
  return false;
}

/**
 * etcd's isRangeOpPermitted: a request without range end is a point check (checkKeyPoint), any
 * other must be covered in full (checkKeyInterval); a request range end of "\0" is open-ended.
 */
export function isRangeOpPermitted(perms: UnifiedRangePermissions, key: Buffer, rangeEnd: Buffer, op: PermOp): boolean {
  const ivls = op === 'read' ? perms.read : perms.write;
  if (rangeEnd.length === 0) return covers(ivls, { begin: key, end: pointEnd(key) });
  return covers(ivls, { begin: key, end: isOpenEnd(rangeEnd) ? null : rangeEnd });
}
