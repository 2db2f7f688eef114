import type { Logger } from 'pino';
import { setDefaultBackendFatalHandler } from '../../mvcc/backend';

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

/** pino's level number for `fatal`: the one line a fail-stop writes is at this level. */
export const FATAL_LEVEL = 60;

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

/**
 * Arms fail-stop for this process (called once by the composition root, startMember): the fatal
 * line goes to `log`, the member's logger, and a backend opened without its own `onFatal` stops the
 * process when one of its writes fails (mvcc/ cannot import this module, so the hook is injected).
 */
export function setFatalLogger(log: Logger): void {
  logger = log;
  setDefaultBackendFatalHandler((err) => failStop('backend write failed', err));
}

function describe(err: unknown): { message: string; code?: string; stack?: string } {
  if (err instanceof Error) return { message: err.message, code: (err as NodeJS.ErrnoException).code, stack: err.stack };
  return { message: String(err) };
}

/**
 * Writes `msg` with `fields` as one line at fatal level, synchronously, and exits with
 * FATAL_EXIT_CODE. Only the first call in a process writes: whatever else fails while the process
 * goes down would only bury the cause.
 */
export function exitFatal(msg: string, fields: Record<string, unknown> = {}): never {
  if (!exiting) {
    exiting = true;
    if (logger) {
      logger.fatal(fields, msg);
      // pino writes synchronously to stdout by default; flush anyway in case the destination is async.
      (logger as Logger & { flush?: () => void }).flush?.();
    } else {
      process.stderr.write(`${JSON.stringify({ level: FATAL_LEVEL, time: Date.now(), ...fields, msg })}\n`);
    }
  }
  process.exit(FATAL_EXIT_CODE);
}

/**
 * Logs `cause` with the error at fatal level, synchronously, and exits the process. Never returns:
 * code after it is unreachable, and no caller may try to "recover" by catching around it.
 */
export function failStop(cause: FatalCause, err: unknown): never {
  const d = describe(err);
  return exitFatal(`${cause}: ${d.message}; stopping member`, { cause, err: d.message, code: d.code, stack: d.stack });
}

/**
 * bin/cairn only: a promise rejection nobody handled, or an exception that reached the event loop,
 * means some code path lost track of a failure (a write whose error went nowhere, a stream callback
 * that threw). What state it left behind is unknown, so the member stops, as a Go panic in any
 * goroutine stops etcd. (Node's own default, for an exception, is a multi-line stack on stderr.)
 */
export function failStopOnUnhandledErrors(): void {
  process.on('unhandledRejection', (e: unknown) => failStop('unhandled rejection', e));
  process.on('uncaughtException', (e: Error) => failStop('uncaught exception', e));
}
