import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { Backend } from './backend';
import { ErrCompacted, ErrFutureRev } from './errors';
import { KvStore } from './kv-store';
import { b, del, pairs, put, removeTempDirs, tempDir } from './test-helpers';

const open: KvStore[] = [];
async function fresh(path = tempDir(), opts = {}): Promise<KvStore> {
  const s = await KvStore.open(path, opts);
  open.push(s);
  return s;
}
afterEach(async () => {
  for (const s of open.splice(0)) await s.close().catch(() => undefined);
});
afterAll(removeTempDirs);

/** Revision keys physically present in the key bucket (main_sub[t]). */
async function storedRevisions(s: KvStore): Promise<string[]> {
  const out: string[] = [];
  for await (const [k] of s.backend.bucket('key').iterate()) {
    out.push(`${k.readUInt32BE(4)}_${k.readUInt32BE(13)}${k.length === 18 ? 't' : ''}`);
  }
  return out;
}

describe('compact', () => {
  it('rejects a revision at or below the compact revision and a future revision', async () => {
    const s = await fresh();
    put(s, 'a', '1');
    put(s, 'a', '2');
    expect(() => s.compact(4)).toThrow(ErrFutureRev);
    await s.compact(2).done;
    expect(() => s.compact(2)).toThrow(ErrCompacted);
    expect(() => s.compact(1)).toThrow(ErrCompacted);
    expect(s.compactRev).toBe(2);
    await s.compact(3).done;
    expect(s.compactRev).toBe(3);
  });

  it('keeps the newest revision <= rev of each key and drops keys whose newest revision is a tombstone', async () => {
    const s = await fresh();
    put(s, 'a', '1'); // 2
    put(s, 'a', '2'); // 3
    put(s, 'b', '1'); // 4
    del(s, 'b'); // 5  tombstone <= compact rev: b disappears entirely
    put(s, 'c', '1'); // 6
    del(s, 'c'); // 7  tombstone > compact rev: kept with c@6
    put(s, 'a', '3'); // 8
    await s.compact(6).done;
    expect(await storedRevisions(s)).toEqual(['3_0', '6_0', '7_0t', '8_0']);
    expect(s.indexedKeyCount).toBe(2); // a, c
    expect(pairs((await s.range(b('\x00'), b('\x00'), { rev: 6 })).kvs)).toEqual([['a', '2'], ['c', '1']]);
    expect(pairs((await s.range(b('\x00'), b('\x00'), { rev: 7 })).kvs)).toEqual([['a', '2']]);
    expect(pairs(s.rangeCurrent(b('\x00'), b('\x00')).kvs)).toEqual([['a', '3']]);
    // create_revision and version survive compaction of their history.
    expect(s.rangeCurrent(b('a'), null).kvs[0]).toMatchObject({ createRevision: 2, version: 3 });
  });

  it('compacting at the current revision when the latest change is a delete empties the key bucket', async () => {
    const s = await fresh();
    put(s, 'a', '1');
    del(s, 'a');
    await s.compact(3).done;
    expect(await storedRevisions(s)).toEqual([]);
    expect(s.rev).toBe(3);
    put(s, 'a', '2');
    expect(s.rangeCurrent(b('a'), null).kvs[0]).toMatchObject({ createRevision: 4, modRevision: 4, version: 1 });
  });

  it('does not block concurrent writes and reads while deleting in chunks', async () => {
    const s = await fresh(tempDir(), { compactionBatchLimit: 50 });
    const KEYS = 600;
    for (let round = 0; round < 4; round++) {
      const w = s.write();
      for (let i = 0; i < KEYS; i++) w.put(b(`k${String(i).padStart(4, '0')}`), b(`r${round}`));
      w.end({ consistentIndex: round + 1 });
    }
    // revs 2..5; compact at 4 keeps round 2 (rev 4) for history reads at >= 4.
    const { done } = s.compact(4);
    let settled = false;
    void done.then(() => {
      settled = true;
    });
    let writesDuringCompaction = 0;
    let readsDuringCompaction = 0;
    while (!settled) {
      put(s, `w${writesDuringCompaction}`, 'x');
      writesDuringCompaction++;
      expect(s.rangeCurrent(b('k0000'), null).kvs[0].value.toString()).toBe('r3');
      const hist = await s.range(b('k'), b('l'), { rev: 4, limit: 3 });
      expect(hist.count).toBe(KEYS);
      expect(hist.kvs.map((kv) => kv.value.toString())).toEqual(['r2', 'r2', 'r2']);
      readsDuringCompaction++;
      // Each iteration stands for a new client request (a macrotask); reads served from the
      // pending overlay resolve in microtasks only.
      await new Promise((r) => setImmediate(r));
    }
    expect(writesDuringCompaction).toBeGreaterThan(3);
    expect(readsDuringCompaction).toBeGreaterThan(3);
    const stored = await storedRevisions(s);
    expect(stored.filter((r) => r.startsWith('2_') || r.startsWith('3_'))).toEqual([]);
    expect(stored.filter((r) => r.startsWith('4_'))).toHaveLength(KEYS);
    expect((await s.range(b('k'), b('l'), { rev: 4 })).kvs.every((kv) => kv.value.toString() === 'r2')).toBe(true);
  });

  it('queued compactions run in order and each settles its own done promise', async () => {
    const s = await fresh();
    for (let i = 0; i < 10; i++) put(s, 'k', `${i}`);
    const first = s.compact(4);
    const second = s.compact(8);
    await Promise.all([first.done, second.done]);
    expect(await storedRevisions(s)).toEqual(['8_0', '9_0', '10_0', '11_0']);
  });

  it('an interrupted compaction is resumed when the store is reopened', async () => {
    const path = tempDir();
    const s = await KvStore.open(path, { compactionBatchLimit: 10 });
    const w1 = s.write();
    for (let i = 0; i < 200; i++) w1.put(b(`k${i}`), b('old'));
    w1.end({ consistentIndex: 1 });
    const w2 = s.write();
    for (let i = 0; i < 200; i++) w2.put(b(`k${i}`), b('new'));
    w2.end({ consistentIndex: 2 });
    del(s, 'k0'); // rev 4
    const { done } = s.compact(4, { consistentIndex: 4 });
    await new Promise((r) => setImmediate(r));
    await s.close();
    await expect(done).rejects.toThrow();

    const raw = await Backend.open(path);
    const meta = raw.bucket('meta');
    const scheduled = (await meta.get('scheduledCompactRev'))?.readUInt32BE(4);
    const finished = await meta.get('finishedCompactRev');
    expect(scheduled).toBe(4);
    expect(finished).toBeUndefined();
    await raw.close();

    const s2 = await fresh(path);
    expect(s2.compactRev).toBe(4);
    expect(s2.rev).toBe(4);
    expect(s2.consistentIndex).toBe(4);
    await s2.compactionIdle();
    const stored = await storedRevisions(s2);
    expect(stored).toHaveLength(199);
    expect(stored.every((r) => r.startsWith('3_'))).toBe(true);
    expect(s2.rangeCurrent(b('k1'), null).kvs[0].value.toString()).toBe('new');
    expect(s2.rangeCurrent(b('k0'), null).count).toBe(0);
    await expect(s2.range(b('k1'), null, { rev: 3 })).rejects.toBeInstanceOf(ErrCompacted);
  });
});
