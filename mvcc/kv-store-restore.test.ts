import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { ErrCompacted } from './errors';
import { KvStore } from './kv-store';
import { encodeKeyValue } from './kv-codec';
import { encodeRevision } from './revision';
import { b, del, kvSummary, pairs, put, removeTempDirs, tempDir } from './test-helpers';


const open: KvStore[] = [];
async function openAt(path: string, mode?: 'checkpoint' | 'scan'): Promise<KvStore> {
  const s = await KvStore.open(path, mode === 'scan' ? { indexCheckpoint: false } : {});
  open.push(s);
  if (mode !== undefined) expect(s.indexRestore).toEqual({ source: mode });
  return s;
}
afterEach(async () => {
  for (const s of open.splice(0)) await s.close().catch(() => undefined);
});
afterAll(removeTempDirs);

// Every restart test runs twice: reopening from the index checkpoint a clean close writes, and
// (with checkpoints off) from a scan of the key bucket; openAt checks which one happened.
describe.each(['checkpoint', 'scan'] as const)('index from %s', (mode) => {
  const opts = mode === 'checkpoint' ? {} : { indexCheckpoint: false };
  describe('restart', () => {
    it('restores rev, compactRev, consistentIndex, current values and historical revisions exactly', async () => {
      const path = tempDir();
      const s = await KvStore.open(path, opts);
      put(s, 'a', '1', 5n); // 2
      put(s, 'b', '1'); // 3
      put(s, 'a', '2', 5n); // 4
      del(s, 'b'); // 5
      put(s, 'b', '2'); // 6
      await s.compact(3).done;
      const w = s.write();
      w.end({ consistentIndex: 42 });
      const before = {
        rev: s.rev,
        compactRev: s.compactRev,
        ci: s.consistentIndex,
        current: s.rangeCurrent(b('\x00'), b('\x00')).kvs.map(kvSummary),
        at4: (await s.range(b('\x00'), b('\x00'), { rev: 4 })).kvs.map(kvSummary),
        hash: await s.hashKV(),
      };
      await s.close();

      const r = await openAt(path, mode);
      expect(r.rev).toBe(before.rev);
      expect(r.compactRev).toBe(3);
      expect(r.consistentIndex).toBe(42);
      expect(r.rangeCurrent(b('\x00'), b('\x00')).kvs.map(kvSummary)).toEqual(before.current);
      expect((await r.range(b('\x00'), b('\x00'), { rev: 4 })).kvs.map(kvSummary)).toEqual(before.at4);
      expect(await r.hashKV()).toEqual(before.hash);
      await expect(r.range(b('a'), null, { rev: 2 })).rejects.toBeInstanceOf(ErrCompacted);
      // The revision sequence continues where it left off.
      expect(put(r, 'c', '1')).toBe(7);
      expect(r.rangeCurrent(b('a'), null).kvs[0]).toMatchObject({ createRevision: 2, version: 2, lease: 5n });
    });

    it('a store whose latest revisions are all deletes comes back at the right revision', async () => {
      const path = tempDir();
      const s = await KvStore.open(path, opts);
      put(s, 'a', '1'); // 2
      put(s, 'b', '1'); // 3
      del(s, 'a'); // 4
      del(s, 'b'); // 5
      await s.close();
      const r = await openAt(path, mode);
      expect(r.rev).toBe(5);
      expect(r.rangeCurrent(b('\x00'), b('\x00')).count).toBe(0);
      expect(pairs((await r.range(b('\x00'), b('\x00'), { rev: 3 })).kvs)).toEqual([['a', '1'], ['b', '1']]);
      put(r, 'a', 'again');
      expect(r.rangeCurrent(b('a'), null).kvs[0]).toMatchObject({ createRevision: 6, version: 1 });
    });

    it('a store compacted past its last delete comes back at the compact revision', async () => {
      const path = tempDir();
      const s = await KvStore.open(path, opts);
      put(s, 'a', '1');
      del(s, 'a'); // 3
      await s.compact(3).done;
      await s.close();
      const r = await openAt(path, mode);
      expect([r.rev, r.compactRev]).toEqual([3, 3]);
      expect(r.indexedKeyCount).toBe(0);
    });

    it('writes survive a restart without an explicit forceCommit (close flushes)', async () => {
      const path = tempDir();
      const s = await KvStore.open(path, opts);
      for (let i = 0; i < 50; i++) put(s, `k${i}`, `${i}`);
      await s.close();
      const r = await openAt(path, mode);
      expect(r.rangeCurrent(b('k'), b('l')).count).toBe(50);
    });

    it('a write txn with no changes still persists consistentIndex', async () => {
      const path = tempDir();
      const s = await KvStore.open(path, opts);
      put(s, 'a', '1');
      s.write().end({ consistentIndex: 9 });
      await s.close();
      const r = await openAt(path, mode);
      expect([r.rev, r.consistentIndex]).toEqual([2, 9]);
    });
  });

  describe('values live in the backend, not in the index', () => {
    it('after a restart, ranges, txn reads and leases come from the key bucket', async () => {
      const path = tempDir();
      const s = await KvStore.open(path, opts);
      for (let i = 0; i < 300; i++) put(s, `k${String(i).padStart(3, '0')}`, `v${i}`, i % 3 === 0 ? BigInt(100 + i) : 0n);
      put(s, 'k005', 'overwritten'); // 302
      del(s, 'k010'); // 303
      await s.close();

      const r = await openAt(path, mode);
      expect(r.rev).toBe(303);
      const all = await r.range(b('k'), b('l'));
      expect(all.count).toBe(299);
      expect(pairs(all.kvs.slice(4, 6))).toEqual([['k004', 'v4'], ['k005', 'overwritten']]);
      expect(r.rangeCurrent(b('k005'), null).kvs[0]).toMatchObject({ createRevision: 7, modRevision: 302, version: 2 });
      // A put on a live key takes create_revision, version and the old lease from the rebuilt index.
      const w = r.write();
      expect(w.put(b('k297'), b('new'))).toBe(397n);
      w.end({ consistentIndex: 1000 });
      expect(kvSummary(r.rangeCurrent(b('k297'), null).kvs[0])).toEqual({ key: 'k297', value: 'new', create: 299, mod: 304, version: 2, lease: 0n });
      const leases: Array<[string, bigint]> = [];
      r.forEachLiveLease((k, lease) => leases.push([k, lease]));
      // k297's new put has no lease; every other key i % 3 == 0 keeps its own.
      expect(leases.length).toBe(99);
      expect(leases.slice(0, 2)).toEqual([['k000', 100n], ['k003', 103n]]);
    });

    it('with no value cache, a range returns what the key bucket holds at the picked revision', async () => {
      const s = await KvStore.open(tempDir(), { ...opts, valueCacheBytes: 0 });
      open.push(s);
      put(s, 'a', 'original'); // 2
      await s.forceCommit();
      // Rewrite the stored record of revision 2 behind the store's back: if values were cached in
      // memory, the reads would still see "original".
      s.bucket('key').put(encodeRevision(2, 0), encodeKeyValue(b('a'), b('on-disk'), 2, 2, 1, 0n).record);
      expect(pairs(s.rangeCurrent(b('a'), null).kvs)).toEqual([['a', 'on-disk']]);
      expect(pairs((await s.range(b('a'), null)).kvs)).toEqual([['a', 'on-disk']]);
    });
  });
});

