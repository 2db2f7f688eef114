import * as fs from 'node:fs';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { mulberry32 } from '../cluster-tests/prng';
import { checkpointPath } from './index-checkpoint';
import { KvStore } from './kv-store';
import { b, del, kvSummary, put, removeTempDirs, tempDir } from './test-helpers';

const open: KvStore[] = [];
async function openAt(path: string, opts: { indexCheckpoint?: boolean } = {}): Promise<KvStore> {
  const s = await KvStore.open(path, opts);
  open.push(s);
  return s;
}
afterEach(async () => {
  for (const s of open.splice(0)) await s.close().catch(() => undefined);
});
afterAll(removeTempDirs);

/** Puts (some with leases, some several in one txn), deletes, range deletes and compactions. */
async function randomHistory(s: KvStore, seed: number, ops: number): Promise<void> {
  // Seeded, so a failing history replays.
  const rnd = mulberry32(seed);
  const key = (): string => `k${String(Math.floor(rnd() * 60)).padStart(2, '0')}`;
  for (let i = 0; i < ops; i++) {
    const r = rnd();
    if (r < 0.55) put(s, key(), `v${i}`, rnd() < 0.3 ? BigInt(1 + Math.floor(rnd() * 5)) : 0n);
    else if (r < 0.7) del(s, key());
    else if (r < 0.75) del(s, key(), key());
    else if (r < 0.95) {
      const w = s.write();
      for (let j = 0; j < 3; j++) w.put(b(key()), b(`t${i}.${j}`), 0n);
      w.deleteRange(b(key()), null);
      w.end({ consistentIndex: 100_000 + i });
    } else {
      const at = s.rev - Math.floor(rnd() * 20);
      if (at > Math.max(1, s.compactRev)) await s.compact(at).done;
    }
  }
}

/** Everything a reader can see: every revision's full range, counts, and the live leases. */
async function observable(s: KvStore): Promise<unknown> {
  const views: unknown[] = [];
  for (let rev = Math.max(1, s.compactRev); rev <= s.rev; rev++) {
    const r = await s.range(b('\x00'), b('\x00'), { rev });
    views.push([rev, r.count, r.kvs.map(kvSummary)]);
  }
  const leases: Array<[string, bigint]> = [];
  s.forEachLiveLease((k, lease) => leases.push([k, lease]));
  const limited = s.rangeCurrent(b('k1'), b('k5'), { limit: 3 });
  return {
    rev: s.rev, compactRev: s.compactRev, consistentIndex: s.consistentIndex, keys: s.indexedKeyCount,
    views, leases, limitedCount: limited.count, hash: await s.hashKV(0),
  };
}

