import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { ErrCompacted, ErrFutureRev } from './errors';
import { KvStore } from './kv-store';
import { b, del, keys, kvSummary, pairs, put, removeTempDirs, tempDir } from './test-helpers';

const open: KvStore[] = [];
async function fresh(): Promise<KvStore> {
  const s = await KvStore.open(tempDir());
  open.push(s);
  return s;
}
afterEach(async () => {
  for (const s of open.splice(0)) await s.close().catch(() => undefined);
});
afterAll(removeTempDirs);

describe('revision numbering', () => {
  it('a fresh store is at revision 1 with no compaction and consistentIndex 0', async () => {
    const s = await fresh();
    expect(s.rev).toBe(1);
    expect(s.compactRev).toBe(-1);
    expect(s.consistentIndex).toBe(0);
    expect(s.rangeCurrent(b('\x00'), b('\x00'))).toEqual({ kvs: [], count: 0, rev: 1 });
  });

  it('the first write gets revision 2 and each write txn bumps the revision exactly once', async () => {
    const s = await fresh();
    expect(put(s, 'a', '1')).toBe(2);
    const w = s.write();
    w.put(b('b'), b('1'));
    w.put(b('c'), b('1'));
    w.deleteRange(b('a'), null);
    w.end({ consistentIndex: 10 });
    expect(s.rev).toBe(3);
    const revs = s.rangeCurrent(b('\x00'), b('\x00')).kvs.map((kv) => kv.modRevision);
    expect(revs).toEqual([3, 3]);
    expect(s.consistentIndex).toBe(10);
  });

  it('changes inside one txn get sub revisions 0, 1, 2 in order', async () => {
    const s = await fresh();
    const w = s.write();
    w.put(b('x'), b('1'));
    w.put(b('y'), b('1'));
    w.deleteRange(b('x'), null);
    w.end({ consistentIndex: 1 });
    const events = await s.readEvents(2, 2);
    expect(events.map((e) => [e.type, e.kv.key.toString()])).toEqual([['PUT', 'x'], ['PUT', 'y'], ['DELETE', 'x']]);
  });

  it('a delete that matches nothing and a read-only txn do not bump the revision but record consistentIndex', async () => {
    const s = await fresh();
    put(s, 'a', '1');
    expect(del(s, 'zzz')).toBe(0);
    expect(s.rev).toBe(2);
    const w = s.write();
    expect(w.range(b('a'), null).kvs).toHaveLength(1);
    w.end({ consistentIndex: 77 });
    expect(s.rev).toBe(2);
    expect(s.consistentIndex).toBe(77);
  });

  it('putting an identical value still bumps revision and version', async () => {
    const s = await fresh();
    put(s, 'a', 'same');
    put(s, 'a', 'same');
    expect(kvSummary(s.rangeCurrent(b('a'), null).kvs[0])).toMatchObject({ mod: 3, version: 2, create: 2 });
  });
});

describe('versions, generations and tombstones', () => {
  it('a live key keeps create_revision and counts versions; a re-created key starts a new generation', async () => {
    const s = await fresh();
    put(s, 'k', 'v1'); // 2
    put(s, 'k', 'v2'); // 3
    expect(kvSummary(s.rangeCurrent(b('k'), null).kvs[0])).toEqual({ key: 'k', value: 'v2', create: 2, mod: 3, version: 2, lease: 0n });
    del(s, 'k'); // 4
    expect(s.rangeCurrent(b('k'), null)).toEqual({ kvs: [], count: 0, rev: 4 });
    put(s, 'k', 'v3', 7n); // 5
    expect(kvSummary(s.rangeCurrent(b('k'), null).kvs[0])).toEqual({ key: 'k', value: 'v3', create: 5, mod: 5, version: 1, lease: 7n });
  });

  it('put returns the previous lease, deleteRange the deleted keys, and the events carry prevKv at hand', async () => {
    const s = await fresh();
    put(s, 'k', 'v1', 9n);
    const w = s.write();
    expect(w.put(b('k'), b('v2'))).toBe(9n);
    expect(w.put(b('new'), b('n'))).toBeUndefined();
    const deleted = w.deleteRange(b('k'), null);
    w.end({ consistentIndex: 1 });
    expect(deleted.map((d) => [d.key.toString('latin1'), d.lease])).toEqual([['k', 0n]]);
    // v1 is in the value cache (its put wrote it there), v2 is this txn's own write.
    const ev = w.changes;
    expect(ev.map((e) => e.type)).toEqual(['PUT', 'PUT', 'DELETE']);
    expect(kvSummary(ev[0].prevKv)).toMatchObject({ value: 'v1' });
    expect(ev[1].prevKv).toBeUndefined();
    // A DELETE event's kv carries only key and mod_revision.
    expect(kvSummary(ev[2].kv)).toEqual({ key: 'k', value: '', create: 0, mod: 3, version: 0, lease: 0n });
    expect(kvSummary(ev[2].prevKv)).toMatchObject({ value: 'v2', mod: 3, version: 2 });
  });

  it('deleteRange removes every live key in the range and skips already deleted ones', async () => {
    const s = await fresh();
    for (const k of ['a', 'b', 'c', 'd']) put(s, k, k);
    del(s, 'b');
    expect(del(s, 'a', 'd')).toBe(2); // a, c
    expect(keys(s.rangeCurrent(b('\x00'), b('\x00')).kvs)).toEqual(['d']);
  });
});

