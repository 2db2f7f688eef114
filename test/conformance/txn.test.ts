import { describe } from 'vitest';
import {
  b, CompareResult, CompareTarget, defineScenarios, expectError, expectOk, op, prefixEnd, put, rangePrefix, SortOrder, SortTarget, useTargets,
  type Ctx, type Scenario, type Step,
} from './runner';

/** Txn: compare targets/results, missing keys, range compares, nested txns, own-write visibility, duplicate keys, op limits. */

const K = (s: string) => (c: Ctx) => c.k(s);
const INVALID_ARGUMENT = 3;
const DUP = 'etcdserver: duplicate key given in txn request';
const TOO_MANY = 'etcdserver: too many operations in txn request';

type TargetName = keyof typeof CompareTarget;
const FIELD: Record<TargetName, string> = { VERSION: 'version', CREATE: 'create_revision', MOD: 'mod_revision', VALUE: 'value', LEASE: 'lease' };

/** A Compare message; `v` is the target value (already resolved). */
function cmp(target: TargetName, result: keyof typeof CompareResult, key: Buffer, v: unknown, range_end?: Buffer): object {
  return { target: CompareTarget[target], result: CompareResult[result], key, [FIELD[target]]: v, ...(range_end ? { range_end } : {}) };
}

const RESULTS = Object.keys(CompareResult) as (keyof typeof CompareResult)[];

function txn(label: string, req: (c: Ctx) => object, extra: Partial<Step> = {}): Step {
  return { label, rpc: 'Txn', req, ...extra } as Step;
}

// State of key "a" in txn-compare-targets: create B+2, mod B+3, version 2, value "v2", lease l1.
const COMPARE_VALUES: Record<TargetName, [string, (c: Ctx) => unknown][]> = {
  VERSION: [['1', () => 1], ['2', () => 2], ['3', () => 3]],
  CREATE: [['B+1', (c) => c.rev(1)], ['B+2', (c) => c.rev(2)], ['B+3', (c) => c.rev(3)]],
  MOD: [['B+2', (c) => c.rev(2)], ['B+3', (c) => c.rev(3)], ['B+4', (c) => c.rev(4)]],
  VALUE: [['"v1"', () => b('v1')], ['"v2"', () => b('v2')], ['"v3"', () => b('v3')], ['"v10"', () => b('v10')], ['""', () => b('')]],
  LEASE: [['0', () => 0], ['l1', (c) => c.lease('l1')], ['l1+1', (c) => String(Number(c.lease('l1')) + 1)]],
};

const MISSING_VALUES: Record<TargetName, [string, (c: Ctx) => unknown][]> = {
  VERSION: [['0', () => 0], ['1', () => 1]],
  CREATE: [['0', () => 0], ['B+1', (c) => c.rev(1)]],
  MOD: [['0', () => 0], ['B+1', (c) => c.rev(1)]],
  VALUE: [['""', () => b('')], ['"x"', () => b('x')]],
  LEASE: [['0', () => 0], ['l1', (c) => c.lease('l1')]],
};

const TARGET_NAMES = Object.keys(CompareTarget) as TargetName[];

