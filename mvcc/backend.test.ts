import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { Backend } from './backend';
import { openLevel, writeLevelBatch } from './backend-files';
import { removeTempDirs, tempDir } from './test-helpers';

const open: Backend[] = [];
async function fresh(opts = {}, path = tempDir()): Promise<Backend> {
  const be = await Backend.open(path, opts);
  open.push(be);
  return be;
}
afterEach(async () => {
  for (const be of open.splice(0)) await be.close().catch(() => undefined);
});
afterAll(removeTempDirs);

async function entries(be: Backend, bucket: string): Promise<Array<[string, string]>> {
  const out: Array<[string, string]> = [];
  for await (const [k, v] of be.bucket(bucket).iterate()) out.push([k.toString(), v.toString()]);
  return out;
}

describe('Backend', () => {
  it('pending writes are readable before they are flushed, and flushed within the batch interval', async () => {
    const be = await fresh({ batchIntervalMs: 20 });
    const members = be.bucket('members');
    members.put('m1', Buffer.from('one'));
    expect(be.pendingCount).toBe(1);
    expect((await members.get('m1'))?.toString()).toBe('one');
    await new Promise((r) => setTimeout(r, 80));
    expect(be.pendingCount).toBe(0);
    expect((await members.get('m1'))?.toString()).toBe('one');
    members.del('m1');
    expect(await members.get('m1')).toBeUndefined();
  });

  it('flushes as soon as the pending batch reaches the batch limit', async () => {
    const be = await fresh({ batchIntervalMs: 60_000, batchLimit: 10 });
    for (let i = 0; i < 10; i++) be.bucket('b').put(`k${i}`, Buffer.from('v'));
    be.commitIfFull();
    await be.forceCommit(); // joins the flush started above
    expect(be.pendingCount).toBe(0);
  });

  it('iteration merges pending writes and deletes over LevelDB in key order', async () => {
    const be = await fresh();
    const bk = be.bucket('lease');
    for (const k of ['a', 'c', 'e']) bk.put(k, Buffer.from('disk'));
    await be.forceCommit();
    bk.put('b', Buffer.from('mem'));
    bk.put('e', Buffer.from('mem'));
    bk.del('c');
    bk.put('f', Buffer.from('mem'));
    expect(await entries(be, 'lease')).toEqual([['a', 'disk'], ['b', 'mem'], ['e', 'mem'], ['f', 'mem']]);
    const ranged: string[] = [];
    for await (const [k] of bk.iterate({ gte: Buffer.from('b'), lt: Buffer.from('f') })) ranged.push(k.toString());
    expect(ranged).toEqual(['b', 'e']);
  });

  it('an iteration sees the data as of its start, not later writes', async () => {
    const be = await fresh();
    const bk = be.bucket('x');
    for (let i = 0; i < 5; i++) bk.put(`k${i}`, Buffer.from('1'));
    const it = bk.iterate()[Symbol.asyncIterator]();
    const first = await it.next();
    bk.put('k9', Buffer.from('late'));
    bk.del('k4');
    await be.forceCommit();
    const rest: string[] = [first.value?.[0].toString() ?? ''];
    for (let r = await it.next(); r.done !== true; r = await it.next()) rest.push(r.value[0].toString());
    expect(rest).toEqual(['k0', 'k1', 'k2', 'k3', 'k4']);
  });

  it('buckets are isolated even when one name prefixes another', async () => {
    const be = await fresh();
    be.bucket('a').put('1', Buffer.from('a'));
    be.bucket('ab').put('1', Buffer.from('ab'));
    await be.forceCommit();
    be.bucket('a').put('2', Buffer.from('a'));
    expect(await entries(be, 'a')).toEqual([['1', 'a'], ['2', 'a']]);
    expect(await entries(be, 'ab')).toEqual([['1', 'ab']]);
    expect(() => be.bucket('bad/name')).toThrow();
  });

  it('data survives close and reopen; sync commits work with nothing pending', async () => {
    const path = tempDir();
    const be = await Backend.open(path);
    be.bucket('meta').put('x', Buffer.from('1'));
    await be.forceCommit({ sync: false });
    await be.forceCommit({ sync: true });
    await be.forceCommit({ sync: true });
    await be.close();
    const again = await fresh({}, path);
    expect((await again.bucket('meta').get('x'))?.toString()).toBe('1');
  });

  it('reports a positive size and defragments while writes continue', async () => {
    const be = await fresh();
    const bk = be.bucket('key');
    for (let i = 0; i < 2000; i++) bk.put(`k${i}`, Buffer.alloc(100, i));
    await be.forceCommit();
    for (let i = 0; i < 1000; i++) bk.del(`k${i}`);
    const defrag = be.defragment();
    bk.put('during', Buffer.from('1'));
    expect((await bk.get('during'))?.toString()).toBe('1');
    await defrag;
    expect(await be.sizeBytes()).toBeGreaterThan(0);
    expect(await be.sizeInUseBytes()).toBeGreaterThanOrEqual(0);
    expect((await entries(be, 'key')).length).toBe(1001);
  });
});

