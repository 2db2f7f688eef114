import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Wal } from '../../server/storage/wal/wal';
import { REPO_ROOT } from '../support/member';
import { fatalLines } from '../failstop/process';

/**
 * A WAL write that fails stops the process (etcd's raftNode: lg.Fatal on a failed Save): here the
 * disk (a small tmpfs) has room for the first segment but not the next one, so the cut fails with
 * ENOSPC. The child logs one fatal line naming the cause and exits 1; every save it acknowledged
 * before is still in the WAL. Needs root for the mount (CI runs as root).
 */

const SEGMENT_BYTES = 128 * 1024;
/** Room for one segment and a little, not for the next one. */
const TMPFS_SIZE = '192k';
const ENTRY_BYTES = 1024;

const mounts: string[] = [];
const dirs: string[] = [];
afterAll(() => {
  for (const m of mounts) execFileSync('umount', ['-l', m]);
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

describe('WAL write failure', () => {
  it('fail-stops with one fatal "wal write failed" line (ENOSPC), keeping every acknowledged save', async () => {
    if (typeof process.getuid === 'function' && process.getuid() !== 0) throw new Error('test/wal/fault.test.ts must run as root: it mounts a tmpfs (CI runs as root)');
    const base = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-wal-fault-'));
    dirs.push(base);
    const mnt = path.join(base, 'disk');
    fs.mkdirSync(mnt);
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${TMPFS_SIZE}`, 'tmpfs', mnt]);
    mounts.push(mnt);
    const dir = path.join(mnt, 'wal');
    const ackFile = path.join(base, 'acked');
    const r = spawnSync(
      process.execPath,
      [
        '-e',
        `
        const fs = require('node:fs');
        const { Wal } = require('./dist/server/storage/wal/wal.js');
        (async () => {
          const wal = await Wal.open(${JSON.stringify(dir)}, { segmentSizeBytes: ${SEGMENT_BYTES} });
          for (let i = 1; ; i++) {
            await wal.save({ entries: [{ term: 1, index: i, type: 0, data: Buffer.alloc(${ENTRY_BYTES}, i % 251) }], sync: true });
            fs.writeFileSync(${JSON.stringify(ackFile)}, String(i));
          }
        })().catch((e) => { console.error('unexpected rejection', e); process.exit(3); });
        `,
      ],
      { cwd: REPO_ROOT, encoding: 'utf8', timeout: 30_000 },
    );
    expect(r.status, r.stderr).toBe(1);
    const fatal = fatalLines(r.stderr);
    expect(fatal, r.stderr).toHaveLength(1);
    expect(fatal[0]).toMatchObject({ cause: 'wal write failed', code: 'ENOSPC' });
    expect(fatal[0].msg).toMatch(/^wal write failed: ENOSPC.*; stopping member$/);

    const acked = Number(fs.readFileSync(ackFile, 'utf8'));
    // A segment's worth of saves went through before the disk was full.
    expect(acked).toBeGreaterThan(SEGMENT_BYTES / 2 / ENTRY_BYTES);
    const w = await Wal.open(dir, { segmentSizeBytes: SEGMENT_BYTES });
    const c = await w.readAll();
    await w.close();
    const got = c.entries.map((e) => e.index);
    expect(got.slice(0, acked)).toEqual(Array.from({ length: acked }, (_, i) => i + 1));
    for (const e of c.entries) expect(Buffer.from(e.data).equals(Buffer.alloc(ENTRY_BYTES, e.index % 251))).toBe(true);
  });
});