const scenarios: Scenario[] = [
  {
    name: 'txn-compare-targets',
    steps: [
      { label: 'LeaseGrant l1', rpc: 'LeaseGrant', req: (c) => ({ ID: c.lease('l1'), TTL: 600 }), expect: expectOk },
      put(K('other'), 'o'), // B+1
      put(K('a'), 'v1'), // B+2
      { rpc: 'Put', req: (c) => ({ key: c.k('a'), value: b('v2'), lease: c.lease('l1') }) }, // B+3
      ...TARGET_NAMES.flatMap((t) =>
        COMPARE_VALUES[t].flatMap(([vn, v]) =>
          RESULTS.map((r) =>
            txn(`${t} ${r} ${vn}`, (c) => ({ compare: [cmp(t, r, c.k('a'), v(c))], success: [op.range({ key: c.k('a'), keys_only: true })], failure: [] })),
          ),
        ),
      ),
      txn('compare with the target_union unset (compares against 0)', (c) => ({ compare: [{ target: CompareTarget.VERSION, result: CompareResult.GREATER, key: c.k('a') }] })),
      txn('several compares: all must hold (true)', (c) => ({
        compare: [cmp('VERSION', 'EQUAL', c.k('a'), 2), cmp('VALUE', 'EQUAL', c.k('a'), b('v2')), cmp('VERSION', 'EQUAL', c.k('other'), 1)],
        success: [op.range({ key: c.k('other') })],
        failure: [op.range({ key: c.k('a') })],
      })),
      txn('several compares: all must hold (false)', (c) => ({
        compare: [cmp('VERSION', 'EQUAL', c.k('a'), 2), cmp('VALUE', 'EQUAL', c.k('a'), b('nope'))],
        success: [op.range({ key: c.k('other') })],
        failure: [op.range({ key: c.k('a') })],
      })),
      txn('no compares: success branch', (c) => ({ success: [op.range({ key: c.k('other') })], failure: [op.range({ key: c.k('a') })] })),
      txn('binary VALUE compare', (c) => ({ compare: [cmp('VALUE', 'LESS', c.k('a'), b('v2\x00'))] })),
    ],
  },
  {
    name: 'txn-missing-key-compares',
    steps: [
      { label: 'LeaseGrant l1', rpc: 'LeaseGrant', req: (c) => ({ ID: c.lease('l1'), TTL: 600 }), expect: expectOk },
      put(K('deleted'), 'x'),
      { rpc: 'DeleteRange', req: (c) => ({ key: c.k('deleted') }) },
      ...(['missing', 'deleted'] as const).flatMap((key) =>
        TARGET_NAMES.flatMap((t) =>
          MISSING_VALUES[t].flatMap(([vn, v]) => RESULTS.map((r) => txn(`${key}: ${t} ${r} ${vn}`, (c) => ({ compare: [cmp(t, r, c.k(key), v(c))] })))),
        ),
      ),
      txn('create-if-absent (k8s create): If(mod==0) Then(put) Else(get)', (c) => ({
        compare: [cmp('MOD', 'EQUAL', c.k('new'), 0)],
        success: [op.put({ key: c.k('new'), value: b('1') })],
        failure: [op.range({ key: c.k('new') })],
      })),
      txn('second create-if-absent fails and returns the key', (c) => ({
        compare: [cmp('MOD', 'EQUAL', c.k('new'), 0)],
        success: [op.put({ key: c.k('new'), value: b('2') })],
        failure: [op.range({ key: c.k('new') })],
      })),
    ],
  },
  {
    name: 'txn-range-compares',
    steps: [
      put(K('r/a'), 'x1'),
      put(K('r/b'), 'x2'),
      put(K('r/b'), 'x2'),
      put(K('r/c'), 'x3'),
      put(K('r/c'), 'x3'),
      put(K('r/c'), 'x3'),
      ...(
        [
          ['VERSION', 'GREATER', () => 0],
          ['VERSION', 'GREATER', () => 1],
          ['VERSION', 'LESS', () => 4],
          ['VERSION', 'LESS', () => 3],
          ['VERSION', 'EQUAL', () => 1],
          ['VERSION', 'NOT_EQUAL', () => 4],
          ['VALUE', 'GREATER', () => b('x0')],
          ['VALUE', 'LESS', () => b('x3')],
          ['CREATE', 'LESS', (c: Ctx) => c.rev(100)],
          ['CREATE', 'GREATER', (c: Ctx) => c.rev(1)],
          ['MOD', 'GREATER', (c: Ctx) => c.rev(0)],
          ['LEASE', 'EQUAL', () => 0],
        ] as [TargetName, keyof typeof CompareResult, (c: Ctx) => unknown][]
      ).map(([t, r, v]) => txn(`range [r/, prefixEnd) ${t} ${r}`, (c) => ({ compare: [cmp(t, r, c.k('r/'), v(c), prefixEnd(c.k('r/')))] }))),
      txn('range_end \\0 on a compare (>= key)', (c) => ({ compare: [cmp('VERSION', 'GREATER', c.k('r/b'), 1, b('\0'))] })),
      txn('range [r/a, r/c) VERSION < 3', (c) => ({ compare: [cmp('VERSION', 'LESS', c.k('r/a'), 3, c.k('r/c'))] })),
      txn('empty range: VERSION == 0 (zero KeyValue)', (c) => ({ compare: [cmp('VERSION', 'EQUAL', c.k('none/'), 0, prefixEnd(c.k('none/')))] })),
      txn('empty range: CREATE == 0', (c) => ({ compare: [cmp('CREATE', 'EQUAL', c.k('none/'), 0, prefixEnd(c.k('none/')))] })),
      txn('empty range: VALUE == "" (VALUE on nothing fails)', (c) => ({ compare: [cmp('VALUE', 'EQUAL', c.k('none/'), b(''), prefixEnd(c.k('none/')))] })),
      txn('empty range: VALUE != "x"', (c) => ({ compare: [cmp('VALUE', 'NOT_EQUAL', c.k('none/'), b('x'), prefixEnd(c.k('none/')))] })),
    ],
  },
  {
    name: 'txn-own-writes-and-revisions',
    steps: [
      put(K('a'), 'a0'), // B+1
      put(K('b'), 'b0'), // B+2
      txn('read-only txn: no revision bump', (c) => ({ success: [op.range({ key: c.k(), range_end: prefixEnd(c.k()) })] })),
      txn('txn deleting nothing: no revision bump', (c) => ({ success: [op.del({ key: c.k('zz') }), op.range({ key: c.k('a') })] })),
      txn('write txn: ranges see the txn\'s own writes, one revision for all', (c) => ({
        success: [
          op.range({ key: c.k(), range_end: prefixEnd(c.k()) }),
          op.put({ key: c.k('c'), value: b('c1'), prev_kv: true }),
          op.range({ key: c.k(), range_end: prefixEnd(c.k()) }),
          op.put({ key: c.k('a'), value: b('a1'), prev_kv: true }),
          op.del({ key: c.k('b'), prev_kv: true }),
          op.range({ key: c.k(), range_end: prefixEnd(c.k()) }),
          op.range({ key: c.k(), range_end: prefixEnd(c.k()), revision: 0, count_only: true }),
          op.range({ key: c.k(), range_end: prefixEnd(c.k()), revision: '@2' }),
        ],
      })),
      rangePrefix({}, 'after: one revision (B+3)'),
      { label: 'history at B+2 intact', rpc: 'Range', req: (c) => ({ key: c.k(), range_end: prefixEnd(c.k()), revision: c.rev(2) }) },
      txn('mutex pattern: If(create(myKey)==0) Then(put, get first-create) Else(get, get first-create)', (c) => ({
        compare: [cmp('CREATE', 'EQUAL', c.k('lock/me'), 0)],
        success: [
          op.put({ key: c.k('lock/me'), value: b('') }),
          op.range({ key: c.k('lock/'), range_end: prefixEnd(c.k('lock/')), sort_target: SortTarget.CREATE, sort_order: SortOrder.ASCEND, limit: 1 }),
        ],
        failure: [
          op.range({ key: c.k('lock/me') }),
          op.range({ key: c.k('lock/'), range_end: prefixEnd(c.k('lock/')), sort_target: SortTarget.CREATE, sort_order: SortOrder.ASCEND, limit: 1 }),
        ],
      })),
      txn('mutex pattern again: else branch', (c) => ({
        compare: [cmp('CREATE', 'EQUAL', c.k('lock/me'), 0)],
        success: [op.put({ key: c.k('lock/me'), value: b('') })],
        failure: [
          op.range({ key: c.k('lock/me') }),
          op.range({ key: c.k('lock/'), range_end: prefixEnd(c.k('lock/')), sort_target: SortTarget.CREATE, sort_order: SortOrder.ASCEND, limit: 1 }),
        ],
      })),
      txn('range inside a txn at a future revision fails the whole txn', (c) => ({
        success: [op.put({ key: c.k('f'), value: b('x') }), op.range({ key: c.k('a'), revision: c.rev(1000) })],
      })),
      txn('put with an unknown lease inside a txn fails the whole txn', (c) => ({
        success: [op.put({ key: c.k('f'), value: b('x') }), op.put({ key: c.k('g'), value: b('x'), lease: c.lease('nope') })],
      })),
      txn('ignore_value on a missing key inside a txn', (c) => ({
        success: [op.put({ key: c.k('f'), value: b('x') }), op.put({ key: c.k('g'), ignore_value: true })],
      })),
      txn('errors in the branch not taken are still checked?', (c) => ({
        compare: [cmp('VERSION', 'EQUAL', c.k('a'), 1000)],
        success: [op.range({ key: c.k('a'), revision: c.rev(1000) })],
        failure: [op.range({ key: c.k('a') })],
      })),
      rangePrefix({}, 'failed txns wrote nothing'),
    ],
  },
  {
    name: 'txn-nested',
    steps: [
      put(K('a'), 'a0'), // B+1
      txn('nested compares are evaluated against the pre-txn state', (c) => ({
        compare: [cmp('VERSION', 'EQUAL', c.k('a'), 1)],
        success: [
          op.put({ key: c.k('b'), value: b('b1') }),
          op.txn({
            compare: [cmp('VERSION', 'EQUAL', c.k('b'), 0)],
            success: [op.put({ key: c.k('c'), value: b('then') }), op.range({ key: c.k(), range_end: prefixEnd(c.k()) })],
            failure: [op.put({ key: c.k('c'), value: b('else') })],
          }),
          op.range({ key: c.k(), range_end: prefixEnd(c.k()) }),
        ],
        failure: [op.put({ key: c.k('outer-else'), value: b('x') })],
      })),
      rangePrefix({}, 'one revision for the nested txn'),
      txn('nested failure branch with deletes', (c) => ({
        success: [
          op.txn({
            compare: [cmp('VALUE', 'EQUAL', c.k('c'), b('nope'))],
            success: [op.put({ key: c.k('d'), value: b('x') })],
            failure: [op.del({ key: c.k('b'), prev_kv: true }), op.txn({ success: [op.range({ key: c.k('b') })] })],
          }),
        ],
      })),
      txn('nested read-only txn: no revision bump', (c) => ({ success: [op.txn({ success: [op.range({ key: c.k('a') })] })] })),
      txn('nested then/else may put the same key', (c) => ({
        success: [
          op.txn({
            compare: [cmp('VERSION', 'GREATER', c.k('a'), 0)],
            success: [op.put({ key: c.k('e'), value: b('then') })],
            failure: [op.put({ key: c.k('e'), value: b('else') })],
          }),
        ],
      })),
      txn('three levels deep', (c) => ({
        success: [op.txn({ success: [op.txn({ success: [op.put({ key: c.k('deep'), value: b('3') }), op.range({ key: c.k('deep') })] })] })],
      })),
      rangePrefix({}, 'final'),
    ],
  },
  {
    name: 'txn-duplicate-keys',
    steps: [
      put(K('a'), 'a0'), // B+1
      txn('two puts of the same key', (c) => ({ success: [op.put({ key: c.k('x'), value: b('1') }), op.put({ key: c.k('x'), value: b('2') })] }), {
        expect: expectError(INVALID_ARGUMENT, DUP),
      }),
      txn('two puts of the same key in the failure list (success taken)', (c) => ({
        success: [op.put({ key: c.k('y'), value: b('1') })],
        failure: [op.put({ key: c.k('x'), value: b('1') }), op.put({ key: c.k('x'), value: b('2') })],
      })),
      txn('same key in success and failure lists is fine', (c) => ({
        success: [op.put({ key: c.k('x'), value: b('s') })],
        failure: [op.put({ key: c.k('x'), value: b('f') })],
      })),
      txn('put inside a delete range (delete first)', (c) => ({
        success: [op.del({ key: c.k('a'), range_end: c.k('z') }), op.put({ key: c.k('m'), value: b('1') })],
      })),
      txn('put inside a delete range (put first)', (c) => ({
        success: [op.put({ key: c.k('m'), value: b('1') }), op.del({ key: c.k('a'), range_end: c.k('z') })],
      })),
      txn('put and delete of the same single key', (c) => ({ success: [op.put({ key: c.k('a'), value: b('1') }), op.del({ key: c.k('a') })] })),
      txn('put just outside a delete range [a, m) is fine', (c) => ({
        success: [op.del({ key: c.k('a'), range_end: c.k('m') }), op.put({ key: c.k('m'), value: b('1') })],
      })),
      txn('overlapping deletes are allowed', (c) => ({
        success: [op.del({ key: c.k('a'), range_end: c.k('n') }), op.del({ key: c.k('b'), range_end: c.k('z') }), op.del({ key: c.k('m') })],
      })),
      txn('outer put + nested put of the same key', (c) => ({
        success: [op.put({ key: c.k('p'), value: b('1') }), op.txn({ success: [op.put({ key: c.k('p'), value: b('2') })] })],
      })),
      txn('outer delete range + nested put inside it', (c) => ({
        success: [op.del({ key: c.k('a'), range_end: c.k('z') }), op.txn({ success: [op.put({ key: c.k('q'), value: b('1') })] })],
      })),
      txn('outer put + nested delete range over it', (c) => ({
        success: [op.put({ key: c.k('q'), value: b('1') }), op.txn({ success: [op.del({ key: c.k('a'), range_end: c.k('z') })] })],
      })),
      txn('two sibling nested txns putting the same key', (c) => ({
        success: [op.txn({ success: [op.put({ key: c.k('s'), value: b('1') })] }), op.txn({ success: [op.put({ key: c.k('s'), value: b('2') })] })],
      })),
      txn('nested: outer failure branch duplicate while success taken', (c) => ({
        success: [op.put({ key: c.k('t'), value: b('1') })],
        failure: [op.txn({ success: [op.put({ key: c.k('u'), value: b('1') }), op.put({ key: c.k('u'), value: b('2') })] })],
      })),
      txn('ranges on the same key are not writes', (c) => ({
        success: [op.put({ key: c.k('r'), value: b('1') }), op.range({ key: c.k('r') }), op.range({ key: c.k('a'), range_end: c.k('z') })],
      })),
      rangePrefix({}, 'state: only the valid txns applied'),
    ],
  },
  {
    name: 'txn-op-limits',
    steps: [
      put(K('a'), 'a0'),
      txn('128 puts (the default --max-txn-ops)', (c) => ({ success: Array.from({ length: 128 }, (_, i) => op.put({ key: c.k(`p/${i}`), value: b('x') })) }), { expect: expectOk }),
      txn('129 puts', (c) => ({ success: Array.from({ length: 129 }, (_, i) => op.put({ key: c.k(`q/${i}`), value: b('x') })) }), {
        expect: expectError(INVALID_ARGUMENT, TOO_MANY),
      }),
      txn('129 ranges in the failure list', (c) => ({ failure: Array.from({ length: 129 }, () => op.range({ key: c.k('a') })) })),
      txn('129 compares', (c) => ({ compare: Array.from({ length: 129 }, () => cmp('VERSION', 'GREATER', c.k('a'), 0)) })),
      txn('128 compares', (c) => ({ compare: Array.from({ length: 128 }, () => cmp('VERSION', 'GREATER', c.k('a'), 0)) })),
      txn('100 outer ops + nested txn with 28 ops', (c) => ({
        success: [
          ...Array.from({ length: 99 }, (_, i) => op.range({ key: c.k(`r/${i}`) })),
          op.txn({ success: Array.from({ length: 28 }, (_, i) => op.range({ key: c.k(`n/${i}`) })) }),
        ],
      })),
      txn('100 outer ops + nested txn with 29 ops', (c) => ({
        success: [
          ...Array.from({ length: 99 }, (_, i) => op.range({ key: c.k(`r/${i}`) })),
          op.txn({ success: Array.from({ length: 29 }, (_, i) => op.range({ key: c.k(`n/${i}`) })) }),
        ],
      })),
      txn('empty RequestOp in success', (c) => ({ success: [op.put({ key: c.k('e'), value: b('1') }), {}] }), {
        expect: expectError(INVALID_ARGUMENT, 'etcdserver: key not found'),
      }),
      txn('empty RequestOp in failure', () => ({ failure: [{}] })),
      txn('empty RequestOp in a nested txn', () => ({ success: [op.txn({ success: [{}] })] })),
      txn('empty txn', () => ({})),
      { label: 'count of the 128 puts', rpc: 'Range', req: (c) => ({ key: c.k('p/'), range_end: prefixEnd(c.k('p/')), count_only: true }) },
      { label: 'nothing from the 129-op txn', rpc: 'Range', req: (c) => ({ key: c.k('q/'), range_end: prefixEnd(c.k('q/')), count_only: true }) },
    ],
  },
];

/** '@n' revision placeholders inside txn sub-requests become c.rev(n). */
function resolveRevs(v: unknown, c: Ctx): unknown {
  if (typeof v === 'string' && /^@\d+$/.test(v)) return c.rev(Number(v.slice(1)));
  if (Buffer.isBuffer(v) || v === null || typeof v !== 'object') return v;
  if (Array.isArray(v)) return v.map((x) => resolveRevs(x, c));
  return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, resolveRevs(x, c)]));
}
for (const sc of scenarios) {
  for (const s of sc.steps) {
    if ('rpc' in s && typeof s.req === 'function') {
      const f = s.req;
      s.req = (c: Ctx) => resolveRevs(f(c), c) as object;
    }
  }
}

describe('conformance: Txn', () => {
  const targets = useTargets();
  defineScenarios(targets, scenarios);
});