describe('hashKV', () => {
  async function history(path: string, divergent = false): Promise<KvStore> {
    const s = await KvStore.open(path);
    open.push(s);
    for (let i = 0; i < 20; i++) put(s, `k${i % 7}`, `v${i}`);
    del(s, 'k3');
    if (divergent) put(s, 'k1', 'other');
    else put(s, 'k1', 'same');
    await s.compact(10).done;
    put(s, 'k9', 'tail');
    return s;
  }

  it('is equal on two stores that applied the same writes and compactions, also after a restart', async () => {
    const p1 = tempDir();
    const s1 = await history(p1);
    const s2 = await history(tempDir());
    const h1 = await s1.hashKV(0);
    expect(h1).toEqual(await s2.hashKV(0));
    expect(h1.hashRev).toBe(s1.rev);
    expect(h1.compactRev).toBe(10);
    expect(await s1.hashKV(15)).toEqual(await s2.hashKV(15));
    expect((await s1.hashKV(15)).hash).not.toBe(h1.hash);
    expect(await s1.hash()).toBe(await s2.hash());
    await s1.close();
    const r1 = await openAt(p1);
    expect(await r1.hashKV(0)).toEqual(h1);
  });

  it('differs after divergent history', async () => {
    const s1 = await history(tempDir());
    const s2 = await history(tempDir(), true);
    expect((await s1.hashKV(0)).hash).not.toBe((await s2.hashKV(0)).hash);
    expect((await s1.hashKV(15)).hash).toBe((await s2.hashKV(15)).hash);
  });

  it('rejects a compacted or future revision', async () => {
    const s = await history(tempDir());
    await expect(s.hashKV(9)).rejects.toBeInstanceOf(ErrCompacted);
    await expect(s.hashKV(s.rev + 1)).rejects.toThrow('future revision');
  });
});
