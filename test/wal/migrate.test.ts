import * as fs from 'node:fs';
import { Level } from 'level';
import { afterAll, describe, expect, it } from 'vitest';
import { Wal } from '../../server/storage/wal/wal';
import { isLegacyWal } from '../../server/storage/wal/legacy-leveldb';
import { entries, plain, removeTmpDirs, segmentPaths, tmpWalDir } from './support';

/**
 * A data dir from before the segment WAL (a LevelDB under member/wal) is migrated once at start:
 * same entries, hard state, snapshot marker and metadata, the LevelDB gone; a migration cut short
 * between its two renames is finished by the next open.
 */

afterAll(removeTmpDirs);

const u64 = (n: number | bigint): Buffer => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(n));
  return b;
};

/** Writes the old format as the old wal.ts did: 'e'+index → term|type|data, 'h', 's', 'm'. */
async function writeLegacy(dir: string): Promise<void> {
  const db = new Level<Buffer, Buffer>(dir, { keyEncoding: 'buffer', valueEncoding: 'buffer' });
  await db.open();
  const ops: { type: 'put'; key: Buffer; value: Buffer }[] = [];
  // Entries 3..9 are below the snapshot at 9 (retained by snapshot-catchup), 10..30 after it.
  for (const e of entries(3, 30, 4)) ops.push({ type: 'put', key: Buffer.concat([Buffer.from('e'), u64(e.index)]), value: Buffer.concat([u64(e.term), Buffer.from([e.type]), e.data]) });
  ops.push({ type: 'put', key: Buffer.from('h'), value: Buffer.concat([u64(4), u64(2n), u64(28)]) });
  ops.push({ type: 'put', key: Buffer.from('s'), value: Buffer.concat([u64(9), u64(3), Buffer.from('{"voters":["2"]}')]) });
  ops.push({ type: 'put', key: Buffer.from('m'), value: Buffer.from('identity') });
  await db.batch(ops, { sync: true });
  await db.close();
}

async function expectMigrated(dir: string): Promise<void> {
  expect(isLegacyWal(dir)).toBe(false);
  expect(fs.existsSync(`${dir}.leveldb`)).toBe(false);
  expect(fs.existsSync(`${dir}.migrating`)).toBe(false);
  expect(segmentPaths(dir)).toHaveLength(1);
  const w = await Wal.open(dir);
  const c = await w.readAll();
  await w.close();
  expect(Buffer.from(c.metadata ?? []).toString()).toBe('identity');
  expect(c.hardState).toEqual({ term: 4, vote: 2n, commit: 28 });
  expect(c.snapshot?.index).toBe(9);
  expect(c.snapshot?.term).toBe(3);
  expect(Buffer.from(c.snapshot?.data ?? []).toString()).toBe('{"voters":["2"]}');
  expect(plain(c.entries)).toEqual(plain(entries(10, 30, 4)));
}

describe('LevelDB WAL migration', () => {
  it('migrates the old WAL at open and removes it', async () => {
    const dir = tmpWalDir('cairn-wal-migrate-');
    await writeLegacy(dir);
    expect(isLegacyWal(dir)).toBe(true);
    const w = await Wal.open(dir);
    await w.close();
    await expectMigrated(dir);
  });

  it('a migration interrupted between its renames is finished by the next open', async () => {
    const dir = tmpWalDir('cairn-wal-migrate-');
    await writeLegacy(dir);
    // What a crash leaves after "LevelDB parked, new WAL staged, not yet renamed into place".
    const staged = tmpWalDir('cairn-wal-migrate-staged-');
    fs.cpSync(dir, staged, { recursive: true });
    const w = await Wal.open(staged);
    await w.close();
    fs.renameSync(dir, `${dir}.leveldb`);
    fs.renameSync(staged, `${dir}.migrating`);
    const r = await Wal.open(dir);
    await r.close();
    await expectMigrated(dir);
  });

  it('a stale staging dir from a migration cut short before parking is discarded and redone', async () => {
    const dir = tmpWalDir('cairn-wal-migrate-');
    await writeLegacy(dir);
    fs.mkdirSync(`${dir}.migrating`);
    fs.writeFileSync(`${dir}.migrating/0000000000000000-0000000000000000.wal`, Buffer.from('half-written'));
    const w = await Wal.open(dir);
    await w.close();
    await expectMigrated(dir);
  });
});
