import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Wal } from '../../server/storage/wal/wal';
import { TEST_SEGMENT_BYTES, entries, entry, frames, plain, removeTmpDirs, segmentPaths, tmpWalDir } from './support';

/**
 * The WAL's durable contents survive reopening across segment cuts: entries (later records
 * replacing a conflicting suffix), the hard state, snapshot markers (a leader's replacing the log,
 * a local one not) and metadata, which every new segment's head repeats so older segments can go.
 */

afterAll(removeTmpDirs);

const firstIndex = (file: string): number => parseInt(path.basename(file).slice(17, 33), 16);
const open = (dir: string, maxWalFiles?: number): Promise<Wal> => Wal.open(dir, { segmentSizeBytes: TEST_SEGMENT_BYTES, maxWalFiles });
const meta = Buffer.from('member-7-cluster-9');
const confState = Buffer.from('{"voters":["1","2","3"]}');

describe('WAL round trip', () => {
  it('keeps entries, hard state, snapshot and metadata across segment cuts and reopen', async () => {
    const dir = tmpWalDir();
    let w = await open(dir);
    await w.save({ entries: [], snapshot: { index: 1, term: 1, data: confState }, hardState: { term: 1, vote: 0n, commit: 1 }, sync: true });
    await w.saveMetadata(meta);
    const written = entries(2, 1501, 2, 200);
    for (let i = 0; i < written.length; i += 10) {
      const batch = written.slice(i, i + 10);
      await w.save({ entries: batch, hardState: { term: 2, vote: 3n, commit: batch[batch.length - 1].index }, sync: true });
    }
    await w.close();
    const segs = segmentPaths(dir);
    // 1500 × ~232 bytes over 64 KiB segments: several cuts, consecutive sequence numbers.
    expect(segs.length).toBeGreaterThanOrEqual(5);
    expect(segs.map((s) => parseInt(path.basename(s).slice(0, 16), 16))).toEqual(segs.map((_, i) => i));

    w = await open(dir);
    const c = await w.readAll();
    expect(c.metadata && Buffer.from(c.metadata).equals(meta)).toBe(true);
    expect(c.snapshot?.index).toBe(1);
    expect(Buffer.from(c.snapshot?.data ?? []).equals(confState)).toBe(true);
    expect(c.hardState).toEqual({ term: 2, vote: 3n, commit: 1501 });
    expect(plain(c.entries)).toEqual(plain(written));
    // Appending continues the chain: a second reopen still verifies.
    await w.save({ entries: [entry(1502, 2)], sync: true });
    await w.close();
    w = await open(dir);
    expect((await w.readAll()).entries.map((e) => e.index).slice(-2)).toEqual([1501, 1502]);
    await w.close();
  });

  it('a later entry at an index replaces the suffix from it (Raft overwrote a conflicting tail)', async () => {
    const dir = tmpWalDir();
    let w = await open(dir);
    await w.save({ entries: entries(1, 10, 1), sync: true });
    await w.save({ entries: entries(6, 7, 2), hardState: { term: 2, vote: 1n, commit: 5 }, sync: true });
    await w.close();
    w = await open(dir);
    const c = await w.readAll();
    await w.close();
    expect(plain(c.entries)).toEqual(plain([...entries(1, 5, 1), ...entries(6, 7, 2)]));
  });

  it("a leader's snapshot replaces the whole log; a local snapshot keeps the entries after it", async () => {
    const dir = tmpWalDir();
    let w = await open(dir);
    await w.save({ entries: entries(1, 20, 1), sync: true });
    await w.saveSnapshot({ index: 12, term: 1, data: confState });
    let c = await reopen();
    expect(c.snapshot?.index).toBe(12);
    expect(c.entries.map((e) => e.index)).toEqual(entries(13, 20).map((e) => e.index));

    // From the leader, at 15 with another term: entries 16..20 of the old log must not come back.
    await w.save({ entries: [], snapshot: { index: 15, term: 3, data: confState }, hardState: { term: 3, vote: 0n, commit: 15 }, sync: true });
    c = await reopen();
    expect(c.snapshot).toMatchObject({ index: 15, term: 3 });
    expect(c.entries).toEqual([]);
    await w.save({ entries: entries(16, 17, 3), sync: true });
    c = await reopen();
    expect(plain(c.entries)).toEqual(plain(entries(16, 17, 3)));
    await w.close();

    async function reopen(): Promise<Awaited<ReturnType<Wal['readAll']>>> {
      await w.close();
      w = await open(dir);
      return w.readAll();
    }
  });

  it('groups saves issued while a sync runs into the next write and fsync', async () => {
    const dir = tmpWalDir();
    let fsyncs = 0;
    const w = await Wal.open(dir, { segmentSizeBytes: TEST_SEGMENT_BYTES, observer: { fsyncSeconds: () => fsyncs++ } });
    // Saves of two entries: a lone one-entry save is synced inline (see below).
    const saves = Array.from({ length: 25 }, (_, i) => w.save({ entries: entries(2 * i + 1, 2 * i + 2), sync: true }));
    await Promise.all(saves);
    // The first save's sync is running while the other 24 queue: they share one more fsync.
    expect(fsyncs).toBe(2);
    await w.close();
    const r = await Wal.open(dir, { segmentSizeBytes: TEST_SEGMENT_BYTES });
    expect((await r.readAll()).entries.map((e) => e.index)).toEqual(entries(1, 50).map((e) => e.index));
    await r.close();
  });
});

