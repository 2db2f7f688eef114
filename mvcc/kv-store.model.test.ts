/**
 * Randomised test: a KvStore (restarted now and then, sometimes mid-compaction) and a second,
 * never-restarted KvStore against a plain in-memory model of etcd's revision semantics.
 * Reproduce a failure with the printed seed: MVCC_MODEL_SEED=<seed> npx vitest run mvcc/kv-store.model
 */
import { afterAll, describe, expect, it } from 'vitest';
import { ErrCompacted, ErrFutureRev } from './errors';
import type { KeyValue } from './kv';
import { KvStore } from './kv-store';
import { removeTempDirs, tempDir } from './test-helpers';
import { Rng } from '../raft/sim/rng';

afterAll(removeTempDirs);

interface ModelKv {
  key: string;
  value: string;
  create: number;
  mod: number;
  version: number;
  lease: bigint;
}
type State = Map<string, ModelKv>;
interface ModelEvent {
  type: 'PUT' | 'DELETE';
  key: string;
  mod: number;
}

const KEYS = ['a', 'ab', 'b', 'c', 'd\x00', 'e', 'f', '\x7f', '\x80', '\xff', '\xffa'];
const ALL = '\x00';

class Model {
  rev = 1;
  compactRev = -1;
  readonly states = new Map<number, State>([[1, new Map()]]);
  readonly events: ModelEvent[] = [];

  current(): State {
    return this.states.get(this.rev) as State;
  }

  /** The model's [key, end) selection, as etcd interprets end. */
  static select(state: State, key: string, end: string | undefined): ModelKv[] {
    const out = [...state.values()].filter((kv) =>
      end === undefined ? kv.key === key : end === ALL ? kv.key >= key : kv.key >= key && kv.key < end);
    return out.sort((x, y) => (x.key < y.key ? -1 : x.key > y.key ? 1 : 0));
  }
}

function toModel(kv: KeyValue): ModelKv {
  return {
    key: kv.key.toString('latin1'),
    value: kv.value.toString('latin1'),
    create: kv.createRevision,
    mod: kv.modRevision,
    version: kv.version,
    lease: kv.lease,
  };
}

const buf = (s: string): Buffer => Buffer.from(s, 'latin1');
const endBuf = (e: string | undefined): Buffer | null => (e === undefined ? null : buf(e));

