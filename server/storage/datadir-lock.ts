import * as fs from 'node:fs';
import * as path from 'node:path';
import { Level } from 'level';

/**
 * One process per data dir. Two members writing one WAL and one backend corrupt both, so etcd
 * holds a file lock on its data dir's files for as long as it runs: bbolt flocks member/snap/db and
 * the WAL locks its segment files. A second etcd 3.4 on a data dir in use logs (capnslog)
 *
 *   etcdserver: another etcd process is using "<data-dir>/member/snap/db" and holds the file lock,
 *   or loading backend file is taking >10 seconds
 *
 * (zap: "db file is flocked by another process, or taking too long", path=<that file>). etcd then
 * blocks in bbolt's flock until the first process exits; cairn instead exits at once with that
 * first clause as its one fatal line (see DataDirLockedError), so a supervisor or an operator sees
 * the conflict instead of a member that hangs before serving.
 *
 * The lock must go away with the process however it dies, SIGKILL included, or a crashed member
 * could never be restarted without someone deleting a file by hand. Node has no flock(2) or
 * fcntl(2); a lock file holding a PID goes stale after a crash and PIDs are reused (a restarted
 * container is PID 1 again), and the maintained npm packages either need a native build of their
 * own (fs-ext) or are mkdir-plus-mtime locks that outlive a SIGKILL for their stale period
 * (proper-lockfile). LevelDB, which cairn already links, takes exactly the kernel lock wanted: it
 * opens `<db>/LOCK` with fcntl(F_SETLK) (util/env_posix.cc LockFile), which the kernel drops when
 * the process exits or is killed, and it refuses a second open inside one process too (its
 * PosixLockTable), so two embedded members in one Node process conflict as well. The lock is a
 * small LevelDB of its own, <data-dir>/member/lock, that nothing writes to, rather than the WAL's
 * or the backend's LOCK: it is taken before either is opened, so the second process fails before
 * it touches them, and it does not depend on how or in which order the server opens them.
 */

/** Where the lock lives, relative to the data dir. */
export const DATA_DIR_LOCK_PATH = path.join('member', 'lock');

/** The file etcd's message names (bbolt's flocked backend file). */
const ETCD_LOCKED_FILE = path.join('member', 'snap', 'db');

/** classic-level's code for "another process (or instance) holds this database's LOCK". */
const LEVEL_LOCKED = 'LEVEL_LOCKED';

/** etcd 3.4's wording, up to where it says it will wait (cairn does not wait; see above). */
export function dataDirLockedMessage(dataDir: string): string {
  return `another etcd process is using "${path.join(dataDir, ETCD_LOCKED_FILE)}" and holds the file lock`;
}

/** The data dir is in use by another process (or another member in this one). */
export class DataDirLockedError extends Error {
  constructor(
    readonly dataDir: string,
    readonly lockPath: string,
    override readonly cause: unknown,
  ) {
    super(dataDirLockedMessage(dataDir));
    this.name = 'DataDirLockedError';
  }
}

export interface DataDirLock {
  readonly dataDir: string;
  /** Releases the lock (idempotent); a process that dies releases it without this. */
  release(): Promise<void>;
}

function errorCode(e: unknown): string | undefined {
  if (typeof e !== 'object' || e === null) return undefined;
  const code = (e as { code?: unknown }).code;
  return typeof code === 'string' ? code : undefined;
}

/**
 * Takes the data dir's exclusive lock, creating the dir if needed. Rejects with DataDirLockedError
 * at once (no waiting) if another process or member holds it.
 */
export async function acquireDataDirLock(dataDir: string): Promise<DataDirLock> {
  const lockPath = path.join(dataDir, DATA_DIR_LOCK_PATH);
  // etcd creates its data dir with 0700 (fileutil.PrivateDirMode).
  fs.mkdirSync(lockPath, { recursive: true, mode: 0o700 });
  const db = new Level<Buffer, Buffer>(lockPath, { keyEncoding: 'buffer', valueEncoding: 'buffer' });
  try {
    await db.open();
  } catch (e) {
    // abstract-level wraps the open failure: LEVEL_DATABASE_NOT_OPEN, with the reason as `cause`.
    const cause = (e as { cause?: unknown }).cause;
    if (errorCode(cause) === LEVEL_LOCKED || errorCode(e) === LEVEL_LOCKED) throw new DataDirLockedError(dataDir, lockPath, cause ?? e);
    throw e;
  }
  let released = false;
  return {
    dataDir,
    async release(): Promise<void> {
      if (released) return;
      released = true;
      await db.close();
    },
  };
}
