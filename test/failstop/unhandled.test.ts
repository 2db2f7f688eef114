import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../support/member';
import { fatalLines, jsonLines } from './process';

/**
 * bin/cairn arms server/etcdserver/fatal.ts's failStopOnUnhandledErrors(): a rejection nobody
 * handled or an exception that reached the event loop stops the process with one fatal line, as
 * a panic in any goroutine stops etcd. These run the built module in a child Node process the way
 * main.ts arms it (setFatalLogger with a pino logger, then failStopOnUnhandledErrors) and provoke
 * each failure; a second failure while going down must not add a line.
 */

const FATAL_JS = path.join(REPO_ROOT, 'dist/server/etcdserver/fatal.js');
const CHILD_TIMEOUT_MS = 10_000;

function run(provoke: string): { status: number | null; stdout: string; stderr: string } {
  if (!fs.existsSync(FATAL_JS)) throw new Error(`${FATAL_JS} missing: run npx tsc -p tsconfig.json`);
  const script = `
    const pino = require('pino');
    const fatal = require(${JSON.stringify(FATAL_JS)});
    fatal.setFatalLogger(pino({ level: 'info' }));
    fatal.failStopOnUnhandledErrors();
    setTimeout(() => { console.log('STILL RUNNING'); process.exit(0); }, 2000);
    ${provoke}
  `;
  const r = spawnSync(process.execPath, ['-e', script], { cwd: REPO_ROOT, encoding: 'utf8', timeout: CHILD_TIMEOUT_MS });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('unhandled errors fail-stop', () => {
  it.each([
    { what: 'a rejection nobody handles', provoke: `Promise.reject(new Error('lost write')); Promise.reject(new Error('second'));`, cause: 'unhandled rejection' },
    { what: 'an exception thrown from a timer', provoke: `setTimeout(() => { throw new Error('lost write'); }, 10); setTimeout(() => { throw new Error('second'); }, 10);`, cause: 'uncaught exception' },
  ])('$what: one fatal line naming "$cause", exit 1', ({ provoke, cause }) => {
    const r = run(provoke);
    expect(r.stdout).not.toContain('STILL RUNNING');
    expect(r.status, r.stdout + r.stderr).toBe(1);
    expect(r.stderr).toBe('');
    const fatal = fatalLines(r.stdout);
    expect(fatal).toHaveLength(1);
    expect(fatal[0].cause).toBe(cause);
    expect(fatal[0].msg).toBe(`${cause}: lost write; stopping member`);
    expect(jsonLines(r.stdout)).toHaveLength(1);
  });
});
