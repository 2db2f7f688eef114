/**
 * A put or delete reads no value (etcd's storeTxnWrite.put takes created and version from
 * kvindex.Get and the old lease from the lessor), and the generation state it uses instead —
 * create_revision, version, lease in the key index — stays right across compaction, restart and
 * delete-and-recreate. Backend reads are counted by wrapping the store's Backend (a collaborator)
 * with the value cache off, so no read can hide behind a cache hit.
 */
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { Backend } from './backend';
import { KvStore } from './kv-store';
import { b, kvSummary, removeTempDirs, tempDir } from './test-helpers';
import { WatchableStore } from './watchable-store';

afterAll(removeTempDirs);

const open: KvStore[] = [];
afterEach(async () => {
  for (const s of open.splice(0)) await s.close().catch(() => undefined);
});

/** Counts every value read the store makes through its backend (point, batched and sync). */
function countReads(backend: Backend): { reads: number } {
  const counter = { reads: 0 };
  const getKey = backend.getKey.bind(backend);
  const getKeySync = backend.getKeySync.bind(backend);
  const getManyKeys = backend.getManyKeys.bind(backend);
  backend.getKey = (key) => {
    counter.reads++;
    return getKey(key);
  };
  backend.getKeySync = (key) => {
    counter.reads++;
    return getKeySync(key);
  };
  backend.getManyKeys = (keys) => {
    counter.reads += keys.length;
    return getManyKeys(keys);
  };
  return counter;
}

async function openStore(path = tempDir()): Promise<{ s: KvStore; counter: { reads: number } }> {
  const s = await KvStore.open(path, { valueCacheBytes: 0 });
  open.push(s);
  return { s, counter: countReads(s.backend) };
}

let ci = 1;
function write(s: KvStore, fn: (w: ReturnType<KvStore['write']>) => void): void {
  const w = s.write();
  fn(w);
  w.end({ consistentIndex: ci++ });
}

const get = (s: KvStore, key: string): unknown => kvSummary(s.rangeCurrent(b(key), null).kvs[0]);

describe('the write path reads no value', () => {
  it('puts on live keys, lease changes, recreates and range deletes make no backend read', async () => {
    const { s, counter } = await openStore();
    for (let i = 0; i < 50; i++) write(s, (w) => w.put(b(`k${i}`), b('v0'), i % 2 === 0 ? 7n : 0n)); // revs 2..51
    counter.reads = 0;
    const prevLeases: Array<bigint | undefined> = [];
    write(s, (w) => {
      prevLeases.push(w.put(b('k0'), b('v1'), 8n)); // live, lease 7 → 8
      prevLeases.push(w.put(b('k1'), b('v1'))); // live, no lease
      prevLeases.push(w.put(b('k0'), b('v2'), 8n)); // again in the same txn
      prevLeases.push(w.put(b('fresh'), b('v1'))); // new key
    }); // 52
    const deleted = (() => {
      const w = s.write();
      const d = w.deleteRange(b('k2'), b('k3')); // k2, k20..k29
      w.end({ consistentIndex: ci++ });
      return d;
    })(); // 53
    write(s, (w) => {
      w.deleteRange(b('k30'), null);
      w.put(b('k30'), b('again')); // deleted and recreated in one txn
    }); // 54
    write(s, (w) => w.put(b('k2'), b('back'))); // recreated after its delete
    expect(counter.reads).toBe(0);

    expect(prevLeases).toEqual([7n, 0n, 8n, undefined]);
    expect(deleted.map((d) => [d.key.toString('latin1'), d.lease])).toEqual([
      ['k2', 7n], ['k20', 7n], ['k21', 0n], ['k22', 7n], ['k23', 0n], ['k24', 7n], ['k25', 0n], ['k26', 7n], ['k27', 0n], ['k28', 7n], ['k29', 0n],
    ]);
    expect(get(s, 'k0')).toEqual({ key: 'k0', value: 'v2', create: 2, mod: 52, version: 3, lease: 8n });
    expect(get(s, 'k1')).toEqual({ key: 'k1', value: 'v1', create: 3, mod: 52, version: 2, lease: 0n });
    expect(get(s, 'fresh')).toEqual({ key: 'fresh', value: 'v1', create: 52, mod: 52, version: 1, lease: 0n });
    expect(get(s, 'k30')).toEqual({ key: 'k30', value: 'again', create: 54, mod: 54, version: 1, lease: 0n });
    expect(get(s, 'k2')).toEqual({ key: 'k2', value: 'back', create: 55, mod: 55, version: 1, lease: 0n });
    // The counter does see reads: the gets above are five.
    expect(counter.reads).toBe(5);
  });

  it('a txn read of a key before writing it reads its value; the write after it still reads none', async () => {
    const { s, counter } = await openStore();
    write(s, (w) => w.put(b('k'), b('v1'), 5n));
    counter.reads = 0;
    write(s, (w) => {
      expect(w.range(b('k'), null).kvs[0].value.toString()).toBe('v1'); // a Put with prev_kv does this
      expect(counter.reads).toBe(1);
      expect(w.put(b('k'), b('v2'))).toBe(5n);
    });
    expect(counter.reads).toBe(1);
  });

  it('events lack prevKv when the value was not at hand; the watch hub reads it only for prev_kv watchers', async () => {
    const { s, counter } = await openStore();
    const hub = new WatchableStore(s);
    const stream = hub.newStream(() => undefined);
    const plain = stream.watch({ id: 0, key: b('a'), end: b('z'), startRev: 0 });
    write(s, (w) => w.put(b('k'), b('v1')));
    counter.reads = 0;
    write(s, (w) => w.put(b('k'), b('v2')));
    write(s, (w) => w.deleteRange(b('k'), null));
    expect(counter.reads).toBe(0); // a watcher without prev_kv costs no read
    const withPrev = stream.watch({ id: 0, key: b('k'), end: null, startRev: 0, prevKv: true });
    write(s, (w) => w.put(b('k'), b('v3'))); // version 1: nothing to read
    write(s, (w) => w.put(b('k'), b('v4')));
    write(s, (w) => w.deleteRange(b('k'), null));
    expect(counter.reads).toBe(2); // one per event that has a previous value
    const events: string[] = [];
    for (let r = stream.next(); r !== undefined; r = stream.next()) {
      for (const ev of r.events) {
        const prev = ev.prevKv === undefined ? '' : ` prev=${ev.prevKv.value.toString()}@${ev.prevKv.modRevision}`;
        events.push(`${r.watchId} ${ev.type} ${ev.kv.value.toString()}@${ev.kv.modRevision}${prev}`);
      }
    }
    expect(events).toEqual([
      `${plain} PUT v1@2`, `${plain} PUT v2@3`, `${plain} DELETE @4`,
      // Per commit the hub serves single-key watchers first, then range watchers.
      `${withPrev} PUT v3@5`, `${plain} PUT v3@5`,
      `${withPrev} PUT v4@6 prev=v3@5`, `${plain} PUT v4@6`,
      `${withPrev} DELETE @7 prev=v4@6`, `${plain} DELETE @7`,
    ]);
    hub.close();
  });
});

