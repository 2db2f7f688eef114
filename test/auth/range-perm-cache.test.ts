import { describe, expect, it } from 'vitest';
import { PermissionType, type PermissionMsg } from '../../proto/etcd-types';
import { isRangeOpPermitted, mergePerms } from '../../server/auth/range-perm-cache';

/** etcd's auth/range_perm_cache_test.go cases, plus the single-key and "\0" (open-ended) forms. */

const b = (s: string): Buffer => Buffer.from(s, 'latin1');
const perm = (key: string, end: string, permType = PermissionType.READ): PermissionMsg => ({ permType, key: b(key), range_end: b(end) });

describe('range permission cache (etcd interval semantics)', () => {
  it.each([
    { perms: [perm('a', 'c'), perm('x', 'z')], key: 'a', end: 'z', want: false },
    { perms: [perm('a', 'f'), perm('c', 'd'), perm('f', 'z')], key: 'a', end: 'z', want: true },
    { perms: [perm('a', 'd'), perm('a', 'b'), perm('c', 'f')], key: 'a', end: 'f', want: true },
    // Open-ended permission and request ("\0" range end).
    { perms: [perm('a', '\0')], key: 'b', end: '\0', want: true },
    { perms: [perm('b', '\0')], key: 'a', end: '\0', want: false },
    { perms: [perm('a', 'm')], key: 'b', end: '\0', want: false },
    { perms: [perm('', '\0')], key: '\0', end: '\0', want: true }, // etcdctl get "" --prefix
    { perms: [perm('a', 'c')], key: 'c', end: 'a', want: false }, // inverted request
    // A single-key permission covers only that key's point.
    { perms: [perm('k', '')], key: 'k', end: 'k\0', want: true },
    { perms: [perm('k', '')], key: 'k', end: 'l', want: false },
  ])('interval [$key, $end) with $perms.length permissions: $want', ({ perms, key, end, want }) => {
    expect(isRangeOpPermitted(mergePerms(perms), b(key), b(end), 'read')).toBe(want);
  });

  it.each([
    { perms: [perm('a', 'c'), perm('x', 'z')], key: 'f', want: false },
    { perms: [perm('a', 'f'), perm('c', 'd'), perm('f', 'z')], key: 'b', want: true },
    { perms: [perm('a', 'd'), perm('a', 'b'), perm('c', 'f')], key: 'd', want: true },
    { perms: [perm('a', 'd'), perm('a', 'b'), perm('c', 'f')], key: 'f', want: false },
    { perms: [perm('k', '')], key: 'k', want: true },
    { perms: [perm('k', '')], key: 'k\0', want: false },
    { perms: [perm('z', '\0')], key: '\xff\xff', want: true },
  ])('key $key: $want', ({ perms, key, want }) => {
    expect(isRangeOpPermitted(mergePerms(perms), b(key), Buffer.alloc(0), 'read')).toBe(want);
  });

  it('read, write and readwrite go to their own sets', () => {
    const p = mergePerms([perm('r', '', PermissionType.READ), perm('w', '', PermissionType.WRITE), perm('rw', '', PermissionType.READWRITE)]);
    const can = (key: string, op: 'read' | 'write') => isRangeOpPermitted(p, b(key), Buffer.alloc(0), op);
    expect([can('r', 'read'), can('r', 'write'), can('w', 'read'), can('w', 'write'), can('rw', 'read'), can('rw', 'write')]).toEqual([true, false, false, true, true, true]);
  });
});
