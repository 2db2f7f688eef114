import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { connect, must } from '../support/grpc-client';
import { startMember, type Member } from '../support/member';
import { freePorts } from '../support/ports';
import { fatalLines, killIfRunning, spawnCairn, tail, waitExit, waitFor, type Proc } from './process';

/**
 * Disk full: a member whose data dir (a small tmpfs) fills up under write load stops with one
 * fatal line naming the failed write and ENOSPC, instead of serving on with a store it can no
 * longer persist (etcd panics / Fatals on a failed WAL save or bbolt commit). Everything it
 * acknowledged was fsynced first, so a member started on a copy of the dir on a normal disk has
 * every acknowledged write. Two disks fill: the whole data dir's (writes inside the WAL's
 * preallocated segment cannot fail for space, so the backend or the WAL's next segment fails), and the backend's alone (member/snap on the tmpfs, the WAL on a normal disk), where
 * the first failure is the backend's background, unsynced batch commit that no caller waits for.
 *
 * Needs root to mount the tmpfs (CI runs as root): without it the test fails, loudly.
 */

/**
 * Small enough to fill in seconds, large enough for the backend's LevelDB to open and take writes,
 * and, for the whole data dir, for the WAL's first segment (preallocated to 64 MB) besides.
 */
const TMPFS_SIZE: Record<Full, string> = { 'data dir': '88m', backend: '24m' };
/** Incompressible values (LevelDB compresses tables with snappy), so the disk fills quickly. */
const VALUE_BYTES = 2048;
const WRITERS = 8;
/** Load until the member is gone; the disk fills long before this. */
const FILL_DEADLINE_MS = 90_000;
/** From the fatal line to the process being gone (the brief: "exits within a second"). */
const FATAL_TO_EXIT_MS = 1_000;
const PUT_DEADLINE_MS = 3_000;
const RANGE_PAGE = 200;
const READY_TIMEOUT_MS = 20_000;
const PREFIX = 'full/';
const PREFIX_END = 'full0';

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

const mountPoints = new Set<string>();
const procs: Proc[] = [];
const members: Member[] = [];
const tmpDirs: string[] = [];
afterAll(async () => {
  for (const p of procs) await killIfRunning(p);
  for (const m of members) await m.cleanup();
  for (const mnt of mountPoints) unmount(mnt);
  if (process.env.CAIRN_TEST_KEEP_TMP !== '1') for (const d of tmpDirs) fs.rmSync(d, { recursive: true, force: true });
});

function unmount(mnt: string): void {
  try {
    execFileSync('umount', [mnt]);
  } catch {
    // still busy (a process holding a file): detach it now, freed once the last user is gone
    execFileSync('umount', ['-l', mnt]);
  }
  mountPoints.delete(mnt);
}

/** Which part of the data dir lives on the small disk. */
type Full = 'data dir' | 'backend';

const CASES: ReadonlyArray<{ full: Full; causes: readonly string[] }> = [
  { full: 'data dir', causes: ['wal write failed', 'backend write failed'] },
  { full: 'backend', causes: ['backend write failed'] },
];