describe('create_revision, version and lease come from the key index', () => {
  it('survive compaction of the generation\'s older revisions', async () => {
    const { s, counter } = await openStore();
    write(s, (w) => w.put(b('k'), b('1'), 3n)); // 2
    write(s, (w) => w.put(b('k'), b('2'), 4n)); // 3
    write(s, (w) => w.put(b('k'), b('3'), 4n)); // 4
    await s.compact(4).done; // revisions 2 and 3 are gone from the index and the backend
    expect(await s.range(b('k'), null, { rev: 4 })).toMatchObject({ count: 1 });
    counter.reads = 0;
    let oldLease: bigint | undefined;
    write(s, (w) => {
      oldLease = w.put(b('k'), b('4'));
    }); // 5
    expect(counter.reads).toBe(0);
    expect(oldLease).toBe(4n);
    expect(get(s, 'k')).toEqual({ key: 'k', value: '4', create: 2, mod: 5, version: 4, lease: 0n });
  });

  it('are rebuilt on restart from the records, also after compaction, and a put then reads nothing', async () => {
    const path = tempDir();
    {
      const { s } = await openStore(path);
      write(s, (w) => w.put(b('k'), b('1'))); // 2
      write(s, (w) => w.put(b('k'), b('2'), 6n)); // 3
      write(s, (w) => w.put(b('gone'), b('1'))); // 4
      write(s, (w) => w.deleteRange(b('gone'), null)); // 5
      write(s, (w) => w.put(b('k'), b('3'), 6n)); // 6
      write(s, (w) => w.put(b('dead'), b('1'), 6n)); // 7
      write(s, (w) => w.deleteRange(b('dead'), null)); // 8
      await s.compact(6).done;
      await s.close();
    }
    const { s, counter } = await openStore(path);
    expect(s.rev).toBe(8);
    const leases: Array<[string, bigint]> = [];
    s.forEachLiveLease((k, lease) => leases.push([k, lease]));
    expect(leases).toEqual([['k', 6n]]);
    counter.reads = 0;
    const got: Array<bigint | undefined> = [];
    write(s, (w) => {
      got.push(w.put(b('k'), b('4'))); // version 4 of the generation created at 2
      got.push(w.put(b('gone'), b('again'))); // a new generation after the tombstone
      got.push(w.put(b('dead'), b('again')));
    }); // 9
    expect(counter.reads).toBe(0);
    expect(got).toEqual([6n, undefined, undefined]);
    expect(get(s, 'k')).toEqual({ key: 'k', value: '4', create: 2, mod: 9, version: 4, lease: 0n });
    expect(get(s, 'gone')).toEqual({ key: 'gone', value: 'again', create: 9, mod: 9, version: 1, lease: 0n });
    expect(get(s, 'dead')).toEqual({ key: 'dead', value: 'again', create: 9, mod: 9, version: 1, lease: 0n });
  });

  it('delete and recreate start a new generation: version 1, create_revision = the new revision', async () => {
    const { s } = await openStore();
    write(s, (w) => w.put(b('k'), b('1'), 2n)); // 2
    write(s, (w) => w.put(b('k'), b('2'), 2n)); // 3
    let deleted: Array<{ key: string; lease: bigint }> = [];
    write(s, (w) => {
      deleted = w.deleteRange(b('k'), null).map((d) => ({ key: d.key.toString('latin1'), lease: d.lease }));
    }); // 4
    expect(deleted).toEqual([{ key: 'k', lease: 2n }]);
    let prev: bigint | undefined = -1n;
    write(s, (w) => {
      prev = w.put(b('k'), b('3'));
    }); // 5
    expect(prev).toBeUndefined();
    write(s, (w) => w.put(b('k'), b('4'))); // 6
    expect(get(s, 'k')).toEqual({ key: 'k', value: '4', create: 5, mod: 6, version: 2, lease: 0n });
    // The old generation stays readable below the delete.
    expect(kvSummary((await s.range(b('k'), null, { rev: 3 })).kvs[0])).toMatchObject({ create: 2, version: 2, lease: 2n });
  });
});