describe('where the fdatasync runs', () => {
  /**
   * Occupies every libuv thread-pool thread: each opens the read end of a FIFO, which blocks until
   * release() opens its write end. A thread-pool fdatasync cannot even start meanwhile.
   */
  async function blockThreadPool(): Promise<{ release: () => Promise<void> }> {
    const threads = Number(process.env.UV_THREADPOOL_SIZE ?? 4);
    const base = path.dirname(tmpWalDir('cairn-wal-fifo-'));
    const fifos = Array.from({ length: threads }, (_, i) => path.join(base, `fifo-${i}`));
    for (const f of fifos) execFileSync('mkfifo', [f]);
    const opens = fifos.map((f) => fs.promises.open(f, 'r'));
    return {
      release: async () => {
        // Opening a write end succeeds once a reader is blocked in open, which releases that thread.
        for (const f of fifos) {
          for (;;) {
            try {
              fs.closeSync(fs.openSync(f, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK));
              break;
            } catch (e) {
              if ((e as NodeJS.ErrnoException).code !== 'ENXIO') throw e;
              await new Promise((r) => setImmediate(r)); // that reader has not reached open yet
            }
          }
        }
        for (const h of await Promise.all(opens)) await h.close();
      },
    };
  }

  it('a lone save of one entry is fdatasynced on the calling thread; a larger round in the thread pool', async () => {
    const dir = tmpWalDir();
    const fsyncs: number[] = [];
    const w = await Wal.open(dir, { segmentSizeBytes: TEST_SEGMENT_BYTES, observer: { fsyncSeconds: (s) => fsyncs.push(s) } });
    const turns = async (n: number): Promise<void> => {
      for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
    };
    const pool = await blockThreadPool();
    // With every pool thread blocked, only an inline fdatasync can complete.
    let lone = false;
    const first = w.save({ entries: [entry(1)], sync: true }).then(() => (lone = true));
    await turns(20);
    const loneDoneWhileBlocked = lone;
    let larger = false;
    const second = w.save({ entries: entries(2, 3), sync: true }).then(() => (larger = true));
    await turns(20);
    const largerDoneWhileBlocked = larger;
    await pool.release();
    await Promise.all([first, second]);
    expect(loneDoneWhileBlocked).toBe(true);
    expect(largerDoneWhileBlocked).toBe(false);
    expect(larger).toBe(true);
    expect(fsyncs).toHaveLength(2);
    await w.close();
    const r = await Wal.open(dir, { segmentSizeBytes: TEST_SEGMENT_BYTES });
    expect(plain((await r.readAll()).entries)).toEqual(plain(entries(1, 3)));
    await r.close();
  });

  it('a save that fills the segment is synced before the cut closes it, whichever way its round runs', async () => {
    const dir = tmpWalDir();
    const w = await Wal.open(dir, { segmentSizeBytes: TEST_SEGMENT_BYTES });
    // One save at a time (the Ready loop's shape), of one entry (inline rounds) or two (thread-pool
    // rounds), across several cuts.
    const big = 3000;
    for (let i = 1; i <= 100; i += i % 3 === 0 ? 2 : 1) await w.save({ entries: i % 3 === 0 ? entries(i, i + 1, 1, big) : [entry(i, 1, big)], sync: true });
    await w.close();
    expect(segmentPaths(dir).length).toBeGreaterThan(3);
    const r = await Wal.open(dir, { segmentSizeBytes: TEST_SEGMENT_BYTES });
    expect(plain((await r.readAll()).entries)).toEqual(plain(entries(1, 100, 1, big)));
    await r.close();
  });
});

