import type { KeyValue, RangeResult } from '../../../mvcc/kv';
import type { KvStore, TxnWrite } from '../../../mvcc/kv-store';
import type { Lessor } from '../../../mvcc/lessor';
import type {
  Compare,
  CompactionRequest,
  DeleteRangeRequest,
  DeleteRangeResponse,
  InternalRaftRequest,
  KeyValueMsg,
  LeaseGrantRequest,
  PutRequest,
  PutResponse,
  RangeRequest,
  RangeResponse,
  RequestOp,
  ResponseHeader,
  ResponseOp,
  TxnRequest,
  TxnResponse,
} from '../../../proto/etcd-types';
import { CompareResult, CompareTarget, SortOrder, SortTarget } from '../../../proto/etcd-types';
import { ErrCompacted, ErrFutureRev, ErrKeyNotFound, ErrLeaseNotFound } from '../errors';
import { toEtcdError } from '../error-translation';

/**
 * The state machine: applies committed requests to the key-value store and leases, in log order
 * (etcd's applierV3backend). Also serves reads (Range and read-only Txn) against the same state,
 * so a read and a write see one set of rules.
 */

/** A sub-response header carries only the revision (etcd leaves the rest zero inside a txn). */
function revHeader(revision: number): ResponseHeader {
  return { cluster_id: 0, member_id: 0, revision, raft_term: 0 };
}

export function toKvMsg(kv: KeyValue, keysOnly = false): KeyValueMsg {
  return {
    key: kv.key,
    create_revision: kv.createRevision,
    mod_revision: kv.modRevision,
    version: kv.version,
    value: keysOnly ? EMPTY : kv.value,
    lease: kv.lease === 0n ? 0 : kv.lease.toString(),
  };
}

const EMPTY = Buffer.alloc(0);

/** Range end as the store understands it: undefined = single key, "\x00" = all keys >= key. */
function rangeEnd(end: Buffer): Buffer | null {
  return end.length === 0 ? null : end;
}

/** A read view: the store at its current revision, or a write txn that sees its own writes. */
interface ReadView {
  range(key: Buffer, end: Buffer | null, opts: { limit?: number; countOnly?: boolean }): RangeResult;
}

export interface ApplyResult<T = unknown> {
  response: T;
  /** Compaction with physical=true: resolves once superseded revisions are gone. */
  physicalDone?: Promise<void>;
}

export type ApplyOutcome = { ok: ApplyResult } | { err: Error };

export interface ApplierLimits {
  maxTxnOps: number;
}

function needsFullFetch(r: RangeRequest): boolean {
  return (
    r.sort_order !== SortOrder.NONE ||
    r.min_mod_revision !== '0' ||
    r.max_mod_revision !== '0' ||
    r.min_create_revision !== '0' ||
    r.max_create_revision !== '0'
  );
}

function storeLimit(r: RangeRequest): number {
  const limit = Number(r.limit);
  if (needsFullFetch(r)) return 0;
  return limit > 0 ? limit + 1 : 0;
}

/** Filters, sort, limit and shaping of a range result (etcd applierV3backend.Range). */
function shapeRange(r: RangeRequest, rr: RangeResult, header: ResponseHeader): RangeResponse {
  let kvs = rr.kvs;
  const minMod = Number(r.min_mod_revision);
  const maxMod = Number(r.max_mod_revision);
  const minCreate = Number(r.min_create_revision);
  const maxCreate = Number(r.max_create_revision);
  if (minMod !== 0) kvs = kvs.filter((kv) => kv.modRevision >= minMod);
  if (maxMod !== 0) kvs = kvs.filter((kv) => kv.modRevision <= maxMod);
  if (minCreate !== 0) kvs = kvs.filter((kv) => kv.createRevision >= minCreate);
  if (maxCreate !== 0) kvs = kvs.filter((kv) => kv.createRevision <= maxCreate);

  let order = r.sort_order;
  // The store returns keys ascending; only sort when that is not already the answer.
  if (r.sort_target !== SortTarget.KEY && order === SortOrder.NONE) order = SortOrder.ASCEND;
  else if (r.sort_target === SortTarget.KEY && order === SortOrder.ASCEND) order = SortOrder.NONE;
  if (order !== SortOrder.NONE) {
    const cmp = comparator(r.sort_target);
    kvs = kvs === rr.kvs ? [...kvs] : kvs;
    kvs.sort(order === SortOrder.ASCEND ? cmp : (a, b) => cmp(b, a));
  }
  const limit = Number(r.limit);
  let more = false;
  if (limit > 0 && kvs.length > limit) {
    kvs = kvs.slice(0, limit);
    more = true;
  }
  return {
    header,
    kvs: r.count_only ? [] : kvs.map((kv) => toKvMsg(kv, r.keys_only)),
    more,
    count: rr.count,
  };
}

