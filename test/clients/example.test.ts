import { execFile } from 'node:child_process';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../support/member';
import { freePorts } from '../support/ports';

/**
 * examples/embedded/index.mjs, run as a user runs it: `node` on the file after the build, importing
 * cairn by its package name (resolved through package.json "exports"), and type-checked against
 * the package's declarations the way an editor or `tsc --checkJs` sees them.
 */
const run = promisify(execFile);
const EXAMPLE = path.join(REPO_ROOT, 'examples/embedded/index.mjs');
const EXAMPLE_TIMEOUT_MS = 30_000;

describe('examples/embedded', () => {
  it('starts a member, waits for ready, puts and gets a key with etcd3, prints its leader, stops', async () => {
    const [client, peer] = await freePorts(2);
    const { stdout } = await run(process.execPath, [EXAMPLE], {
      cwd: REPO_ROOT,
      env: { ...process.env, CLIENT_PORT: String(client), PEER_PORT: String(peer) },
      timeout: EXAMPLE_TIMEOUT_MS,
    });
    const lines = stdout.trim().split('\n');
    const id = /^member ([0-9a-f]+) listening on http:\/\/127\.0\.0\.1:(\d+)$/.exec(lines[0]);
    expect(id, stdout).not.toBeNull();
    expect(Number(id![2])).toBe(client);
    // The single member elects itself: the leader is its own ID, in a real term.
    expect(lines[1]).toMatch(new RegExp(`^leader changed: ${id![1]} term [1-9]\\d* \\(this member: true\\)$`));
    expect(lines.slice(2)).toEqual(['ready', 'get greeting -> hello', 'stopped']);
  });

  it("type-checks against cairn's declarations (import by package name, strict)", async () => {
    const tsc = path.join(REPO_ROOT, 'node_modules/typescript/bin/tsc');
    const args = ['--noEmit', '--allowJs', '--checkJs', '--strict', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022', '--skipLibCheck', EXAMPLE];
    const r = await run(process.execPath, [tsc, ...args], { cwd: REPO_ROOT, timeout: EXAMPLE_TIMEOUT_MS }).then(
      () => ({ code: 0, out: '' }),
      (e: { code: number; stdout: string }) => ({ code: e.code, out: e.stdout }),
    );
    expect(r.out).toBe('');
    expect(r.code).toBe(0);
  });
});
