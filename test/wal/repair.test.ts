import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Wal, WalCorruptionError } from '../../server/storage/wal/wal';
import { TEST_SEGMENT_BYTES, entries, frames, plain, removeTmpDirs, segmentPaths, tmpWalDir } from './support';

/**
 * Replay's repair rules (etcd's decoder + Repair): a torn write at the end of the last segment (a
 * power cut mid-write) is cut off, and replay returns every record before it, never a damaged one;
 * any other damage refuses to open, naming the file and offset.
 */

afterAll(removeTmpDirs);

const open = (dir: string): Promise<Wal> => Wal.open(dir, { segmentSizeBytes: TEST_SEGMENT_BYTES });

/** A WAL of `n` entries, one synced save each; returns the dir. */
async function walWith(n: number, bytes = 100, segments = 1): Promise<string> {
  const dir = tmpWalDir('cairn-wal-repair-');
  const w = await open(dir);
  for (let i = 1; i <= n; i++) await w.save({ entries: entries(i, i, 1, bytes), sync: true });
  await w.close();
  expect(segmentPaths(dir)).toHaveLength(segments);
  return dir;
}

function copyDir(from: string): string {
  const to = tmpWalDir('cairn-wal-repair-copy-');
  fs.cpSync(from, to, { recursive: true });
  return to;
}