describe('range', () => {
  async function abc(): Promise<KvStore> {
    const s = await fresh();
    for (const k of ['a', 'ab', 'b', 'c', '\xff']) put(s, k, `v-${k}`);
    return s;
  }

  it('an empty end reads one key; [key, end) reads a half-open range in bytewise order', async () => {
    const s = await abc();
    expect(keys(s.rangeCurrent(b('ab'), null).kvs)).toEqual(['ab']);
    expect(keys(s.rangeCurrent(b('ab'), Buffer.alloc(0)).kvs)).toEqual(['ab']);
    expect(keys(s.rangeCurrent(b('a'), b('c')).kvs)).toEqual(['a', 'ab', 'b']);
    expect(keys(s.rangeCurrent(b('c'), b('a')).kvs)).toEqual([]);
  });

  it('an end of one zero byte means every key >= key, and key "\\x00" with it means all keys', async () => {
    const s = await abc();
    expect(keys(s.rangeCurrent(b('b'), b('\x00')).kvs)).toEqual(['b', 'c', '\xff']);
    expect(keys(s.rangeCurrent(b('\x00'), b('\x00')).kvs)).toEqual(['a', 'ab', 'b', 'c', '\xff']);
  });

  it('limit truncates kvs while count stays the total, and countOnly returns no kvs', async () => {
    const s = await abc();
    const r = s.rangeCurrent(b('\x00'), b('\x00'), { limit: 2 });
    expect(keys(r.kvs)).toEqual(['a', 'ab']);
    expect(r.count).toBe(5);
    expect(r.kvs.length < r.count).toBe(true); // "more"
    expect(s.rangeCurrent(b('a'), b('b'), { countOnly: true })).toEqual({ kvs: [], count: 2, rev: 6 });
    const all = s.rangeCurrent(b('\x00'), b('\x00'), { limit: 5 });
    expect(all.kvs.length).toBe(all.count);
  });

  it('reads an older revision, reporting the current revision in the result', async () => {
    const s = await fresh();
    put(s, 'a', '1'); // 2
    put(s, 'b', '1'); // 3
    put(s, 'a', '2'); // 4
    del(s, 'b'); // 5
    const at3 = await s.range(b('\x00'), b('\x00'), { rev: 3 });
    expect(pairs(at3.kvs)).toEqual([['a', '1'], ['b', '1']]);
    expect(at3.rev).toBe(5);
    expect(kvSummary(at3.kvs[0])).toMatchObject({ create: 2, mod: 2, version: 1 });
    expect(pairs((await s.range(b('\x00'), b('\x00'), { rev: 4 })).kvs)).toEqual([['a', '2'], ['b', '1']]);
    expect((await s.range(b('\x00'), b('\x00'), { rev: 1 })).count).toBe(0);
    const limited = await s.range(b('\x00'), b('\x00'), { rev: 4, limit: 1 });
    expect([keys(limited.kvs), limited.count]).toEqual([['a'], 2]);
    expect(pairs((await s.range(b('\x00'), b('\x00'), { rev: 0 })).kvs)).toEqual([['a', '2']]);
  });

  it('rejects a future revision and a revision below the compact revision, but allows the compact revision itself', async () => {
    const s = await fresh();
    for (let i = 0; i < 5; i++) put(s, 'k', `v${i}`); // revs 2..6
    await expect(s.range(b('k'), null, { rev: 7 })).rejects.toBeInstanceOf(ErrFutureRev);
    await s.compact(4).done;
    await expect(s.range(b('k'), null, { rev: 3 })).rejects.toBeInstanceOf(ErrCompacted);
    await expect(s.range(b('k'), null, { rev: 3 })).rejects.toThrow('mvcc: required revision has been compacted');
    expect(pairs((await s.range(b('k'), null, { rev: 4 })).kvs)).toEqual([['k', 'v2']]);
    expect(pairs((await s.range(b('k'), null, { rev: 5 })).kvs)).toEqual([['k', 'v3']]);
  });
});

