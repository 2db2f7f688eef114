import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readDb, removeSnapDbFiles, saveDbFrom, snapDbPath } from '../../server/etcdserver/snapshot-db';

/** The spooled snapshot file (member/snap/<index>.snap.db): written as received, read back in chunks, checked. */

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-snapdb-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

async function* source(chunks: number, perChunk: number): AsyncGenerator<[Buffer, Buffer][]> {
  for (let c = 0; c < chunks; c++) {
    yield Array.from({ length: perChunk }, (_, i): [Buffer, Buffer] => [Buffer.from(`key/${c}-${i}`), Buffer.alloc(100 + i, c)]);
  }
}

async function readAll(file: string): Promise<[string, Buffer][]> {
  const out: [string, Buffer][] = [];
  for await (const chunk of readDb(file)) for (const [k, v] of chunk) out.push([k.toString(), v]);
  return out;
}

describe('snapshot db file', () => {
  it("is named as etcd names it, and reads back every entry in order (values stay valid across the reader's window)", async () => {
    const saved = await saveDbFrom(dir, 0x1234, source(300, 50));
    expect(saved.file).toBe(path.join(dir, '0000000000001234.snap.db'));
    expect(saved.file).toBe(snapDbPath(dir, 0x1234));
    expect(fs.statSync(saved.file).size).toBe(saved.bytes);
    expect(fs.readdirSync(dir).filter((n) => n.endsWith('.tmp'))).toEqual([]);
    const got = await readAll(saved.file);
    expect(got).toHaveLength(300 * 50);
    expect(got[0][0]).toBe('key/0-0');
    // An entry of the first record, compared after the whole file was read (1 MiB window reused).
    expect(got[49][1].equals(Buffer.alloc(149, 0))).toBe(true);
    expect(got[got.length - 1][1].equals(Buffer.alloc(149, 299))).toBe(true);
  });

  it('refuses a damaged or truncated file', async () => {
    const { file } = await saveDbFrom(dir, 7, source(5, 10));
    const bytes = fs.readFileSync(file);
    const flipped = Buffer.from(bytes);
    flipped[bytes.length - 20] ^= 0xff;
    fs.writeFileSync(file, flipped);
    await expect(readAll(file)).rejects.toThrow(/crc mismatch/);
    fs.writeFileSync(file, bytes.subarray(0, bytes.length - 9));
    await expect(readAll(file)).rejects.toThrow();
  });

  it('a failing source leaves no file', async () => {
    async function* failing(): AsyncGenerator<[Buffer, Buffer][]> {
      yield [[Buffer.from('k'), Buffer.from('v')]];
      throw new Error('stream cancelled');
    }
    await expect(saveDbFrom(dir, 9, failing())).rejects.toThrow('stream cancelled');
    expect(fs.existsSync(snapDbPath(dir, 9))).toBe(false);
    expect(fs.readdirSync(dir).filter((n) => n.startsWith(path.basename(snapDbPath(dir, 9))))).toEqual([]);
  });

  it('files left by a previous run are removed, and nothing else', () => {
    fs.writeFileSync(path.join(dir, '00000000000000aa.snap.db'), 'x');
    fs.writeFileSync(path.join(dir, '00000000000000bb.snap.db.1-1.tmp'), 'x');
    fs.mkdirSync(path.join(dir, 'db'), { recursive: true });
    removeSnapDbFiles(dir);
    expect(fs.readdirSync(dir)).toEqual(['db']);
  });
});
