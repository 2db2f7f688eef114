import type { Compare, RequestOp, TxnRequest } from '../../proto/etcd-types';
import { ErrDuplicateKey, ErrEmptyKey, ErrKeyNotFound, ErrLeaseProvided, ErrTooManyOps, ErrValueProvided } from '../etcdserver/errors';
import type { PutRequest, RangeRequest, DeleteRangeRequest } from '../../proto/etcd-types';

/**
 * Request validation done at the gRPC layer before anything is proposed (v3rpc/key.go):
 * the same checks, in the same order, so bad input gets etcd's exact error.
 */

export function checkRangeRequest(r: RangeRequest): void {
  if (r.key.length === 0) throw new ErrEmptyKey();
}

export function checkPutRequest(r: PutRequest): void {
  if (r.key.length === 0) throw new ErrEmptyKey();
  if (r.ignore_value && r.value.length !== 0) throw new ErrValueProvided();
  if (r.ignore_lease && r.lease !== '0') throw new ErrLeaseProvided();
}

export function checkDeleteRequest(r: DeleteRangeRequest): void {
  if (r.key.length === 0) throw new ErrEmptyKey();
}

function checkRequestOp(op: RequestOp, maxTxnOps: number): void {
  if (op.request_range) return checkRangeRequest(op.request_range);
  if (op.request_put) return checkPutRequest(op.request_put);
  if (op.request_delete_range) return checkDeleteRequest(op.request_delete_range);
  if (op.request_txn) return checkTxnRequest(op.request_txn, maxTxnOps);
  // An op with no request set is rejected with etcd's (odd but exact) message.
  throw new ErrKeyNotFound();
}

/** checkTxnRequest: op-count limit (nested txns share the budget), non-empty compare keys, op checks. */
export function checkTxnRequest(r: TxnRequest, maxTxnOps: number): void {
  const opc = Math.max(r.compare.length, r.success.length, r.failure.length);
  if (opc > maxTxnOps) throw new ErrTooManyOps();
  for (const c of r.compare) if (c.key.length === 0) throw new ErrEmptyKey();
  for (const op of r.success) checkRequestOp(op, maxTxnOps - opc);
  for (const op of r.failure) checkRequestOp(op, maxTxnOps - opc);
}

/** Byte interval [start, end); end === undefined marks a single key. */
interface Interval {
  start: string;
  end: string | undefined;
}

const latin1 = (b: Buffer): string => b.toString('latin1');

function contains(iv: Interval, key: string): boolean {
  if (iv.end === undefined) return iv.start === key;
  return key >= iv.start && key < iv.end;
}

/**
 * The duplicate-key rule (checkIntervals): within one branch, no key may be put twice, and no put
 * may fall inside a delete range, recursively through nested txns. Both branches of a nested txn
 * may write the same key because only one of them runs. Returns the branch's deletes and puts.
 */
function checkIntervals(ops: readonly RequestOp[]): { dels: Interval[]; puts: Set<string> } {
  const dels: Interval[] = [];
  // Deletes at this level, and those of nested txns, are collected first: order does not matter.
  for (const op of ops) {
    const d = op.request_delete_range;
    if (!d) continue;
    dels.push(deleteInterval(d));
  }
  const puts = new Set<string>();
  for (const op of ops) {
    const t = op.request_txn;
    if (!t) continue;
    const a = checkIntervals(t.success);
    const b = checkIntervals(t.failure);
    for (const k of a.puts) {
      if (puts.has(k) || dels.some((d) => contains(d, k))) throw new ErrDuplicateKey();
      puts.add(k);
    }
    for (const k of b.puts) {
      // The same key in both branches is fine: they are mutually exclusive.
      if ((puts.has(k) && !a.puts.has(k)) || dels.some((d) => contains(d, k))) throw new ErrDuplicateKey();
      puts.add(k);
    }
    dels.push(...a.dels, ...b.dels);
  }
  for (const op of ops) {
    const p = op.request_put;
    if (!p) continue;
    const k = latin1(p.key);
    if (dels.some((d) => contains(d, k))) throw new ErrDuplicateKey();
    if (puts.has(k)) throw new ErrDuplicateKey();
    puts.add(k);
  }
  return { dels, puts };
}

function deleteInterval(d: DeleteRangeRequest): Interval {
  const start = latin1(d.key);
  if (d.range_end.length === 0) return { start, end: undefined };
  // etcd builds [key, range_end) literally, so a from-key delete (range_end "\x00") is an empty
  // interval there and conflicts with no put. Matching that quirk keeps responses identical.
  return { start, end: latin1(d.range_end) };
}

export function checkTxnIntervals(r: TxnRequest): void {
  checkIntervals(r.success);
  checkIntervals(r.failure);
}

export type { Compare };
