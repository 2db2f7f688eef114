import type { Logger } from 'pino';

/**
 * Fail-stop (etcd panics, or `lg.Fatal`s, on these): a member that can no longer keep its promises
 * (a WAL or backend write or fsync failed, the disk is full, apply threw, Raft found a broken
 * invariant while stepping a message, a snapshot could not be installed) must not linger
 * half-alive, serving reads from a state it can no longer advance or persist. It logs one fatal
 * line naming the cause and exits non-zero at once; a supervisor restarts it from its data dir,
 * whose durable contents are intact because nothing was acknowledged that was not fsynced.
 */

/** Exit status of a member that stopped on a fatal error (etcd's panic exits 2, Fatal exits 1). */
export const FATAL_EXIT_CODE = 1;

/** Causes, named so the fatal line says which promise could not be kept. */
export type FatalCause =
  | 'wal write failed'
  | 'backend write failed'
  | 'apply failed'
  | 'raft invariant violated'
  | 'snapshot install failed'
  | 'unhandled rejection'
  | 'uncaught exception';

let logger: Logger | undefined;
let exiting = false;

/** The logger the fatal line goes to (the member's); set once by the composition root. */
export function setFatalLogger(log: Logger): void {
  logger = log;
}

function describe(err: unknown): { message: string; code?: string; stack?: string } {
  if (err instanceof Error) return { message: err.message, code: (err as NodeJS.ErrnoException).code, stack: err.stack };
  return { message: String(err) };
}

/**
 * Logs `cause` with the error at fatal level, synchronously, and exits the process. Never returns:
 * code after it is unreachable, and no caller may try to "recover" by catching around it.
 */
export function failStop(cause: FatalCause, err: unknown): never {
  const d = describe(err);
  if (!exiting) {
    exiting = true;
    const fields = { cause, err: d.message, code: d.code, stack: d.stack };
    if (logger) {
      logger.fatal(fields, `${cause}: ${d.message}; stopping member`);
      // pino writes synchronously to stdout by default; flush anyway in case the destination is async.
      (logger as Logger & { flush?: () => void }).flush?.();
    } else {
      process.stderr.write(`${JSON.stringify({ level: 60, ...fields, msg: `${cause}: ${d.message}; stopping member` })}\n`);
    }
  }
  process.exit(FATAL_EXIT_CODE);
}
