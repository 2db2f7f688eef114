import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Backend } from '../../mvcc/backend';
import { Wal } from '../../server/storage/wal/wal';
import { REPO_ROOT } from '../support/member';

/**
 * The power-cut layer of cluster-tests (CAIRN_TESTING_LOSE_UNSYNCED_WRITES) must really lose what
 * was not fsynced when the process is SIGKILLed, and nothing that was: otherwise the harness's
 * `--lose-unsynced` runs would prove nothing. A child process writes, then kills itself; the test
 * reopens the stores. Uses the build in dist/ (`npm test` builds first).
 */

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

function runChild(script: string): void {
  const r = spawnSync(process.execPath, ['-e', script], { cwd: REPO_ROOT, encoding: 'utf8', timeout: 30_000 });
  expect(r.signal, r.stderr).toBe('SIGKILL');
}

/** The backend children's batch interval, and how long the layer's test holds a write: 20 of them. */
const BATCH_INTERVAL_MS = 5;
const HOLD_MS = 20 * BATCH_INTERVAL_MS;

const entry = (index: number): string => `{ term: 1, index: ${index}, type: 0, data: Buffer.from('e${index}') }`;

describe('the lose-unsynced fault layer', () => {
  it('WAL: a kill loses unsynced batches and keeps everything up to the last synced one', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-lose-wal-'));
    dirs.push(dir);
    runChild(`
      const { Wal } = require('./dist/server/storage/wal/wal.js');
      (async () => {
        const wal = await Wal.open(${JSON.stringify(dir)}, { faults: { loseUnsyncedWrites: true } });
        await wal.save({ entries: [${entry(1)}], sync: false });
        await wal.save({ entries: [${entry(2)}], hardState: { term: 1, vote: 0n, commit: 2 }, sync: true });
        await wal.save({ entries: [${entry(3)}], hardState: { term: 1, vote: 0n, commit: 3 }, sync: false });
        process.kill(process.pid, 'SIGKILL');
      })();
    `);
    const wal = await Wal.open(dir);
    const c = await wal.readAll();
    await wal.close();
    // Entry 1 was held, then written ahead of the synced batch; entry 3 and commit 3 were lost.
    expect(c.entries.map((e) => e.index)).toEqual([1, 2]);
    expect(c.hardState?.commit).toBe(2);
  });

  it('WAL without the layer: the same kill keeps the unsynced batches (written, in the page cache)', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-keep-wal-'));
    dirs.push(dir);
    runChild(`
      const { Wal } = require('./dist/server/storage/wal/wal.js');
      (async () => {
        const wal = await Wal.open(${JSON.stringify(dir)});
        await wal.save({ entries: [${entry(1)}], hardState: { term: 1, vote: 0n, commit: 1 }, sync: true });
        await wal.save({ entries: [${entry(2)}], hardState: { term: 1, vote: 0n, commit: 2 }, sync: false });
        process.kill(process.pid, 'SIGKILL');
      })();
    `);
    const wal = await Wal.open(dir);
    const c = await wal.readAll();
    await wal.close();
    expect(c.entries.map((e) => e.index)).toEqual([1, 2]);
    expect(c.hardState?.commit).toBe(2);
  });

  it('backend: a kill loses batched unsynced flushes and keeps what a synced commit wrote', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-lose-db-'));
    dirs.push(dir);
    runChild(`
      const { Backend } = require('./dist/mvcc/backend.js');
      (async () => {
        const b = await Backend.open(${JSON.stringify(dir)}, { batchIntervalMs: ${BATCH_INTERVAL_MS}, loseUnsyncedWrites: true });
        const kv = b.bucket('kv');
        kv.put('synced', Buffer.from('1'));
        await b.forceCommit({ sync: true });
        kv.put('unsynced', Buffer.from('2'));
        // Time-based, as nothing can be awaited: the layer's background commit does nothing
        // observable. 20 batch intervals give the timer every chance to reach LevelDB.
        await new Promise((r) => setTimeout(r, ${HOLD_MS}));
        if ((await kv.get('unsynced'))?.toString() !== '2') throw new Error('reads must see held writes');
        process.kill(process.pid, 'SIGKILL');
      })().catch((e) => { console.error(e); process.exit(1); });
    `);
    const b = await Backend.open(dir);
    const kv = b.bucket('kv');
    expect((await kv.get('synced'))?.toString()).toBe('1');
    expect(await kv.get('unsynced')).toBeUndefined();
    await b.close();
  });

  it('without the layer, the same kill keeps the batched writes (the page cache survives SIGKILL)', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-keep-db-'));
    dirs.push(dir);
    runChild(`
      const { Backend } = require('./dist/mvcc/backend.js');
      (async () => {
        let committed;
        const commit = new Promise((r) => (committed = r));
        const b = await Backend.open(${JSON.stringify(dir)}, { batchIntervalMs: ${BATCH_INTERVAL_MS}, metrics: { backendCommit: () => committed() } });
        b.bucket('kv').put('unsynced', Buffer.from('2'));
        await commit; // the timer's (unsynced) commit reached LevelDB
        process.kill(process.pid, 'SIGKILL');
      })();
    `);
    const b = await Backend.open(dir);
    expect((await b.bucket('kv').get('unsynced'))?.toString()).toBe('2');
    await b.close();
  });
});