async function expectCorrupt(dir: string, file: string, offset: number, reason: string): Promise<void> {
  const err = await open(dir).then(
    async (w) => {
      await w.close();
      return undefined;
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(WalCorruptionError);
  const c = err as WalCorruptionError;
  expect({ file: c.file, offset: c.offset, reason: c.reason }).toEqual({ file, offset, reason });
  expect(c.message).toBe(`${reason}: in file '${file}' at position: ${offset}`);
}

describe('torn tail', () => {
  // Cut (file truncated) at each byte of the last record; torn (zeros from there on, as
  // preallocated) at each 512-byte sector boundary inside it, since a sector is written whole.
  /** 336 bytes on disk per record: the last of five straddles a sector boundary. */
  const BYTES = 300;
  it('a last segment cut or torn anywhere in its last record reopens with every earlier record', async () => {
    const n = 5;
    const dir = await walWith(n, BYTES);
    const seg = segmentPaths(dir)[0];
    const last = frames(seg).at(-1) as { offset: number; bytes: number };
    expect(Math.floor(last.offset / 512)).toBeLessThan(Math.floor((last.offset + last.bytes - 1) / 512));
    for (let cut = last.offset; cut < last.offset + last.bytes; cut++) {
      const ways = cut === last.offset || cut % 512 === 0 ? (['truncate', 'zero'] as const) : (['truncate'] as const);
      for (const how of ways) {
        const d = copyDir(dir);
        const f = path.join(d, path.basename(seg));
        if (how === 'truncate') fs.truncateSync(f, cut);
        else {
          // The sectors from `cut` on never reached the disk: zeros, as preallocated.
          const size = fs.statSync(f).size;
          const fd = fs.openSync(f, 'r+');
          fs.writeSync(fd, Buffer.alloc(size - cut), 0, size - cut, cut);
          fs.closeSync(fd);
        }
        const w = await open(d);
        const c = await w.readAll();
        expect(plain(c.entries), `${how} at ${cut}`).toEqual(plain(entries(1, n - 1, 1, BYTES)));
        if (!ways.includes('zero' as never) && cut % 31 !== 0) {
          await w.close();
          fs.rmSync(path.dirname(d), { recursive: true, force: true });
          continue;
        }
        // Appending after the repair continues a valid chain.
        await w.save({ entries: entries(n, n, 2, BYTES), sync: true });
        await w.close();
        const again = await open(d);
        expect(plain((await again.readAll()).entries), `${how} at ${cut}, reopened`).toEqual(plain([...entries(1, n - 1, 1, BYTES), ...entries(n, n, 2, BYTES)]));
        await again.close();
        fs.rmSync(path.dirname(d), { recursive: true, force: true });
      }
    }
  });

  it('garbage after a torn record (its later sectors written, an earlier one not) is cut off too', async () => {
    const dir = await walWith(5, 2000);
    const seg = segmentPaths(dir)[0];
    const last = frames(seg).at(-1) as { offset: number; bytes: number };
    // Zero one sector inside the last record only: the rest of it is still on disk.
    const sectorStart = Math.ceil((last.offset + 8) / 512) * 512;
    const fd = fs.openSync(seg, 'r+');
    fs.writeSync(fd, Buffer.alloc(512), 0, 512, sectorStart);
    fs.closeSync(fd);
    const w = await open(dir);
    expect((await w.readAll()).entries.map((e) => e.index)).toEqual([1, 2, 3, 4]);
    await w.close();
    // Repair zeroed everything after the last valid record.
    const buf = fs.readFileSync(seg);
    expect(buf.subarray(last.offset).every((b) => b === 0)).toBe(true);
  });
});

describe('a torn snapshot record', () => {
  // Replay keeps no payload of entries a later snapshot record drops, and learns that record's
  // index by skimming the frames unverified first (replay.ts): when the record turns out torn,
  // those entries survive and must come back whole.
  it('the entries it would have covered reopen with their payloads', async () => {
    const dir = await walWith(5, 300);
    const w0 = await open(dir);
    await w0.readAll();
    await w0.saveSnapshot({ index: 4, term: 1, data: Buffer.alloc(1000, 7) });
    await w0.close();
    const seg = segmentPaths(dir)[0];
    const last = frames(seg).at(-1) as { offset: number; bytes: number };
    // The sectors after the record's first one never reached the disk (its head, with the index, did).
    const sectorStart = Math.ceil((last.offset + 8 + 8 + 17) / 512) * 512;
    expect(sectorStart).toBeLessThan(last.offset + last.bytes);
    const fd = fs.openSync(seg, 'r+');
    fs.writeSync(fd, Buffer.alloc(last.offset + last.bytes - sectorStart), 0, last.offset + last.bytes - sectorStart, sectorStart);
    fs.closeSync(fd);
    const w = await open(dir);
    const c = await w.readAll();
    expect(c.snapshot).toBeUndefined();
    expect(plain(c.entries)).toEqual(plain(entries(1, 5, 1, 300)));
    await w.close();
  });

  it('an intact one drops the entries it covers and keeps the rest whole', async () => {
    const dir = await walWith(5, 300);
    const w0 = await open(dir);
    await w0.readAll();
    await w0.saveSnapshot({ index: 3, term: 1, data: Buffer.alloc(1000, 7) });
    await w0.save({ entries: entries(6, 7, 1, 300), sync: true });
    await w0.close();
    const w = await open(dir);
    const c = await w.readAll();
    expect(c.snapshot?.index).toBe(3);
    expect(plain(c.entries)).toEqual(plain(entries(4, 7, 1, 300)));
    await w.close();
  });
});

describe('damage refuses to open', () => {
  it('a flipped byte in a middle record: wal: crc mismatch, naming the file and the record offset', async () => {
    const dir = await walWith(20);
    const seg = segmentPaths(dir)[0];
    const victim = frames(seg)[8];
    const buf = fs.readFileSync(seg);
    buf[victim.offset + 40] ^= 0x5a;
    fs.writeFileSync(seg, buf);
    await expectCorrupt(dir, seg, victim.offset, 'wal: crc mismatch');
  });

  it('a flipped byte in the last record is damage, not a torn write (no zero sector in it)', async () => {
    const dir = await walWith(20);
    const seg = segmentPaths(dir)[0];
    const victim = frames(seg).at(-1) as { offset: number };
    const buf = fs.readFileSync(seg);
    buf[victim.offset + 30] ^= 0x01;
    fs.writeFileSync(seg, buf);
    await expectCorrupt(dir, seg, victim.offset, 'wal: crc mismatch');
  });

  it('a torn record in a segment that is not the last is damage', async () => {
    const dir = await walWith(300, 600, 3);
    const [first] = segmentPaths(dir);
    const fr = frames(first);
    const victim = fr[fr.length - 1];
    const fd = fs.openSync(first, 'r+');
    fs.writeSync(fd, Buffer.alloc(victim.bytes - 8), 0, victim.bytes - 8, victim.offset + 8);
    fs.closeSync(fd);
    await expectCorrupt(dir, first, victim.offset, 'wal: crc mismatch');
  });

  it('a segment missing between two others', async () => {
    const dir = await walWith(300, 600, 3);
    const segs = segmentPaths(dir);
    fs.rmSync(segs[1]);
    await expectCorrupt(dir, segs[2], 0, `wal: file sequence numbers do not increase continuously (after ${path.basename(segs[0])})`);
  });

  it('a non-last segment cut short: the next segment breaks the crc chain', async () => {
    const dir = await walWith(300, 600, 3);
    const segs = segmentPaths(dir);
    const fr = frames(segs[0]);
    fs.truncateSync(segs[0], fr[fr.length - 1].offset);
    await expectCorrupt(dir, segs[1], 0, 'wal: crc mismatch');
  });
});
