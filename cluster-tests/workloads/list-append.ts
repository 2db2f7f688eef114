/**
 * Elle list-append: transactions of 1..MAX_MICRO_OPS appends and whole-list reads over several keys.
 * etcd has no append, so a transaction runs as Jepsen's etcd append workload does:
 *  1. read every key it touches in one read-only txn (lists and their mod_revisions);
 *  2. one txn `If(mod_revision(k) == m_k for every key) Then(put the new lists)`.
 * Step 2 commits atomically only if no key changed since step 1, so every read in the transaction
 * equals the state at step 2's commit point: the transaction is one atomic step at that revision.
 * A failed compare changed nothing (`fail`); a timeout in step 2 is `info`. Read-only
 * transactions are step 1 alone. Lists are stored as JSON arrays of unique integers.
 */
import { type Msg, headerRevision, outcomeOf } from '../client';
import type { MicroOp } from '../history';
import { type ClientSlot, type Outcome, type Workload, type WorkloadContext, OP_TIMEOUT_MS, finalReadPrefix, runClientLoops } from './common';
import { KeyPool } from './keys';

export const LIST_PREFIX = '/jepsen/la/';
export const LIST_ACTIVE_KEYS = 6;
/** Transactions touching a key before it is retired (keeps lists and the graph small). */
export const LIST_TXNS_PER_KEY = 120;
export const MAX_MICRO_OPS = 4;
export const P_APPEND = 0.5;

const EQUAL = 0;
const T_MOD = 2;

function parseList(kv: Msg | undefined): number[] {
  if (!kv) return [];
  const v = JSON.parse(Buffer.from(kv.value).toString()) as unknown;
  if (!Array.isArray(v)) throw new Error(`list-append key holds ${String(v)}`);
  return v as number[];
}

export class ListAppendWorkload implements Workload {
  readonly name = 'list-append';
  private readonly keys = new KeyPool(LIST_PREFIX, LIST_ACTIVE_KEYS, LIST_TXNS_PER_KEY);
  private readonly nextElement = new Map<string, number>();

  run(ctx: WorkloadContext): Promise<void> {
    return runClientLoops(ctx, 'list-append', (slot) => this.step(ctx, slot));
  }

  async finalRead(ctx: WorkloadContext): Promise<void> {
    await finalReadPrefix(ctx, LIST_PREFIX, (kvs) => ({ lists: kvs.map((kv) => ({ key: kv.key, value: JSON.parse(kv.value) as number[] })) }));
  }

  private element(key: string): number {
    const e = (this.nextElement.get(key) ?? 0) + 1;
    this.nextElement.set(key, e);
    return e;
  }

  private plan(slot: ClientSlot): MicroOp[] {
    const n = slot.rand.int(1, MAX_MICRO_OPS);
    const out: MicroOp[] = [];
    for (let i = 0; i < n; i++) {
      const key = this.keys.take(slot.rand);
      out.push(slot.rand.chance(P_APPEND) ? { f: 'append', key, value: this.element(key) } : { f: 'r', key, value: null });
    }
    return out;
  }

  private async step(ctx: WorkloadContext, slot: ClientSlot): Promise<Outcome> {
    const process = slot.process;
    const micro = this.plan(slot);
    ctx.rec.op({ f: 'txn', process, type: 'invoke', value: micro });
    const keys = [...new Set(micro.map((m) => m.key))];
    // 1. Read every key touched (linearizable read-only txn; never changes anything).
    const read = await slot.client.txn({ compare: [], success: keys.map((k) => ({ request_range: { key: Buffer.from(k) } })), failure: [] }, OP_TIMEOUT_MS);
    if (read.err) {
      // A read-only step has no effect: even a timeout leaves nothing behind, so it is a definite fail.
      ctx.rec.op({ f: 'txn', process, type: 'fail', value: micro, error: `read step (no effect): ${read.err.details}` });
      return 'fail';
    }
    const lists = new Map<string, number[]>();
    const modRevs = new Map<string, number>();
    keys.forEach((k, i) => {
      const kv = read.ok.responses[i]?.response_range?.kvs?.[0];
      lists.set(k, parseList(kv));
      modRevs.set(k, kv ? Number(kv.mod_revision) : 0);
    });
    // Apply the micro-ops in order to compute the reads and the new lists.
    const done: MicroOp[] = [];
    const appended = new Set<string>();
    for (const m of micro) {
      const list = lists.get(m.key)!;
      if (m.f === 'append') {
        list.push(m.value);
        appended.add(m.key);
        done.push(m);
      } else {
        done.push({ f: 'r', key: m.key, value: [...list] });
      }
    }
    if (appended.size === 0) {
      ctx.rec.op({ f: 'txn', process, type: 'ok', value: done, revision: headerRevision(read.ok) });
      return 'ok';
    }
    // 2. Commit if nothing changed since the read.
    const r = await slot.client.txn(
      {
        compare: keys.map((k) => ({ result: EQUAL, target: T_MOD, key: Buffer.from(k), mod_revision: String(modRevs.get(k)) })),
        success: [...appended].map((k) => ({ request_put: { key: Buffer.from(k), value: Buffer.from(JSON.stringify(lists.get(k))) } })),
        failure: [],
      },
      OP_TIMEOUT_MS,
    );
    if (r.err) {
      const type = outcomeOf(r.err);
      ctx.rec.op({ f: 'txn', process, type, value: micro, error: r.err.details });
      return type;
    }
    if (!r.ok.succeeded) {
      ctx.rec.op({ f: 'txn', process, type: 'fail', value: micro, error: 'compare failed: a key changed since the read' });
      return 'fail';
    }
    ctx.rec.op({ f: 'txn', process, type: 'ok', value: done, revision: headerRevision(r.ok) });
    return 'ok';
  }
}
