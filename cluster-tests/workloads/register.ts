/**
 * Registers: linearizable read, write (put or delete) and compare-and-set on many independent keys.
 * A compare-and-set is one etcd txn, `If(value == v | mod_revision == m | absent) Then(put | delete)
 * Else(get)`, as Jepsen's etcd register workload and Kubernetes do. Values are unique per run, so a
 * value names its write. Checked by linearizability, revision-order and durability.
 */
import { type Msg, headerRevision, outcomeOf } from '../client';
import type { CasExpectation, KeyValueString } from '../history';
import { type ClientSlot, type Outcome, type Workload, type WorkloadContext, OP_TIMEOUT_MS, finalReadPrefix, runClientLoops } from './common';
import { KeyPool, UniqueValues } from './keys';

export const REGISTER_PREFIX = '/jepsen/reg/';
/** Keys written concurrently at any time. */
export const REGISTER_ACTIVE_KEYS = 8;
/** Operations per key before it is retired. */
export const REGISTER_OPS_PER_KEY = 150;
/** Operation mix (the rest are compare-and-set). */
export const P_READ = 0.45;
export const P_WRITE = 0.3;
/** Share of writes that are deletes. */
export const P_DELETE = 0.1;

// etcd CompareResult / CompareTarget enum values (rpc.proto).
const EQUAL = 0;
const T_VERSION = 0;
const T_MOD = 2;
const T_VALUE = 3;

export function compareFor(key: Buffer, exp: CasExpectation): Msg {
  if ('modRevision' in exp) return { result: EQUAL, target: T_MOD, key, mod_revision: String(exp.modRevision) };
  if (exp.value === null) return { result: EQUAL, target: T_VERSION, key, version: '0' }; // absent
  return { result: EQUAL, target: T_VALUE, key, value: Buffer.from(exp.value) };
}

export function kvOf(kvs: Msg[] | undefined): { value: KeyValueString; modRevision: number } {
  const kv = kvs?.[0];
  return kv ? { value: Buffer.from(kv.value).toString(), modRevision: Number(kv.mod_revision) } : { value: null, modRevision: 0 };
}

export class RegisterWorkload implements Workload {
  readonly name = 'register';
  private readonly keys = new KeyPool(REGISTER_PREFIX, REGISTER_ACTIVE_KEYS, REGISTER_OPS_PER_KEY);
  private readonly values = new UniqueValues();
  /** What clients last saw of each key, to pick compare-and-set expectations that may hold. */
  private readonly seen = new Map<string, { value: KeyValueString; modRevision: number }>();

  run(ctx: WorkloadContext): Promise<void> {
    return runClientLoops(ctx, 'register', (slot) => this.step(ctx, slot));
  }

  async finalRead(ctx: WorkloadContext): Promise<void> {
    await finalReadPrefix(ctx, REGISTER_PREFIX, (kvs) => ({ kvs }));
  }

  private step(ctx: WorkloadContext, slot: ClientSlot): Promise<Outcome> {
    const key = this.keys.take(slot.rand);
    const x = slot.rand.float();
    if (x < P_READ) return this.read(ctx, slot, key);
    if (x < P_READ + P_WRITE) return this.write(ctx, slot, key, slot.rand.chance(P_DELETE) ? null : this.values.next());
    return this.cas(ctx, slot, key);
  }

  private async read(ctx: WorkloadContext, slot: ClientSlot, key: string): Promise<Outcome> {
    const process = slot.process;
    ctx.rec.op({ f: 'read', process, type: 'invoke', key });
    const r = await slot.client.range({ key: Buffer.from(key) }, OP_TIMEOUT_MS);
    if (r.err) {
      const type = outcomeOf(r.err);
      ctx.rec.op({ f: 'read', process, type, key, error: r.err.details });
      return type;
    }
    const kv = kvOf(r.ok.kvs);
    this.seen.set(key, kv);
    ctx.rec.op({ f: 'read', process, type: 'ok', key, value: kv.value, modRevision: kv.modRevision, revision: headerRevision(r.ok) });
    return 'ok';
  }

  private async write(ctx: WorkloadContext, slot: ClientSlot, key: string, value: KeyValueString): Promise<Outcome> {
    const process = slot.process;
    ctx.rec.op({ f: 'write', process, type: 'invoke', key, value });
    const r = value === null ? await slot.client.deleteRange({ key: Buffer.from(key) }, OP_TIMEOUT_MS) : await slot.client.put({ key: Buffer.from(key), value: Buffer.from(value) }, OP_TIMEOUT_MS);
    if (r.err) {
      const type = outcomeOf(r.err);
      ctx.rec.op({ f: 'write', process, type, key, value, error: r.err.details });
      return type;
    }
    const revision = headerRevision(r.ok);
    this.seen.set(key, { value, modRevision: value === null ? 0 : revision });
    ctx.rec.op({ f: 'write', process, type: 'ok', key, value, revision });
    return 'ok';
  }

  private expectation(slot: ClientSlot, key: string): CasExpectation {
    const s = this.seen.get(key) ?? { value: null, modRevision: 0 };
    const byRevision = slot.rand.chance(0.5);
    if (byRevision) return { modRevision: s.modRevision };
    return { value: s.value };
  }

  private async cas(ctx: WorkloadContext, slot: ClientSlot, key: string): Promise<Outcome> {
    const process = slot.process;
    const expected = this.expectation(slot, key);
    const value = this.values.next();
    const k = Buffer.from(key);
    ctx.rec.op({ f: 'cas', process, type: 'invoke', key, expected, value });
    const r = await slot.client.txn(
      { compare: [compareFor(k, expected)], success: [{ request_put: { key: k, value: Buffer.from(value) } }], failure: [{ request_range: { key: k } }] },
      OP_TIMEOUT_MS,
    );
    if (r.err) {
      const type = outcomeOf(r.err);
      ctx.rec.op({ f: 'cas', process, type, key, expected, value, error: r.err.details });
      return type;
    }
    const revision = headerRevision(r.ok);
    if (r.ok.succeeded) {
      this.seen.set(key, { value, modRevision: revision });
      ctx.rec.op({ f: 'cas', process, type: 'ok', key, expected, value, revision });
      return 'ok';
    }
    const observed = kvOf(r.ok.responses?.[0]?.response_range?.kvs);
    this.seen.set(key, observed);
    ctx.rec.op({ f: 'cas', process, type: 'fail', key, expected, value, revision, observed, error: 'compare failed' });
    return 'fail';
  }
}
