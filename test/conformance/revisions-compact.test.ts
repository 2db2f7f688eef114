import { describe } from 'vitest';
import { b, defineScenarios, expectError, expectOk, op, prefixEnd, put, rangePrefix, useTargets, type Ctx, type Scenario, type Step } from './runner';

/** Revision numbering (fresh store, one bump per write txn, none for no-ops) and Compact. */

const K = (s: string) => (c: Ctx) => c.k(s);
const OUT_OF_RANGE = 11;
const COMPACTED = 'etcdserver: mvcc: required revision has been compacted';
const FUTURE = 'etcdserver: mvcc: required revision is a future revision';

const everything: Step = { label: 'Range everything', rpc: 'Range', req: { key: b('\0'), range_end: b('\0') } };
const rangeAt = (n: number, label = `prefix at B+${n}`): Step => ({ label, rpc: 'Range', req: (c) => ({ key: c.k(), range_end: prefixEnd(c.k()), revision: c.rev(n) }) });

const scenarios: Scenario[] = [
  {
    // Must stay first in this file: it checks absolute revisions on the fresh store.
    name: 'fresh-store-revisions',
    absoluteRevisions: true,
    steps: [
      { ...everything, label: 'empty store: header.revision 1', expect: (r) => expectOk(r) },
      { label: 'Range at revision 1', rpc: 'Range', req: { key: b('\0'), range_end: b('\0'), revision: 1 } },
      { label: 'Range at revision 2 (future)', rpc: 'Range', req: { key: b('\0'), range_end: b('\0'), revision: 2 }, expect: expectError(OUT_OF_RANGE, FUTURE) },
      { label: 'delete of nothing on the fresh store', rpc: 'DeleteRange', req: { key: b('\0'), range_end: b('\0') } },
      { label: 'first write gets revision 2', rpc: 'Put', req: (c) => ({ key: c.k('first'), value: b('1') }) },
      everything,
      { label: 'Range at revision 1 (before the first write)', rpc: 'Range', req: { key: b('\0'), range_end: b('\0'), revision: 1 } },
    ],
  },
  {
    name: 'revision-numbering',
    steps: [
      put(K('a'), '1', {}, 'put: +1'),
      put(K('a'), '1', {}, 'identical put: +1'),
      { label: 'delete missing key: +0', rpc: 'DeleteRange', req: (c) => ({ key: c.k('zz') }) },
      { label: 'delete missing range: +0', rpc: 'DeleteRange', req: (c) => ({ key: c.k('x/'), range_end: prefixEnd(c.k('x/')) }) },
      put(K('b'), '1'),
      put(K('c'), '1'),
      put(K('d'), '1'),
      { label: 'delete range of 3 keys: +1', rpc: 'DeleteRange', req: (c) => ({ key: c.k('b'), range_end: c.k('e') }) },
      rangeAt(5, 'before the range delete'),
      rangeAt(6, 'after the range delete'),
      { label: 'read-only txn: +0', rpc: 'Txn', req: (c) => ({ success: [op.range({ key: c.k('a') })] }) },
      { label: 'txn with failed compare and no failure ops: +0', rpc: 'Txn', req: (c) => ({ compare: [{ target: 0, result: 0, key: c.k('a'), version: 99 }], success: [op.put({ key: c.k('t'), value: b('1') })] }) },
      { label: 'txn failure branch writes: +1', rpc: 'Txn', req: (c) => ({ compare: [{ target: 0, result: 0, key: c.k('a'), version: 99 }], failure: [op.put({ key: c.k('f'), value: b('1') })] }) },
      { label: 'txn with 3 puts: +1', rpc: 'Txn', req: (c) => ({ success: ['p', 'q', 'r'].map((k) => op.put({ key: c.k(k), value: b(k) })) }) },
      { label: 'txn with put + delete of other key: +1', rpc: 'Txn', req: (c) => ({ success: [op.put({ key: c.k('s'), value: b('s') }), op.del({ key: c.k('p') })] }) },
      { label: 'LeaseGrant: +0', rpc: 'LeaseGrant', req: (c) => ({ ID: c.lease('l'), TTL: 600 }) },
      { label: 'LeaseRevoke without keys: +0', rpc: 'LeaseRevoke', req: (c) => ({ ID: c.lease('l') }) },
      { label: 'failed put (bad lease): +0', rpc: 'Put', req: (c) => ({ key: c.k('g'), value: b('1'), lease: c.lease('l') }) },
      { label: 'Compact: +0', rpc: 'Compact', req: (c) => ({ revision: c.rev(1) }) },
      rangePrefix({}, 'final state'),
      rangePrefix({ serializable: true }, 'final state (serializable)'),
    ],
  },
  {
    // Must stay last in this file: compaction removes history of the earlier scenarios.
    name: 'compact',
    steps: [
      put(K('a'), 'v1'), // B+1
      put(K('a'), 'v2'), // B+2
      put(K('b'), 'b1'), // B+3
      { rpc: 'DeleteRange', req: (c) => ({ key: c.k('b') }) }, // B+4
      put(K('a'), 'v3'), // B+5
      { label: 'compact to B+2', rpc: 'Compact', req: (c) => ({ revision: c.rev(2) }), expect: expectOk },
      rangeAt(1, 'read below the compact revision'),
      rangeAt(2, 'read at the compact revision is allowed'),
      rangeAt(3, 'read above the compact revision'),
      { label: 'count_only below the compact revision', rpc: 'Range', req: (c) => ({ key: c.k(), range_end: prefixEnd(c.k()), revision: c.rev(1), count_only: true }) },
      { label: 'compact at the compact revision again', rpc: 'Compact', req: (c) => ({ revision: c.rev(2) }), expect: expectError(OUT_OF_RANGE, COMPACTED) },
      { label: 'compact below the compact revision', rpc: 'Compact', req: (c) => ({ revision: c.rev(1) }), expect: expectError(OUT_OF_RANGE, COMPACTED) },
      { label: 'compact revision 0', rpc: 'Compact', req: { revision: 0 } },
      { label: 'compact a future revision', rpc: 'Compact', req: (c) => ({ revision: c.rev(100) }), expect: expectError(OUT_OF_RANGE, FUTURE) },
      { label: 'compact to the current revision + 1 (future)', rpc: 'Compact', req: (c) => ({ revision: c.rev(6) }) },
      { label: 'physical compact to B+4', rpc: 'Compact', req: (c) => ({ revision: c.rev(4), physical: true }), expect: expectOk },
      rangeAt(3, 'read below the physical compact revision'),
      rangeAt(4, 'read at the physical compact revision (b deleted)'),
      { label: 'txn range below the compact revision', rpc: 'Txn', req: (c) => ({ success: [op.put({ key: c.k('t'), value: b('1') }), op.range({ key: c.k('a'), revision: c.rev(2) })] }) },
      { label: 'txn range at the compact revision', rpc: 'Txn', req: (c) => ({ success: [op.range({ key: c.k('a'), revision: c.rev(4) })] }) },
      rangePrefix({}, 'current read unaffected'),
      put(K('a'), 'v4', { prev_kv: true }, 'writes continue after compaction'),
      { label: 'compact to the current revision', rpc: 'Compact', req: (c) => ({ revision: c.rev(6), physical: true }), expect: expectOk },
      rangeAt(6, 'read at the current (compacted) revision'),
      rangeAt(5, 'read just below it'),
      { label: 'delete after a full compaction', rpc: 'DeleteRange', req: (c) => ({ key: c.k('a'), prev_kv: true }) },
      rangeAt(6, 'history at the compact revision after a delete'),
      rangePrefix({}, 'final'),
    ],
  },
];

describe('conformance: revisions and Compact', () => {
  const targets = useTargets();
  defineScenarios(targets, scenarios);
});
