import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import { CAIRN_BIN, trackChild } from '../support/member';

/**
 * Helpers for fail-stop tests: a bin/cairn process whose death is the expected outcome, its log,
 * and the fatal lines in it. Every wait polls a condition against a deadline.
 */

/** How often a wait re-checks its condition. */
export const POLL_INTERVAL_MS = 50;

/** pino's level number for fatal (server/etcdserver/fatal.ts FATAL_LEVEL). */
export const FATAL_LEVEL = 60;

export interface Proc {
  readonly child: ChildProcess;
  readonly logFile: string;
  /** Wall-clock time the exit was observed (undefined while running). */
  readonly exitedAt: number | undefined;
  readonly running: boolean;
  log(): string;
}

/** Spawns `node bin/cairn ...args`, stdout and stderr appended to `logFile`. */
export function spawnCairn(args: readonly string[], logFile: string, cwd: string): Proc {
  if (!fs.existsSync(CAIRN_BIN)) throw new Error(`${CAIRN_BIN} missing: run npx tsc -p tsconfig.json`);
  const fd = fs.openSync(logFile, 'a');
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('ETCD_') && !k.startsWith('ETCDCTL_')) env[k] = v;
  let child: ChildProcess;
  try {
    child = spawn(process.execPath, [CAIRN_BIN, ...args], { stdio: ['ignore', fd, fd], env, cwd });
  } finally {
    fs.closeSync(fd);
  }
  trackChild(child);
  let exitedAt: number | undefined;
  child.once('exit', () => (exitedAt = Date.now()));
  return {
    child,
    logFile,
    get exitedAt() {
      return exitedAt;
    },
    get running() {
      return child.exitCode === null && child.signalCode === null;
    },
    log: () => (fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8') : ''),
  };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls until `cond()` holds; throws `describe()` once `timeoutMs` has passed. */
export async function waitFor(cond: () => boolean, timeoutMs: number, describe: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms: ${describe()}`);
    await sleep(POLL_INTERVAL_MS);
  }
}

/** Waits for the process to exit, failing the test if it is still running at the deadline. */
export async function waitExit(p: Proc, timeoutMs: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  await waitFor(() => !p.running, timeoutMs, () => `process ${p.child.pid} still running; log tail:\n${tail(p.log())}`);
  return { code: p.child.exitCode, signal: p.child.signalCode };
}

export function tail(text: string, lines = 30): string {
  return text.split('\n').slice(-lines).join('\n');
}

export interface LogLine {
  level: number;
  time?: number;
  msg?: string;
  cause?: string;
  err?: string;
  [field: string]: unknown;
}

/** The JSON lines of a log (harness markers and other non-JSON lines are skipped). */
export function jsonLines(text: string): LogLine[] {
  const out: LogLine[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      out.push(JSON.parse(line) as LogLine);
    } catch {
      // a line cut off mid-write is not a log record
    }
  }
  return out;
}

export function fatalLines(text: string): LogLine[] {
  return jsonLines(text).filter((l) => l.level === FATAL_LEVEL);
}

/** Stops `p` with SIGKILL if it is still running (test cleanup). */
export async function killIfRunning(p: Proc | undefined): Promise<void> {
  if (!p || !p.running) return;
  p.child.kill('SIGKILL');
  await waitFor(() => !p.running, 5_000, () => `process ${p.child.pid} survived SIGKILL`);
}
