import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Backend } from '../../mvcc/backend';
import { ErrBackend } from '../../mvcc/errors';
import { waitFor } from './process';

/**
 * The backend's own contract (mvcc/ knows nothing of fail-stop): a LevelDB write that fails, in a
 * background batch commit on the timer where no caller waits, reaches the `onFatal` callback it was
 * opened with, and every later write is refused. A real full disk (a tmpfs; root, as CI) makes it
 * fail, so nothing about LevelDB is faked.
 */

const TMPFS_SIZE = '8m';
const VALUE_BYTES = 64 * 1024;
const BATCH_INTERVAL_MS = 20;
const FILL_DEADLINE_MS = 30_000;
/** Writes staged between checks; small against the pending batch, so commits run in the background. */
const WRITES_PER_ROUND = 8;

let mnt: string | undefined;
let backend: Backend | undefined;
afterAll(async () => {
  await backend?.close().catch(() => undefined);
  if (mnt) {
    execFileSync('umount', ['-l', mnt]);
    fs.rmSync(path.dirname(mnt), { recursive: true, force: true });
  }
});

describe('backend onFatal', () => {
  it('receives the ENOSPC of a background batch commit, and the backend refuses writes after it', async () => {
    if (typeof process.getuid === 'function' && process.getuid() !== 0) {
      throw new Error('test/failstop/backend-onfatal.test.ts must run as root: it mounts a tmpfs (CI runs as root)');
    }
    const base = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-failstop-backend-'));
    mnt = path.join(base, 'tmpfs');
    fs.mkdirSync(mnt);
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${TMPFS_SIZE}`, 'tmpfs', mnt]);
    const fatal: unknown[] = [];
    // Each round waits for the timer's commit of what it staged to end, either way.
    let roundEnded: (() => void) | undefined;
    const endRound = (): void => roundEnded?.();
    const b = await Backend.open(path.join(mnt, 'db'), {
      batchIntervalMs: BATCH_INTERVAL_MS,
      onFatal: (e) => {
        fatal.push(e);
        endRound();
      },
      metrics: { backendCommit: endRound },
    });
    backend = b;
    const bucket = b.bucket('key');
    let seq = 0;
    let refused: unknown;
    const deadline = Date.now() + FILL_DEADLINE_MS;
    // Stage writes only (no forceCommit): the timer commits them, and nobody awaits that commit.
    while (fatal.length === 0 && Date.now() < deadline) {
      const ended = new Promise<void>((r) => (roundEnded = r));
      try {
        for (let i = 0; i < WRITES_PER_ROUND; i++) bucket.put(`k${seq++}`, randomBytes(VALUE_BYTES));
      } catch (e) {
        refused = e;
        break;
      }
      await ended;
    }
    await waitFor(() => fatal.length > 0, FILL_DEADLINE_MS, () => `onFatal never called after ${seq} writes`);
    expect(fatal).toHaveLength(1);
    expect(String((fatal[0] as Error).message)).toMatch(/No space left on device/);
    // Refused from now on, synchronously, with the same failure.
    expect(() => bucket.put('after', Buffer.from('x'))).toThrow(ErrBackend);
    if (refused !== undefined) expect(refused).toBeInstanceOf(ErrBackend);
    await expect(b.forceCommit({ sync: true })).rejects.toBeInstanceOf(ErrBackend);
    expect(fatal).toHaveLength(1);
  });
});
