import { existsSync, promises as fs } from 'node:fs';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { Backend, type Entry } from './backend';
import { INSTALL_BATCH_BYTES } from './limits';
import { removeTempDirs, tempDir } from './test-helpers';

/**
 * Backend.replaceAll, a leader's snapshot installed in bounded batches into a new LevelDB that is
 * swapped in once complete, and what Backend.open does with what a crash left behind.
 */

const open: Backend[] = [];
async function openAt(path: string): Promise<Backend> {
  const be = await Backend.open(path);
  open.push(be);
  return be;
}
afterEach(async () => {
  for (const be of open.splice(0)) await be.close().catch(() => undefined);
});
afterAll(removeTempDirs);

async function contents(be: Backend): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for await (const chunk of be.allEntries()) for (const [k, v] of chunk) if (!be.isSyncMarker(k)) out.set(k.toString(), v.toString());
  return out;
}

function entry(k: string, v: string): Entry {
  return [Buffer.from(k), Buffer.from(v)];
}

describe('Backend.replaceAll', () => {
  it('replaces every bucket with the new entries, written across several batches, and keeps them after a reopen', async () => {
    const path = tempDir();
    const be = await openAt(path);
    be.bucket('key').put('old', Buffer.from('x'));
    be.bucket('members').put('m1', Buffer.from('gone'));
    await be.forceCommit({ sync: true });
    // More than one INSTALL_BATCH_BYTES batch of values, yielded lazily.
    const value = 'v'.repeat(64 * 1024);
    const n = Math.ceil((3 * INSTALL_BATCH_BYTES) / value.length);
    async function* chunks(): AsyncGenerator<Entry[]> {
      for (let i = 0; i < n; i += 10) yield Array.from({ length: Math.min(10, n - i) }, (_, j) => entry(`key/${String(i + j).padStart(6, '0')}`, value));
      yield [entry('meta/consistent_index', '8bytes!!')];
    }
    await be.replaceAll(chunks());
    const got = await contents(be);
    expect(got.size).toBe(n + 1);
    expect(got.has('key/old')).toBe(false);
    expect(got.has('members/m1')).toBe(false);
    expect(await be.bucket('key').get('000001')).toEqual(Buffer.from(value));
    for (const suffix of ['.installing', '.ready', '.old']) expect(existsSync(path + suffix)).toBe(false);
    await be.close();
    const again = await openAt(path);
    expect((await contents(again)).size).toBe(n + 1);
  });

  it('reads see the old contents while the new ones are being written', async () => {
    const be = await openAt(tempDir());
    be.bucket('key').put('a', Buffer.from('old'));
    await be.forceCommit();
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let reachedGate!: () => void;
    const atGate = new Promise<void>((r) => (reachedGate = r));
    async function* chunks(): AsyncGenerator<Entry[]> {
      yield [entry('key/a', 'new-1')];
      reachedGate();
      await gate;
      yield [entry('key/b', 'new-2')];
    }
    const installing = be.replaceAll(chunks());
    await atGate;
    expect((await be.bucket('key').get('a'))?.toString()).toBe('old');
    expect(await be.bucket('key').get('b')).toBeUndefined();
    release();
    await installing;
    expect((await be.bucket('key').get('a'))?.toString()).toBe('new-1');
    expect((await be.bucket('key').get('b'))?.toString()).toBe('new-2');
  });

  it('a failing source leaves the old contents in place and no staging directory', async () => {
    const path = tempDir();
    const fatal: unknown[] = [];
    const be = await Backend.open(path, { onFatal: (e) => fatal.push(e) });
    open.push(be);
    be.bucket('key').put('a', Buffer.from('old'));
    await be.forceCommit();
    async function* chunks(): AsyncGenerator<Entry[]> {
      yield [entry('key/a', 'new')];
      throw new Error('the snapshot file is damaged');
    }
    await expect(be.replaceAll(chunks())).rejects.toThrow();
    expect(fatal).toHaveLength(1);
    expect(existsSync(path + '.installing')).toBe(false);
    expect((await be.bucket('key').get('a'))?.toString()).toBe('old');
  });
});

describe('Backend.open after a crash during replaceAll', () => {
  /** A backend directory holding one key, as `path`. */
  async function backendWith(path: string, value: string): Promise<void> {
    const be = await Backend.open(path);
    be.bucket('key').put('a', Buffer.from(value));
    await be.close();
  }

  it('discards an unfinished staging directory: the old contents stand', async () => {
    const path = tempDir();
    await backendWith(path, 'old');
    await backendWith(path + '.installing', 'half-written');
    const be = await openAt(path);
    expect((await be.bucket('key').get('a'))?.toString()).toBe('old');
    expect(existsSync(path + '.installing')).toBe(false);
  });

  it('swaps in a complete new database whether or not the old one was moved aside yet', async () => {
    const before = tempDir();
    await backendWith(before, 'old');
    await backendWith(before + '.ready', 'new');
    expect((await (await openAt(before)).bucket('key').get('a'))?.toString()).toBe('new');

    const between = tempDir();
    await backendWith(between + '.old', 'old');
    await backendWith(between + '.ready', 'new');
    const be = await openAt(between);
    expect((await be.bucket('key').get('a'))?.toString()).toBe('new');
    for (const suffix of ['.ready', '.old']) expect(existsSync(between + suffix)).toBe(false);
  });

  it('removes the old database left after the swap', async () => {
    const path = tempDir();
    await backendWith(path, 'new');
    await backendWith(path + '.old', 'old');
    const be = await openAt(path);
    expect((await be.bucket('key').get('a'))?.toString()).toBe('new');
    expect(await fs.readdir(path + '.old').catch(() => 'gone')).toBe('gone');
  });
});