describe('sizeBytes', () => {
  /** What the size must equal: every file in the directory, stat'ed (the backend idle). */
  async function statAll(dir: string): Promise<number> {
    const fs = await import('node:fs');
    const path = await import('node:path');
    let total = 0;
    for (const name of fs.readdirSync(dir)) {
      const st = fs.statSync(path.join(dir, name));
      if (st.isFile()) total += st.size;
    }
    return total;
  }

  it('equals the bytes of every file in the directory, live tables taken from LevelDB and the rest stat\'ed', async () => {
    const fs = await import('node:fs');
    const path = await import('node:path');
    const dir = tempDir();
    const be = await fresh({ batchIntervalMs: 60_000 }, dir);
    const bucket = be.bucket('key');
    // Incompressible values, several MiB: LevelDB writes several tables (its 4 MiB write buffer).
    const value = Buffer.alloc(64 * 1024);
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 80; i++) {
        for (let j = 0; j < value.length; j += 4) value.writeUInt32LE(((round * 80 + i) * 2654435761 + j * 40503) >>> 0, j);
        bucket.put(`k${round}-${i}`, Buffer.from(value));
      }
      await be.forceCommit();
    }
    await be.defragment();
    const tables = fs.readdirSync(dir).filter((n) => n.endsWith('.ldb'));
    expect(tables.length).toBeGreaterThan(1);
    // The sizes LevelDB reports for its live tables are the files' (so those need no stat).
    const { liveTableBytes } = await import('./backend-files');
    const live = liveTableBytes((be as unknown as { db: Parameters<typeof liveTableBytes>[0] }).db);
    expect([...live.keys()].sort()).toEqual(tables.map((n) => String(Number(n.slice(0, -4)))).sort());
    for (const [num, bytes] of live) expect(bytes).toBe(fs.statSync(path.join(dir, `${num.padStart(6, '0')}.ldb`)).size);
    expect(await be.sizeBytes()).toBe(await statAll(dir));
    // A table file LevelDB's version does not list (one being written, or not yet deleted) is stat'ed.
    fs.writeFileSync(path.join(dir, '999999.ldb'), Buffer.alloc(12_345));
    expect(await be.sizeBytes()).toBe(await statAll(dir));
    fs.rmSync(path.join(dir, '999999.ldb'));
  });
});

describe('defragment', () => {
  it('reclaims deleted data even when all of it is still in the memtable', async () => {
    const { Backend } = await import('./backend');
    const fs = await import('node:fs');
    const os = await import('node:os');
    const path = await import('node:path');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-defrag-'));
    const b = await Backend.open(dir);
    try {
      const bucket = b.bucket('key');
      const value = Buffer.alloc(64 * 1024);
      for (let i = 0; i < 40; i++) {
        for (let j = 0; j < value.length; j += 4) value.writeUInt32LE((i * 2654435761 + j * 40503) >>> 0, j);
        bucket.put(`k${i}`, Buffer.from(value));
      }
      await b.forceCommit();
      for (let i = 0; i < 39; i++) bucket.del(`k${i}`);
      await b.forceCommit();
      const before = await b.sizeBytes();
      await b.defragment();
      const after = await b.sizeBytes();
      expect(before).toBeGreaterThan(2 * 1024 * 1024);
      expect(after).toBeLessThan(before / 4);
      expect(await bucket.get('k39')).toBeDefined();
      const keys: string[] = [];
      for await (const chunk of b.allEntries()) for (const [k] of chunk) keys.push(k.toString('latin1'));
      expect(keys.some((k) => !k.startsWith('key/') && !k.startsWith('meta/'))).toBe(false);
    } finally {
      await b.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('writeLevelBatch', () => {
  it('writes puts and deletes as one batch that the public API reads back, and refuses a closed database as batch() does', async () => {
    const db = await openLevel(tempDir(), 1 << 20);
    const k = (s: string): Buffer => Buffer.from(s);
    await writeLevelBatch(db, [{ type: 'put', key: k('a'), value: k('1') }, { type: 'put', key: k('b'), value: k('2') }, { type: 'put', key: k('c'), value: Buffer.alloc(0) }], false);
    await writeLevelBatch(db, [{ type: 'del', key: k('a') }, { type: 'put', key: k('b'), value: k('3') }], true);
    const rows: string[] = [];
    for await (const [key, value] of db.iterator()) rows.push(`${key.toString()}=${value.toString()}`);
    expect(rows).toEqual(['b=3', 'c=']);
    await db.close();
    await expect(writeLevelBatch(db, [{ type: 'put', key: k('d'), value: k('4') }], false)).rejects.toMatchObject({ code: 'LEVEL_DATABASE_NOT_OPEN' });
  });
});
