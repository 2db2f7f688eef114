import { describe } from 'vitest';
import { b, defineScenarios, expectOk, prefixEnd, put, rangePrefix, SortOrder, SortTarget, useTargets, type Ctx, type Scenario, type Step } from './runner';

/** Range: limit/more/count, count_only/keys_only, sort, revision filters, history, serializable, "\x00" conventions. */

const K = (s: string) => (c: Ctx) => c.k(s);

const ORDERS = Object.entries(SortOrder);
const TARGETS = Object.entries(SortTarget);

const scenarios: Scenario[] = [
  {
    // Must stay first in this file: it ranges over the whole keyspace, which at this point holds
    // only this scenario's keys (and the keys are identical on both targets).
    name: 'range-nul-conventions',
    steps: [
      put(K('a'), '1'),
      put(K('b'), '2'),
      put(K('c'), '3'),
      put(() => b('\xff'), 'ff'),
      put(() => b('\xff\x01'), 'ff01'),
      put(() => b('\xff\xff'), 'ffff'),
      { label: 'key \\0 + range_end \\0 = everything', rpc: 'Range', req: { key: b('\0'), range_end: b('\0') } },
      { label: 'range_end \\0 = all keys >= key', rpc: 'Range', req: (c) => ({ key: c.k('b'), range_end: b('\0') }) },
      { label: 'prefix end of "\\xff" is "\\0"', rpc: 'Range', req: { key: b('\xff'), range_end: prefixEnd(b('\xff')) } },
      { label: 'prefix end of "\\xff\\x01" is "\\xff\\x02"', rpc: 'Range', req: { key: b('\xff\x01'), range_end: prefixEnd(b('\xff\x01')) } },
      { label: 'prefix end of "\\xff\\xff" is "\\0"', rpc: 'Range', req: { key: b('\xff\xff'), range_end: prefixEnd(b('\xff\xff')) } },
      { label: 'prefix of the scenario', rpc: 'Range', req: (c) => ({ key: c.k(), range_end: prefixEnd(c.k()) }) },
      { label: 'key \\0 with empty range_end = the single key "\\0"', rpc: 'Range', req: { key: b('\0') } },
      { label: 'range_end == key: empty range', rpc: 'Range', req: (c) => ({ key: c.k('b'), range_end: c.k('b') }) },
      { label: 'range_end < key: empty range', rpc: 'Range', req: (c) => ({ key: c.k('c'), range_end: c.k('a') }) },
      { label: 'half-open interval [a, c)', rpc: 'Range', req: (c) => ({ key: c.k('a'), range_end: c.k('c') }) },
      { label: 'everything, count_only', rpc: 'Range', req: { key: b('\0'), range_end: b('\0'), count_only: true } },
      { label: 'delete >= "\\xff" with prev_kv', rpc: 'DeleteRange', req: { key: b('\xff'), range_end: b('\0'), prev_kv: true } },
      { label: 'everything after the delete', rpc: 'Range', req: { key: b('\0'), range_end: b('\0') }, expect: expectOk },
    ],
  },
  {
    name: 'range-limit-more-count',
    steps: [
      ...['a', 'b', 'c', 'd', 'e'].map((k) => put(K(k), `v-${k}`)),
      rangePrefix({}, 'no limit'),
      ...[1, 2, 4, 5, 6, 100, -1].map((limit): Step => rangePrefix({ limit }, `limit ${limit}`)),
      { label: 'single key, limit 1', rpc: 'Range', req: (c) => ({ key: c.k('c'), limit: 1 }) },
      { label: 'missing single key', rpc: 'Range', req: (c) => ({ key: c.k('zz') }) },
      { label: 'range [b, e) limit 2', rpc: 'Range', req: (c) => ({ key: c.k('b'), range_end: c.k('e'), limit: 2 }) },
      { label: 'continue a page at last key + \\0', rpc: 'Range', req: (c) => ({ key: c.k('b\0'), range_end: prefixEnd(c.k()), limit: 2 }) },
    ],
  },
  {
    // count with a limit comes from the live-key tree at the current revision and from a walk at a
    // past one (mvcc/live-keys.ts); both must equal etcd's count of keys live at the revision.
    name: 'range-paginated-count-after-deletes',
    steps: [
      ...['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'].map((k) => put(K(k), `v-${k}`)), // B+1..B+8
      { label: 'delete c', rpc: 'DeleteRange', req: (c) => ({ key: c.k('c') }) }, // B+9
      { label: 'delete [f, h)', rpc: 'DeleteRange', req: (c) => ({ key: c.k('f'), range_end: c.k('h') }) }, // B+10
      put(K('c'), 'v-c2'), // B+11: c comes back
      ...['', 'b', 'd', 'h'].map((after): Step => ({
        label: `page of 2 after "${after}"`,
        rpc: 'Range',
        req: (c) => ({ key: after === '' ? c.k() : c.k(`${after}\0`), range_end: prefixEnd(c.k()), limit: 2 }),
      })),
      ...[8, 9, 10].map((n): Step => ({
        label: `page of 2 after "b" at B+${n}`,
        rpc: 'Range',
        req: (c) => ({ key: c.k('b\0'), range_end: prefixEnd(c.k()), limit: 2, revision: c.rev(n) }),
      })),
      {
        label: 'txn: put i and delete a, then a page of 2 in the same txn',
        rpc: 'Txn',
        req: (c) => ({
          success: [
            { request_put: { key: c.k('i'), value: b('v-i') } },
            { request_delete_range: { key: c.k('a') } },
            { request_range: { key: c.k(), range_end: prefixEnd(c.k()), limit: 2 } },
            { request_range: { key: c.k(), range_end: prefixEnd(c.k()), count_only: true } },
          ],
        }),
      },
    ],
  },
  {
    name: 'range-count-only-keys-only',
    steps: [
      ...['a', 'b', 'c'].map((k) => put(K(k), `value-${k}`)),
      rangePrefix({ count_only: true }, 'count_only'),
      rangePrefix({ count_only: true, limit: 1 }, 'count_only + limit 1'),
      rangePrefix({ keys_only: true }, 'keys_only'),
      rangePrefix({ keys_only: true, limit: 2 }, 'keys_only + limit 2'),
      rangePrefix({ keys_only: true, count_only: true }, 'keys_only + count_only'),
      { label: 'count_only on a missing key', rpc: 'Range', req: (c) => ({ key: c.k('nope'), count_only: true }) },
      { label: 'keys_only single key', rpc: 'Range', req: (c) => ({ key: c.k('b'), keys_only: true }) },
    ],
  },
  {
    // Distinct orders per target: create a<b<c; version b(1)<c(2)<a(3); mod b<c<a; value c<b<a.
    name: 'range-sort',
    steps: [
      put(K('a'), 'x'),
      put(K('b'), 'mm'),
      put(K('c'), 'y'),
      put(K('a'), 'xx'),
      put(K('c'), 'aa'),
      put(K('a'), 'zz'),
      ...TARGETS.flatMap(([tn, target]) =>
        ORDERS.map(([on, order]): Step => rangePrefix({ sort_target: target, sort_order: order }, `sort ${tn} ${on}`)),
      ),
      ...TARGETS.flatMap(([tn, target]) =>
        ORDERS.map(([on, order]): Step => rangePrefix({ sort_target: target, sort_order: order, limit: 2 }, `sort ${tn} ${on} limit 2`)),
      ),
      rangePrefix({ sort_target: SortTarget.CREATE, sort_order: SortOrder.DESCEND, limit: 1, keys_only: true }, 'last create (WithLastCreate)'),
      rangePrefix({ sort_target: SortTarget.CREATE, sort_order: SortOrder.ASCEND, limit: 1 }, 'first create (WithFirstCreate)'),
      rangePrefix({ sort_target: SortTarget.MOD, sort_order: SortOrder.DESCEND, count_only: true }, 'sort + count_only'),
    ],
  },
  {
    name: 'range-revision-filters',
    steps: [
      put(K('a'), '1'), // B+1
      put(K('b'), '2'), // B+2
      put(K('c'), '3'), // B+3
      put(K('a'), '4'), // B+4: a create B+1 mod B+4
      put(K('d'), '5'), // B+5
      ...(
        [
          ['min_mod_revision', 3],
          ['max_mod_revision', 3],
          ['min_create_revision', 2],
          ['max_create_revision', 2],
          ['min_mod_revision', 100],
          ['max_create_revision', 1],
        ] as const
      ).map(([f, n]): Step => ({ label: `${f} B+${n}`, rpc: 'Range', req: (c) => ({ key: c.k(), range_end: prefixEnd(c.k()), [f]: c.rev(n) }) })),
      {
        label: 'min_mod B+2 + max_mod B+4',
        rpc: 'Range',
        req: (c) => ({ key: c.k(), range_end: prefixEnd(c.k()), min_mod_revision: c.rev(2), max_mod_revision: c.rev(4) }),
      },
      {
        label: 'min_create B+2 + max_mod B+4 + limit 1',
        rpc: 'Range',
        req: (c) => ({ key: c.k(), range_end: prefixEnd(c.k()), min_create_revision: c.rev(2), max_mod_revision: c.rev(4), limit: 1 }),
      },
      {
        label: 'max_create B+3, sort CREATE DESCEND, limit 1 (waitDeletes)',
        rpc: 'Range',
        req: (c) => ({ key: c.k(), range_end: prefixEnd(c.k()), max_create_revision: c.rev(3), sort_target: SortTarget.CREATE, sort_order: SortOrder.DESCEND, limit: 1 }),
      },
      {
        label: 'min_mod B+3 + count_only',
        rpc: 'Range',
        req: (c) => ({ key: c.k(), range_end: prefixEnd(c.k()), min_mod_revision: c.rev(3), count_only: true }),
      },
      {
        label: 'min_mod B+3 + keys_only',
        rpc: 'Range',
        req: (c) => ({ key: c.k(), range_end: prefixEnd(c.k()), min_mod_revision: c.rev(3), keys_only: true }),
      },
      {
        label: 'filters at a historical revision B+3',
        rpc: 'Range',
        req: (c) => ({ key: c.k(), range_end: prefixEnd(c.k()), revision: c.rev(3), min_mod_revision: c.rev(2) }),
      },
    ],
  },
  {
    name: 'range-historical',
    steps: [
      put(K('a'), 'a1'), // B+1
      put(K('a'), 'a2'), // B+2
      put(K('b'), 'b1'), // B+3
      { rpc: 'DeleteRange', req: (c) => ({ key: c.k('a') }) }, // B+4
      put(K('a'), 'a3'), // B+5
      ...[1, 2, 3, 4, 5].map((n): Step => ({ label: `prefix at B+${n}`, rpc: 'Range', req: (c) => ({ key: c.k(), range_end: prefixEnd(c.k()), revision: c.rev(n) }) })),
      ...[1, 3, 4].map((n): Step => ({ label: `key a at B+${n}`, rpc: 'Range', req: (c) => ({ key: c.k('a'), revision: c.rev(n) }) })),
      { label: 'prefix at B+0 (before the scenario)', rpc: 'Range', req: (c) => ({ key: c.k(), range_end: prefixEnd(c.k()), revision: c.rev(0) }) },
      { label: 'revision 0 = current', rpc: 'Range', req: (c) => ({ key: c.k(), range_end: prefixEnd(c.k()), revision: 0 }) },
      { label: 'negative revision = current', rpc: 'Range', req: (c) => ({ key: c.k(), range_end: prefixEnd(c.k()), revision: -1 }) },
      { label: 'historical + count_only + limit', rpc: 'Range', req: (c) => ({ key: c.k(), range_end: prefixEnd(c.k()), revision: c.rev(3), count_only: true, limit: 1 }) },
      { label: 'historical + sort VERSION DESCEND', rpc: 'Range', req: (c) => ({ key: c.k(), range_end: prefixEnd(c.k()), revision: c.rev(3), sort_target: SortTarget.VERSION, sort_order: SortOrder.DESCEND }) },
    ],
  },
  {
    name: 'range-serializable',
    steps: [
      put(K('a'), '1'),
      put(K('b'), '2'),
      rangePrefix({ serializable: true }, 'serializable'),
      rangePrefix({ serializable: true, limit: 1 }, 'serializable + limit'),
      { label: 'serializable at B+1', rpc: 'Range', req: (c) => ({ key: c.k(), range_end: prefixEnd(c.k()), serializable: true, revision: c.rev(1) }) },
      { label: 'serializable single key', rpc: 'Range', req: (c) => ({ key: c.k('b'), serializable: true }) },
    ],
  },
];

describe('conformance: Range', () => {
  const targets = useTargets();
  defineScenarios(targets, scenarios);
});