function comparator(target: SortTarget): (a: KeyValue, b: KeyValue) => number {
  switch (target) {
    case SortTarget.VERSION:
      return (a, b) => a.version - b.version;
    case SortTarget.CREATE:
      return (a, b) => a.createRevision - b.createRevision;
    case SortTarget.MOD:
      return (a, b) => a.modRevision - b.modRevision;
    case SortTarget.VALUE:
      return (a, b) => Buffer.compare(a.value, b.value);
    default:
      return (a, b) => Buffer.compare(a.key, b.key);
  }
}

function compareKv(c: Compare, kv: KeyValue | undefined): boolean {
  let result: number;
  switch (c.target) {
    case CompareTarget.VALUE:
      result = Buffer.compare(kv?.value ?? EMPTY, c.target_union === 'value' && c.value ? c.value : EMPTY);
      break;
    case CompareTarget.CREATE:
      result = sign(kv?.createRevision ?? 0, c.target_union === 'create_revision' ? Number(c.create_revision) : 0);
      break;
    case CompareTarget.MOD:
      result = sign(kv?.modRevision ?? 0, c.target_union === 'mod_revision' ? Number(c.mod_revision) : 0);
      break;
    case CompareTarget.VERSION:
      result = sign(kv?.version ?? 0, c.target_union === 'version' ? Number(c.version) : 0);
      break;
    case CompareTarget.LEASE: {
      const want = c.target_union === 'lease' ? BigInt(c.lease ?? '0') : 0n;
      const have = kv?.lease ?? 0n;
      result = have < want ? -1 : have > want ? 1 : 0;
      break;
    }
    default:
      result = 0;
  }
  switch (c.result) {
    case CompareResult.EQUAL:
      return result === 0;
    case CompareResult.NOT_EQUAL:
      return result !== 0;
    case CompareResult.GREATER:
      return result > 0;
    case CompareResult.LESS:
      return result < 0;
    default:
      return true;
  }
}