describe('segment release', () => {
  it('removes segments wholly covered by a durable snapshot and the compaction, keeping --max-wals', async () => {
    const dir = tmpWalDir();
    let w = await open(dir, 2);
    await w.save({ entries: [], snapshot: { index: 0, term: 0, data: confState }, sync: true });
    const written = entries(1, 2000, 1, 200);
    for (let i = 0; i < written.length; i += 20) await w.save({ entries: written.slice(i, i + 20), hardState: { term: 1, vote: 0n, commit: i + 20 }, sync: true });
    const before = segmentPaths(dir);
    expect(before.length).toBeGreaterThan(4);

    // Compaction without a snapshot that covers it releases nothing.
    await w.compact(1500);
    expect(segmentPaths(dir)).toEqual(before);

    await w.saveSnapshot({ index: 1800, term: 1, data: confState });
    await w.compact(1500);
    // Kept from the segment holding entry 1501 on (its name says the first index it was cut for).
    const holds1501 = before.findIndex((_, i) => i + 1 === before.length || firstIndex(before[i + 1]) > 1501);
    expect(holds1501).toBeGreaterThan(0);
    expect(segmentPaths(dir)).toEqual(before.slice(holds1501));
    for (const gone of before.slice(0, holds1501)) expect(fs.existsSync(gone)).toBe(false);

    // Compacted further, down to --max-wals segments (the tail and one before it).
    await w.compact(1990);
    expect(segmentPaths(dir)).toEqual(before.slice(-2));
    await w.close();

    w = await open(dir, 2);
    const c = await w.readAll();
    await w.close();
    expect(c.snapshot?.index).toBe(1800);
    expect(c.hardState?.commit).toBe(2000);
    expect(plain(c.entries)).toEqual(plain(written.slice(1800)));
  });

  it('keeps every segment the snapshot does not cover, whatever --max-wals says', async () => {
    const dir = tmpWalDir();
    const w = await open(dir, 1);
    await w.save({ entries: [], snapshot: { index: 0, term: 0, data: confState }, sync: true });
    for (let i = 1; i <= 1000; i += 20) await w.save({ entries: entries(i, i + 19, 1, 200), sync: true });
    const before = segmentPaths(dir);
    await w.saveSnapshot({ index: 10, term: 1, data: confState });
    await w.compact(10);
    expect(segmentPaths(dir)).toEqual(before);
    await w.close();
  });
});

describe('replay selects segments as etcd does', () => {
  it('reads from the segment holding the last snapshot on: damage in an earlier one goes unread, as in etcd', async () => {
    const dir = tmpWalDir();
    let w = await open(dir, 0);
    await w.saveMetadata(meta);
    const written = entries(1, 1500, 1, 200);
    for (let i = 0; i < written.length; i += 20) await w.save({ entries: written.slice(i, i + 20), hardState: { term: 1, vote: 0n, commit: i + 20 }, sync: true });
    await w.saveSnapshot({ index: 1200, term: 1, data: confState });
    await w.close();
    const segs = segmentPaths(dir);
    // etcd's searchIndex: the last segment whose first index is at or below the snapshot's.
    const selected = segs.reduce((at, s, i) => (firstIndex(s) <= 1200 ? i : at), 0);
    expect(selected).toBeGreaterThan(1);

    // A flipped byte inside the first segment's entries: a full replay refuses it...
    const damaged = segs[0];
    const f = frames(damaged);
    const victim = f[Math.floor(f.length / 2)];
    const bytes = fs.readFileSync(damaged);
    bytes[victim.offset + 40] ^= 0xff;
    fs.writeFileSync(damaged, bytes);
    // ...but it lies before the selected segment, so it is never read (etcd reads from the snapshot's segment too).
    w = await open(dir, 0);
    const c = await w.readAll();
    expect(c.snapshot?.index).toBe(1200);
    expect(c.hardState?.commit).toBe(1500);
    expect(c.metadata && Buffer.from(c.metadata).equals(meta)).toBe(true);
    expect(plain(c.entries)).toEqual(plain(written.slice(1200)));
    // Appending and cutting continue the names from the tail.
    for (let i = 1501; i <= 1800; i += 20) await w.save({ entries: entries(i, i + 19, 1, 200), sync: true });
    await w.close();
    const after = segmentPaths(dir);
    expect(after.length).toBeGreaterThan(segs.length);
    for (let i = 1; i < after.length; i++) expect(firstIndex(after[i])).toBeGreaterThan(firstIndex(after[i - 1]));

    // The same damage in the selected segment is refused with etcd's crc mismatch.
    const inSelected = after[selected];
    const g = frames(inSelected);
    const hit = g[g.length - 2];
    const b2 = fs.readFileSync(inSelected);
    b2[hit.offset + 40] ^= 0xff;
    fs.writeFileSync(inSelected, b2);
    await expect(open(dir, 0)).rejects.toThrow(/wal: crc mismatch: in file/);
  });
});