describe('disk full', () => {
  it.each(CASES)('$full: one fatal ENOSPC line, exit 1, no acknowledged write lost', async ({ full, causes }) => {
    if (typeof process.getuid === 'function' && process.getuid() !== 0) {
      throw new Error('test/failstop/disk-full.test.ts must run as root: it mounts a tmpfs under the data dir (CI runs as root)');
    }
    const base = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-failstop-full-'));
    tmpDirs.push(base);
    const dataDir = path.join(base, 'data');
    const mnt = full === 'data dir' ? dataDir : path.join(dataDir, 'member', 'snap');
    fs.mkdirSync(mnt, { recursive: true });
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${TMPFS_SIZE[full]}`, 'tmpfs', mnt]);
    mountPoints.add(mnt);

    const [clientPort, peerPort] = await freePorts(2);
    const clientUrl = `http://127.0.0.1:${clientPort}`;
    const peerUrl = `http://127.0.0.1:${peerPort}`;
    const proc = spawnCairn(
      [
        '--name', 'full', '--data-dir', dataDir,
        '--listen-client-urls', clientUrl, '--advertise-client-urls', clientUrl,
        '--listen-peer-urls', peerUrl, '--initial-advertise-peer-urls', peerUrl, '--initial-cluster', `full=${peerUrl}`,
      ],
      path.join(base, 'member.log'),
      base,
    );
    procs.push(proc);
    const m = proc;
    await waitFor(() => !m.running || m.log().includes('elected leader'), READY_TIMEOUT_MS, () => `member not ready; log:\n${tail(m.log())}`);
    expect(m.running, `member exited during start:\n${tail(m.log())}`).toBe(true);
    const endpoint = `127.0.0.1:${clientPort}`;
    const acked = new Map<string, string>();
    let seq = 0;
    let firstFailureAt: number | undefined;
    const writer = async (): Promise<void> => {
      const c = connect(endpoint, { defaultDeadlineMs: PUT_DEADLINE_MS });
      try {
        while (m.running) {
          const key = `${PREFIX}${String(seq++).padStart(8, '0')}`;
          const value = randomBytes(VALUE_BYTES);
          const r = await c.put({ key: Buffer.from(key), value });
          if (r.err) {
            // Unknown outcome (the member may have died with it in flight): not counted.
            firstFailureAt ??= Date.now();
            if (!m.running) break;
            continue;
          }
          acked.set(key, sha(value));
        }
      } finally {
        c.close();
      }
    };
    const loadStart = Date.now();
    const load = Promise.all(Array.from({ length: WRITERS }, writer));
    const { code, signal } = await waitExit(m, FILL_DEADLINE_MS);
    const exitedAt = m.exitedAt ?? Date.now();
    await load;
    expect(signal, tail(m.log())).toBeNull();
    expect(code, tail(m.log())).toBe(1);

    const log = m.log();
    const fatal = fatalLines(log);
    expect(fatal, `fatal lines in:\n${tail(log)}`).toHaveLength(1);
    expect(causes).toContain(fatal[0].cause);
    expect(fatal[0].msg).toMatch(/No space left on device|ENOSPC/);
    const fatalAt = Number(fatal[0].time);
    expect(exitedAt - fatalAt, 'fatal line to exit').toBeLessThanOrEqual(FATAL_TO_EXIT_MS);
    // A member that fails to persist and keeps answering would show client errors long before exit.
    if (firstFailureAt !== undefined) expect(exitedAt - firstFailureAt).toBeLessThanOrEqual(PUT_DEADLINE_MS + FATAL_TO_EXIT_MS);
    // Nothing after the fatal line: the member did not go on.
    expect(log.trimEnd().split('\n').pop()).toContain('"level":60');
    expect(acked.size).toBeGreaterThan(0);
    console.log(`${full} full after ${exitedAt - loadStart} ms, ${acked.size} writes acknowledged: ${fatal[0].msg}`);

    // A copy of the full data dir on a normal disk holds every acknowledged write.
    const copy = path.join(base, 'copy');
    fs.cpSync(dataDir, copy, { recursive: true });
    unmount(mnt);
    const restarted = await startMember({ kind: 'cairn', dataDir: copy });
    members.push(restarted);
    const c = connect(restarted.endpoint);
    const found = new Map<string, string>();
    try {
      let from = Buffer.from(PREFIX);
      for (;;) {
        const r = must(await c.range({ key: from, range_end: Buffer.from(PREFIX_END), limit: RANGE_PAGE }));
        for (const kv of r.kvs as Array<{ key: Buffer; value: Buffer }>) found.set(kv.key.toString(), sha(kv.value));
        if (!r.more) break;
        from = Buffer.concat([r.kvs[r.kvs.length - 1].key as Buffer, Buffer.from([0])]);
      }
    } finally {
      c.close();
    }
    const missing = [...acked.keys()].filter((k) => found.get(k) !== acked.get(k));
    expect(missing, 'acknowledged writes missing or different after the disk filled').toEqual([]);
  });
});