async function runSeed(seed: number, ops: number): Promise<void> {
  const rand = new Rng(seed);
  const r = (): number => rand.next();
  const pick = <T>(xs: readonly T[]): T => rand.pick(xs);
  const randRange = (): [string, string | undefined] => {
    const x = r();
    if (x < 0.4) return [pick(KEYS), undefined];
    if (x < 0.55) return [pick(KEYS), ALL];
    if (x < 0.6) return [ALL, ALL];
    const a = pick(KEYS);
    const b2 = pick(KEYS);
    return a <= b2 ? [a, b2] : [b2, a];
  };
  const path = tempDir();
  // A value cache of a few entries: reads take both paths (cache, LevelDB); the twin has the default.
  const opts = { compactionBatchLimit: 3, batchIntervalMs: 5, batchLimit: 64, valueCacheBytes: 600 };
  let store = await KvStore.open(path, opts);
  const twin = await KvStore.open(tempDir()); // same history, never restarted, default limits
  const model = new Model();
  let ci = 0;
  let restarts = 0;

  try {
    for (let step = 0; step < ops; step++) {
      const x = r();
      if (x < 0.45) {
        // A write txn of 1..4 ops, applied identically to store, twin and model.
        const state: State = new Map(model.current());
        const main = model.rev + 1;
        const txns = [store.write(), twin.write()];
        const evs: ModelEvent[] = [];
        const n = 1 + Math.floor(r() * 4);
        for (let i = 0; i < n; i++) {
          const y = r();
          if (y < 0.55) {
            const key = pick(KEYS);
            const value = `v${step}.${i}`;
            const lease = r() < 0.2 ? BigInt(1 + Math.floor(r() * 3)) : 0n;
            const prev = state.get(key);
            const kv: ModelKv = { key, value, create: prev ? prev.create : main, mod: main, version: prev ? prev.version + 1 : 1, lease };
            for (const t of txns) {
              // put returns the lease the key had (undefined when it was not live).
              expect(t.put(buf(key), buf(value), lease)).toEqual(prev?.lease);
            }
            state.set(key, kv);
            evs.push({ type: 'PUT', key, mod: main });
          } else if (y < 0.8) {
            const [key, end] = randRange();
            const victims = Model.select(state, key, end);
            const want = victims.map((v) => ({ key: v.key, lease: v.lease }));
            for (const t of txns) expect(t.deleteRange(buf(key), endBuf(end)).map((d) => ({ key: d.key.toString('latin1'), lease: d.lease }))).toEqual(want);
            for (const v of victims) {
              state.delete(v.key);
              evs.push({ type: 'DELETE', key: v.key, mod: main });
            }
          } else {
            const [key, end] = randRange();
            const limit = r() < 0.5 ? 0 : 1 + Math.floor(r() * 3);
            const countOnly = r() < 0.15;
            const want = Model.select(state, key, end);
            const res = txns[0].range(buf(key), endBuf(end), { limit, countOnly });
            expect(res.count).toBe(want.length);
            expect(res.kvs.map(toModel)).toEqual(countOnly ? [] : limit > 0 ? want.slice(0, limit) : want);
            expect(res.rev).toBe(evs.length > 0 ? main : model.rev);
          }
        }
        ci++;
        for (const t of txns) t.end({ consistentIndex: ci });
        if (evs.length > 0) {
          model.rev = main;
          model.states.set(main, state);
          model.events.push(...evs);
        }
        expect(store.rev).toBe(model.rev);
        expect(twin.rev).toBe(model.rev);
      } else if (x < 0.65) {
        // Read at the current revision: synchronous, or async (rev 0 or the current rev given).
        // With a limit or countOnly the count comes from the live-key set, not a walk.
        const [key, end] = randRange();
        const limit = r() < 0.5 ? 0 : 1 + Math.floor(r() * 3);
        const countOnly = r() < 0.15;
        const want = Model.select(model.current(), key, end);
        const how = r();
        const res = how < 0.4
          ? store.rangeCurrent(buf(key), endBuf(end), { limit, countOnly })
          : await store.range(buf(key), endBuf(end), { limit, countOnly, rev: how < 0.7 ? 0 : model.rev });
        expect(res.count).toBe(want.length);
        expect(res.kvs.map(toModel)).toEqual(countOnly ? [] : limit > 0 ? want.slice(0, limit) : want);
        expect(res.rev).toBe(model.rev);
      } else if (x < 0.82) {
        // Historical read, sometimes out of bounds.
        const rev = Math.floor(r() * (model.rev + 2));
        const [key, end] = randRange();
        const limit = r() < 0.5 ? 0 : 1 + Math.floor(r() * 3);
        const countOnly = r() < 0.15;
        const p = store.range(buf(key), endBuf(end), { rev, limit, countOnly });
        if (rev > model.rev) {
          await expect(p).rejects.toBeInstanceOf(ErrFutureRev);
        } else if (rev > 0 && rev < model.compactRev) {
          await expect(p).rejects.toBeInstanceOf(ErrCompacted);
        } else {
          const want = Model.select(model.states.get(rev > 0 ? rev : model.rev) as State, key, end);
          const res = await p;
          // count is the number of keys live at `rev` in the whole range, whatever the limit.
          expect(res.kvs.map(toModel)).toEqual(countOnly ? [] : limit > 0 ? want.slice(0, limit) : want);
          expect(res.count).toBe(want.length);
        }
      } else if (x < 0.88) {
        // readEvents strictly above the compact revision must equal the model's events.
        const from = Math.max(model.compactRev + 1, 1 + Math.floor(r() * model.rev));
        const to = from + Math.floor(r() * 20);
        const maxRevs = 1 + Math.floor(r() * 10);
        const got = (await store.readEvents(from, to, maxRevs)).map((e) => ({ type: e.type, key: e.kv.key.toString('latin1'), mod: e.kv.modRevision }));
        const inWindow = model.events.filter((e) => e.mod >= from && e.mod <= to);
        const mains = [...new Set(inWindow.map((e) => e.mod))].slice(0, maxRevs);
        expect(got).toEqual(inWindow.filter((e) => mains.includes(e.mod)));
      } else if (x < 0.93) {
        // Compact somewhere in (compactRev, rev]; await physical deletion only sometimes.
        if (model.rev <= model.compactRev) continue;
        const lo = Math.max(model.compactRev + 1, 1);
        const rev = lo + Math.floor(r() * (model.rev - lo + 1));
        ci++;
        const d1 = store.compact(rev, { consistentIndex: ci }).done;
        const d2 = twin.compact(rev, { consistentIndex: ci }).done;
        model.compactRev = rev;
        d1.catch(() => undefined);
        if (r() < 0.5) await Promise.all([d1, d2]);
      } else if (x < 0.96) {
        // Restart the store (possibly mid-compaction) and check it came back exactly.
        await store.close();
        store = await KvStore.open(path, opts);
        restarts++;
        expect([store.rev, store.compactRev, store.consistentIndex]).toEqual([model.rev, model.compactRev, ci]);
      } else {
        const rev = Math.max(model.compactRev, 1) + Math.floor(r() * (model.rev - Math.max(model.compactRev, 1) + 1));
        const [h1, h2] = await Promise.all([store.hashKV(rev), twin.hashKV(rev)]);
        expect(h1).toEqual(h2);
      }
    }
    const [h1, h2] = await Promise.all([store.hashKV(0), twin.hashKV(0)]);
    expect(h1).toEqual(h2);
    expect(restarts).toBeGreaterThan(0);
  } catch (e) {
    throw new Error(`model test failed with seed ${seed}: ${e instanceof Error ? e.stack : String(e)}`);
  } finally {
    await store.close().catch(() => undefined);
    await twin.close().catch(() => undefined);
  }
}

describe('KvStore against a model of etcd semantics', () => {
  const fixed = process.env.MVCC_MODEL_SEED;
  const seeds = fixed !== undefined ? [Number(fixed)] : [1, 2, 3, Math.floor(Math.random() * 2 ** 31)];
  for (const seed of seeds) {
    it(`matches the model over 1500 random ops with restarts and compactions (seed ${seed})`, async () => {
      await runSeed(seed, 1500);
    });
  }
});