describe('index checkpoint', () => {
  it('a store reopened from its checkpoint is indistinguishable from one rebuilt by a scan', async () => {
    for (const seed of [1, 2, 3]) {
      const path = tempDir();
      const s = await openAt(path);
      await randomHistory(s, seed, 400);
      await s.close();
      expect(fs.existsSync(checkpointPath(path))).toBe(true);
      // The same backend twice: one reopened from the checkpoint, its copy by scanning.
      const copy = tempDir();
      fs.cpSync(path, copy, { recursive: true });
      const fromCheckpoint = await openAt(path);
      expect(fromCheckpoint.indexRestore).toEqual({ source: 'checkpoint' });
      const scanned = await openAt(copy, { indexCheckpoint: false });
      expect(scanned.indexRestore).toEqual({ source: 'scan' });
      expect(await observable(fromCheckpoint)).toEqual(await observable(scanned));
      // The next write to every key takes create_revision, version and the lease from the index.
      for (const store of [fromCheckpoint, scanned]) {
        const w = store.write();
        for (let k = 0; k < 60; k++) w.put(b(`k${String(k).padStart(2, '0')}`), b('probe'), k % 2 === 0 ? 0n : 9n);
        w.end({ consistentIndex: 1_000_000 });
      }
      expect(await observable(fromCheckpoint)).toEqual(await observable(scanned));
    }
  });

  it('is removed on open, so a crash after later writes rebuilds by scanning and loses nothing', async () => {
    const path = tempDir();
    const s = await openAt(path);
    put(s, 'a', '1');
    await s.close();
    const r = await openAt(path);
    expect(r.indexRestore.source).toBe('checkpoint');
    expect(fs.existsSync(checkpointPath(path))).toBe(false);
    put(r, 'b', '2');
    del(r, 'a');
    await r.forceCommit();
    // A crash: the backend goes away without the store's close, so no checkpoint is written.
    await r.backend.close();
    const after = await openAt(path);
    expect(after.indexRestore).toEqual({ source: 'scan' });
    expect(after.rev).toBe(4);
    expect(after.rangeCurrent(b('\x00'), b('\x00')).kvs.map(kvSummary)).toEqual([
      { key: 'b', value: '2', create: 3, mod: 3, version: 1, lease: 0n },
    ]);
  });

  it('a stale checkpoint put back after later writes is refused, and the scan sees those writes', async () => {
    const path = tempDir();
    const s = await openAt(path);
    put(s, 'a', '1');
    await s.close();
    const stale = fs.readFileSync(checkpointPath(path));
    const r = await openAt(path, { indexCheckpoint: false });
    put(r, 'a', '2');
    await r.close();
    fs.writeFileSync(checkpointPath(path), stale);
    const after = await openAt(path);
    expect(after.indexRestore.source).toBe('scan');
    expect(after.indexRestore.checkpointUnusable).toMatch(/^fingerprint is MANIFEST-\d+:\d+, the checkpoint has MANIFEST-/);
    expect(kvSummary(after.rangeCurrent(b('a'), null).kvs[0])).toMatchObject({ value: '2', version: 2 });
  });

  it('a checkpoint beside another backend with the same history is refused', async () => {
    const p1 = tempDir();
    const p2 = tempDir();
    for (const p of [p1, p2]) {
      const s = await openAt(p);
      put(s, 'a', '1');
      // The same consistent index, revisions and compaction marks in both.
      s.write().end({ consistentIndex: 500 });
      await s.close();
    }
    // p2's store is closed twice as often, so its manifest differs.
    await (await openAt(p2, { indexCheckpoint: false })).close();
    fs.copyFileSync(checkpointPath(p1), checkpointPath(p2));
    const r = await openAt(p2);
    expect(r.indexRestore.source).toBe('scan');
    expect(r.indexRestore.checkpointUnusable).toMatch(/^fingerprint/);
  });

  it('a damaged or truncated checkpoint is refused and the scan rebuilds the index', async () => {
    const path = tempDir();
    const s = await openAt(path);
    for (let i = 0; i < 100; i++) put(s, `k${i}`, `${i}`);
    await s.close();
    const good = fs.readFileSync(checkpointPath(path));
    const cases: Array<[Buffer, RegExp]> = [
      [Buffer.from(good).fill(0x55, 200, 203), /^crc mismatch$/],
      [good.subarray(0, good.length - 10), /^crc mismatch$/],
      [Buffer.from('not a checkpoint at all'), /^not an index checkpoint$/],
    ];
    for (const [bytes, reason] of cases) {
      fs.writeFileSync(checkpointPath(path), bytes);
      const r = await openAt(path, {});
      expect(r.indexRestore.source).toBe('scan');
      expect(r.indexRestore.checkpointUnusable).toMatch(reason);
      expect(r.rangeCurrent(b('k'), b('l')).count).toBe(100);
      // Each close writes a good one again; this test's next case overwrites it.
      await r.close();
    }
  });

  it('with checkpoints off, one found on open is still removed and none is written', async () => {
    const path = tempDir();
    const s = await openAt(path);
    put(s, 'a', '1');
    await s.close();
    const r = await openAt(path, { indexCheckpoint: false });
    expect(r.indexRestore).toEqual({ source: 'scan' });
    expect(fs.existsSync(checkpointPath(path))).toBe(false);
    await r.close();
    expect(fs.existsSync(checkpointPath(path))).toBe(false);
  });

  it('an interrupted compaction resumes after a checkpoint restore as after a scan', async () => {
    const seen: unknown[] = [];
    for (const indexCheckpoint of [true, false]) {
      const path = tempDir();
      const s = await KvStore.open(path, { compactionBatchLimit: 1 });
      for (let i = 0; i < 50; i++) put(s, `k${i % 5}`, `${i}`);
      const compaction = s.compact(40).done;
      // Closing stops the compaction at its next chunk; it resumes on open.
      await s.close();
      await expect(compaction).rejects.toThrow();
      const r = await openAt(path, { indexCheckpoint });
      expect(r.indexRestore.source).toBe(indexCheckpoint ? 'checkpoint' : 'scan');
      await r.compactionIdle();
      expect(r.compactRev).toBe(40);
      // The helpers' consistent indexes count on across stores; everything else must match.
      seen.push({ ...(await observable(r)) as object, consistentIndex: undefined });
    }
    expect(seen[0]).toEqual(seen[1]);
  });
});