function sign(a: number, b: number): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** What applies one committed request (etcd's applierV3); decorators wrap it (capped.ts). */
export interface ApplierV3 {
  apply(index: number, req: InternalRaftRequest, header: (rev: number) => ResponseHeader): ApplyOutcome | Promise<ApplyOutcome>;
}

/** The backend applier (etcd's applierV3backend): requests become write txns on the store and lessor. */
export class Applier implements ApplierV3 {
  constructor(
    private readonly store: KvStore,
    private readonly lessor: Lessor,
  ) {}

  /** Ends a write txn; the store tells its watchers once the writes are visible to reads. */
  private commit(w: TxnWrite, index: number): void {
    w.end({ consistentIndex: index });
  }

  // ---------------------------------------------------------------- reads (no log entry)

  /** Range against the current state or a past revision; header.revision is the current revision. */
  async range(r: RangeRequest, header: (rev: number) => ResponseHeader): Promise<RangeResponse> {
    // A Range is one read txn with one range (etcd's metricsTxnWrite over KV().Read()).
    this.store.recordRead({ ranges: 1, puts: 0, deletes: 0, putBytes: 0 });
    const rr = await this.rangeAt(r);
    return shapeRange(r, rr, header(rr.rev));
  }

  private rangeAt(r: RangeRequest): RangeResult | Promise<RangeResult> {
    const rev = Number(r.revision);
    const opts = { limit: storeLimit(r), countOnly: r.count_only };
    // Values are read from the backend without blocking the apply loop (mvcc/kv-store-read.ts).
    return this.store.range(r.key, rangeEnd(r.range_end), { ...opts, rev }).catch((e: unknown) => {
      throw toEtcdError(e);
    });
  }

  /** A Txn with no writes, served from local state (after ReadIndex unless serializable). */
  async readOnlyTxn(rt: TxnRequest, header: (rev: number) => ResponseHeader): Promise<TxnResponse> {
    const path = this.compareToPath(rt);
    const prefetched = await this.prefetchHistorical(rt, path);
    let ranges = rt.compare.length;
    const view: ReadView = {
      range: (k, e, o) => {
        ranges++;
        return this.store.rangeCurrent(k, e, o);
      },
    };
    const resp = this.execTxn(view, undefined, rt, path, { i: 0 }, prefetched, this.store.rev);
    this.store.recordRead({ ranges, puts: 0, deletes: 0, putBytes: 0 });
    resp.header = header(this.store.rev);
    return resp;
  }

  // ---------------------------------------------------------------- writes (log order)

  /**
   * Applies one committed request. Synchronous except where a txn reads past revisions, which are
   * fetched before any write starts, so no reader ever sees half a transaction.
   */
  apply(index: number, req: InternalRaftRequest, header: (rev: number) => ResponseHeader): ApplyOutcome | Promise<ApplyOutcome> {
    try {
      if (req.put) return ok(this.applyPut(index, req.put, header));
      if (req.delete_range) return ok(this.applyDelete(index, req.delete_range, header));
      if (req.txn) {
        const txn = req.txn;
        const path = this.compareToPath(txn);
        this.checkTxnOps(txn, path);
        const prefetched = this.prefetchHistorical(txn, path);
        if (prefetched instanceof Promise) {
          return prefetched.then(
            (p) => ok(this.applyTxn(index, txn, path, p, header)),
            (e: unknown) => this.noop(index, e),
          );
        }
        return ok(this.applyTxn(index, txn, path, prefetched, header));
      }
      if (req.compaction) return ok(this.applyCompaction(index, req.compaction, header));
      if (req.lease_grant) return ok(this.applyLeaseGrant(index, req.lease_grant, header));
      if (req.lease_revoke) return ok(this.applyLeaseRevoke(index, BigInt(req.lease_revoke.ID), header));
      if (req.lease_checkpoint) {
        for (const c of req.lease_checkpoint.checkpoints) this.lessor.checkpoint(BigInt(c.ID), Number(c.remaining_TTL));
        return ok(this.applyNoop(index, { header: header(this.store.rev) }));
      }
      return ok(this.applyNoop(index, { header: header(this.store.rev) }));
    } catch (e) {
      return this.noop(index, e);
    }
  }

  /** A request that failed validation at apply time still consumes its index. */
  private noop(index: number, e: unknown): ApplyOutcome {
    this.applyNoop(index, undefined);
    return { err: toEtcdError(e) };
  }

  /** Consumes the entry's index without changing anything (a refused or empty request). */
  applyNoop<T>(index: number, response: T): ApplyResult<T> {
    const w = this.store.write();
    this.commit(w, index);
    return { response };
  }

  private applyPut(index: number, p: PutRequest, header: (rev: number) => ResponseHeader): ApplyResult<PutResponse> {
    const lease = BigInt(p.lease);
    if (lease !== 0n && !this.lessor.has(lease)) throw new ErrLeaseNotFound();
    const w = this.store.write();
    let resp: PutResponse;
    try {
      resp = this.put(w, p);
    } catch (e) {
      this.commit(w, index);
      throw e;
    }
    this.commit(w, index);
    resp.header = header(this.store.rev);
    return { response: resp };
  }

  private put(w: TxnWrite, p: PutRequest): PutResponse {
    let lease = BigInt(p.lease);
    let value = p.value;
    let prev: KeyValue | undefined;
    if (p.ignore_value || p.ignore_lease || p.prev_kv) {
      prev = w.range(p.key, null, {}).kvs[0];
    }
    if (p.ignore_value || p.ignore_lease) {
      if (!prev) throw new ErrKeyNotFound();
      if (p.ignore_value) value = prev.value;
      if (p.ignore_lease) lease = prev.lease;
    }
    // The store reads no value for the put: the old lease comes from its key index (etcd's put asks
    // the lessor, lessor.GetLease(LeaseItem{key})).
    const oldLease = w.put(p.key, value, lease);
    const key = p.key.toString('latin1');
    if (oldLease !== undefined && oldLease !== 0n) this.lessor.detach(oldLease, key);
    if (lease !== 0n) this.lessor.attach(lease, key);
    const resp: PutResponse = { header: revHeader(w.rev + 1) };
    if (p.prev_kv && prev) resp.prev_kv = toKvMsg(prev);
    return resp;
  }

  private applyDelete(index: number, d: DeleteRangeRequest, header: (rev: number) => ResponseHeader): ApplyResult<DeleteRangeResponse> {
    const w = this.store.write();
    const resp = this.deleteRange(w, d);
    this.commit(w, index);
    resp.header = header(this.store.rev);
    return { response: resp };
  }

  private deleteRange(w: TxnWrite, d: DeleteRangeRequest): DeleteRangeResponse {
    const end = rangeEnd(d.range_end);
    // etcd's applier reads prev_kvs with a Range in the same txn before deleting; the delete itself
    // reads no value.
    const prevKvs = d.prev_kv ? w.range(d.key, end, {}).kvs : [];
    const deleted = w.deleteRange(d.key, end);
    for (const k of deleted) if (k.lease !== 0n) this.lessor.detach(k.lease, k.key.toString('latin1'));
    const changed = deleted.length > 0 || w.changes.length > 0;
    return {
      header: revHeader(changed ? w.rev + 1 : w.rev),
      deleted: deleted.length,
      prev_kvs: prevKvs.map((kv) => toKvMsg(kv)),
    };
  }

  // ---------------------------------------------------------------- txn

  /** Every compare, nested ones included, is evaluated against the state before the txn. */
  private compareToPath(rt: TxnRequest): boolean[] {
    const succeeded = rt.compare.every((c) => this.applyCompare(c));
    const path = [succeeded];
    for (const op of succeeded ? rt.success : rt.failure) {
      if (op.request_txn) path.push(...this.compareToPath(op.request_txn));
    }
    return path;
  }

  private applyCompare(c: Compare): boolean {
    const rr = this.store.rangeCurrent(c.key, rangeEnd(c.range_end), {});
    if (rr.kvs.length === 0) {
      // A missing value cannot be represented, so a VALUE compare on a missing key always fails.
      if (c.target === CompareTarget.VALUE) return false;
      return compareKv(c, undefined);
    }
    return rr.kvs.every((kv) => compareKv(c, kv));
  }

  /** Walks the chosen branches in order, calling `visit` on each non-txn op (etcd's txnPath walk). */
  private walk(rt: TxnRequest, path: boolean[], cursor: { i: number }, visit: (op: RequestOp) => void): void {
    const ops = path[cursor.i++] ? rt.success : rt.failure;
    for (const op of ops) {
      if (op.request_txn) this.walk(op.request_txn, path, cursor, visit);
      else visit(op);
    }
  }

  /** checkRequestPut/checkRequestRange over the chosen path: any failure fails the whole txn, unwritten. */
  private checkTxnOps(rt: TxnRequest, path: boolean[]): void {
    this.walk(rt, path, { i: 0 }, (op) => {
      const p = op.request_put;
      if (p) {
        if ((p.ignore_value || p.ignore_lease) && this.store.rangeCurrent(p.key, null, {}).kvs.length === 0) {
          throw new ErrKeyNotFound();
        }
        const lease = BigInt(p.lease);
        if (lease !== 0n && !this.lessor.has(lease)) throw new ErrLeaseNotFound();
      }
      const r = op.request_range;
      if (r) {
        const rev = Number(r.revision);
        if (rev === 0) return;
        if (rev > this.store.rev) throw new ErrFutureRev();
        if (rev < this.store.compactRev) throw new ErrCompacted();
      }
    });
  }

  /**
   * Ranges at an explicit past revision read committed history, which the txn's own writes cannot
   * change; they are fetched up front so the write part of the txn runs without yielding.
   */
  private prefetchHistorical(rt: TxnRequest, path: boolean[]): Map<RangeRequest, RangeResult> | Promise<Map<RangeRequest, RangeResult>> {
    const wanted: RangeRequest[] = [];
    this.walk(rt, path, { i: 0 }, (op) => {
      const r = op.request_range;
      if (r && Number(r.revision) > 0) wanted.push(r);
    });
    const out = new Map<RangeRequest, RangeResult>();
    if (wanted.length === 0) return out;
    const pending: Promise<void>[] = [];
    for (const r of wanted) {
      const res = this.rangeAt(r);
      if (res instanceof Promise) pending.push(res.then((v) => void out.set(r, v)));
      else out.set(r, res);
    }
    if (pending.length === 0) return out;
    return Promise.all(pending).then(() => out);
  }

  private applyTxn(
    index: number,
    rt: TxnRequest,
    path: boolean[],
    prefetched: Map<RangeRequest, RangeResult>,
    header: (rev: number) => ResponseHeader,
  ): ApplyResult<TxnResponse> {
    const w = this.store.write();
    let resp: TxnResponse;
    try {
      resp = this.execTxn({ range: (k, e, o) => w.range(k, e, o) }, w, rt, path, { i: 0 }, prefetched, w.rev);
    } finally {
      this.commit(w, index);
    }
    resp.header = header(this.store.rev);
    return { response: resp };
  }

  private execTxn(
    view: ReadView,
    w: TxnWrite | undefined,
    rt: TxnRequest,
    path: boolean[],
    cursor: { i: number },
    prefetched: Map<RangeRequest, RangeResult>,
    beginRev: number,
  ): TxnResponse {
    const succeeded = path[cursor.i++];
    const responses: ResponseOp[] = [];
    for (const op of succeeded ? rt.success : rt.failure) {
      const curRev = (): number => (w && w.changes.length > 0 ? beginRev + 1 : beginRev);
      if (op.request_range) {
        const r = op.request_range;
        const rr = prefetched.get(r) ?? view.range(r.key, rangeEnd(r.range_end), { limit: storeLimit(r), countOnly: r.count_only });
        responses.push({ response_range: shapeRange(r, { ...rr, rev: curRev() }, revHeader(curRev())) });
      } else if (op.request_put) {
        if (!w) throw new Error('put in a read-only txn');
        responses.push({ response_put: this.put(w, op.request_put) });
      } else if (op.request_delete_range) {
        if (!w) throw new Error('delete in a read-only txn');
        responses.push({ response_delete_range: this.deleteRange(w, op.request_delete_range) });
      } else if (op.request_txn) {
        responses.push({ response_txn: this.execTxn(view, w, op.request_txn, path, cursor, prefetched, beginRev) });
      }
    }
    return { header: revHeader(0), succeeded, responses };
  }

  // ---------------------------------------------------------------- compaction and leases

  private applyCompaction(index: number, c: CompactionRequest, header: (rev: number) => ResponseHeader): ApplyResult {
    const rev = Number(c.revision);
    const done = this.store.compact(rev).done;
    const w = this.store.write();
    this.commit(w, index);
    return { response: { header: header(this.store.rev) }, physicalDone: c.physical ? done : undefined };
  }

  private applyLeaseGrant(index: number, g: LeaseGrantRequest, header: (rev: number) => ResponseHeader): ApplyResult {
    const rec = this.lessor.grant(BigInt(g.ID), Number(g.TTL));
    this.applyNoop(index, undefined);
    return { response: { header: header(this.store.rev), ID: rec.id.toString(), TTL: rec.ttlSeconds, error: '' } };
  }

  /** Revoke deletes every attached key in one write txn: one revision, one DELETE event per key. */
  applyLeaseRevoke(index: number, id: bigint, header: (rev: number) => ResponseHeader): ApplyResult {
    const keys = this.lessor.revoke(id);
    const w = this.store.write();
    for (const k of keys) w.deleteRange(Buffer.from(k, 'latin1'), null);
    this.commit(w, index);
    return { response: { header: header(this.store.rev) } };
  }
}

export function txnHasPut(r: TxnRequest): boolean {
  for (const op of [...r.success, ...r.failure]) {
    if (op.request_put) return true;
    if (op.request_txn && txnHasPut(op.request_txn)) return true;
  }
  return false;
}

function ok(r: ApplyResult): ApplyOutcome {
  return { ok: r };
}