describe('write txn reads', () => {
  it('a range inside a write txn sees the txn\'s own earlier puts and deletes at beginRev+1', async () => {
    const s = await fresh();
    put(s, 'a', '1');
    put(s, 'c', '1');
    const w = s.write();
    expect(w.rev).toBe(3);
    expect(w.range(b('a'), b('\x00')).rev).toBe(3);
    w.put(b('b'), b('2'));
    w.deleteRange(b('c'), null);
    w.put(b('d'), b('2'));
    const r = w.range(b('\x00'), b('\x00'));
    expect(pairs(r.kvs)).toEqual([['a', '1'], ['b', '2'], ['d', '2']]);
    expect(r.rev).toBe(4);
    expect(w.range(b('c'), null).count).toBe(0);
    expect(w.range(b('b'), null).kvs[0].modRevision).toBe(4);
    expect(w.range(b('\x00'), b('\x00'), { limit: 2 }).count).toBe(3);
    // The committed view is unchanged until end().
    expect(pairs(s.rangeCurrent(b('\x00'), b('\x00')).kvs)).toEqual([['a', '1'], ['c', '1']]);
    // Historical reads inside the txn see the committed history.
    expect(pairs(w.range(b('\x00'), b('\x00'), { rev: 2 }).kvs)).toEqual([['a', '1']]);
    expect(() => w.range(b('a'), null, { rev: 5 })).toThrow(ErrFutureRev);
    w.end({ consistentIndex: 1 });
    expect(pairs(s.rangeCurrent(b('\x00'), b('\x00')).kvs)).toEqual([['a', '1'], ['b', '2'], ['d', '2']]);
  });

  it('a second put of one key in a txn bumps its version again', async () => {
    const s = await fresh();
    const w = s.write();
    w.put(b('k'), b('1'));
    w.put(b('k'), b('2'));
    w.end({ consistentIndex: 1 });
    expect(kvSummary(s.rangeCurrent(b('k'), null).kvs[0])).toMatchObject({ value: '2', create: 2, mod: 2, version: 2 });
  });

  it('only one write txn may be active at a time', async () => {
    const s = await fresh();
    const w = s.write();
    expect(() => s.write()).toThrow();
    w.end({ consistentIndex: 1 });
    expect(() => w.end({ consistentIndex: 2 })).toThrow();
    s.write().end({ consistentIndex: 2 });
  });
});

describe('readEvents', () => {
  it('returns every change in revision order, bounded by toRev and maxRevs distinct revisions', async () => {
    const s = await fresh();
    put(s, 'a', '1'); // 2
    const w = s.write(); // 3: two changes
    w.put(b('b'), b('1'));
    w.put(b('c'), b('1'));
    w.end({ consistentIndex: 1 });
    del(s, 'a'); // 4
    put(s, 'd', '1'); // 5
    const all = await s.readEvents(1, 100);
    expect(all.map((e) => `${e.type}:${e.kv.key}@${e.kv.modRevision}`)).toEqual(['PUT:a@2', 'PUT:b@3', 'PUT:c@3', 'DELETE:a@4', 'PUT:d@5']);
    const batch = await s.readEvents(2, 5, 2);
    expect(batch.map((e) => e.kv.modRevision)).toEqual([2, 3, 3]);
    const tail = await s.readEvents(3, 4);
    expect(tail.map((e) => e.kv.modRevision)).toEqual([3, 3, 4]);
    expect(kvSummary(tail[2].kv)).toEqual({ key: 'a', value: '', create: 0, mod: 4, version: 0, lease: 0n });
  });

  it('fails with ErrCompacted when starting below the compact revision', async () => {
    const s = await fresh();
    for (let i = 0; i < 4; i++) put(s, 'k', `${i}`);
    await s.compact(3).done;
    await expect(s.readEvents(2, 5)).rejects.toBeInstanceOf(ErrCompacted);
    expect((await s.readEvents(3, 5)).map((e) => e.kv.modRevision)).toEqual([3, 4, 5]);
  });

  it('prevKvAt gives the value just before a revision', async () => {
    const s = await fresh();
    put(s, 'k', 'v1'); // 2
    put(s, 'k', 'v2'); // 3
    del(s, 'k'); // 4
    expect((await s.prevKvAt(b('k'), 3))?.value.toString()).toBe('v1');
    expect((await s.prevKvAt(b('k'), 4))?.value.toString()).toBe('v2');
    expect(await s.prevKvAt(b('k'), 2)).toBeUndefined();
    expect(await s.kvAt(b('k'), 4)).toBeUndefined();
    await s.compact(3).done;
    expect(await s.prevKvAt(b('k'), 3)).toBeUndefined();
  });
});
