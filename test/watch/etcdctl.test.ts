import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../support/cluster';
import { etcdctl } from '../support/etcdctl';
import type { Member } from '../support/member';
import { SUBJECT_KIND, startTarget } from './support/harness';

/** etcdctl watch and lease commands: cairn's output must equal the real etcd's (IDs and TTLs normalised). */

const targets: { kind: string; member?: Member }[] = [{ kind: 'etcd' }, { kind: SUBJECT_KIND }];

beforeAll(async () => {
  await Promise.all(targets.map(async (t) => (t.member = await startTarget(t.kind as never, ['--experimental-watch-progress-notify-interval=500ms']))));
}, 60_000);

afterAll(async () => {
  for (const t of targets) await t.member?.cleanup();
});

/** etcd_debugging_mvcc_watcher_total on the member's /metrics (etcd 3.4 and cairn). */
async function watcherCount(endpoint: string): Promise<number> {
  const text = await (await fetch(`http://${endpoint}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith('etcd_debugging_mvcc_watcher_total '));
  if (line === undefined) throw new Error('no etcd_debugging_mvcc_watcher_total');
  return Number(line.split(' ')[1]);
}

const BARRIER_VALUE = 'barrier';

/**
 * The output of `etcdctl watch args` while `during` runs: from when the member has registered the
 * watcher, to a barrier, a put of `barrierKey` (a key the watch covers) after `during`; its event
 * comes after everything before it, and it is cut off, so the output is the watch's whole answer.
 */
async function watchOutput(endpoint: string, args: string[], during: () => Promise<void>, barrierKey: string): Promise<string> {
  const before = await watcherCount(endpoint);
  const child = spawn('/usr/bin/etcdctl', [`--endpoints=${endpoint}`, 'watch', ...args], { env: { ...process.env, ETCDCTL_API: '3' } });
  let out = '';
  child.stdout.on('data', (b) => (out += b));
  child.stderr.on('data', (b) => (out += b));
  const closed = new Promise((r) => child.on('close', r));
  try {
    await waitFor('etcdctl watch to be registered', 10_000, async () => (await watcherCount(endpoint)) > before);
    await during();
    await etcdctl(endpoint, ['put', barrierKey, BARRIER_VALUE]);
    const barrier = `PUT\n${barrierKey}\n${BARRIER_VALUE}\n`;
    await waitFor(`the barrier event in ${JSON.stringify(out)}`, 10_000, () => out.includes(barrier));
    return out.slice(0, out.indexOf(barrier));
  } finally {
    child.kill('SIGINT');
    await closed;
    // Its watcher is gone again, so the next watchOutput counts from the same base.
    await waitFor('etcdctl watch to be cancelled', 10_000, async () => (await watcherCount(endpoint)) === before);
  }
}

async function both<T>(fn: (endpoint: string) => Promise<T>): Promise<T[]> {
  const out: T[] = [];
  for (const t of targets) out.push(await fn(t.member!.endpoint));
  return out;
}

describe('etcdctl watch', () => {
  it('--prefix --prev-kv prints events with previous values like etcd', async () => {
    const [ref, sub] = await both((ep) =>
      watchOutput(ep, ['--prefix', '/w1/', '--prev-kv'], async () => {
        await etcdctl(ep, ['put', '/w1/a', '1']);
        await etcdctl(ep, ['put', '/w1/a', '2']);
        await etcdctl(ep, ['del', '--prefix', '/w1/']);
      }, '/w1/~barrier'),
    );
    expect(ref).toContain('PUT\n/w1/a\n1\n/w1/a\n2\n');
    expect(sub).toBe(ref);
  });

  it('--rev replays history from a past revision', async () => {
    const [ref, sub] = await both(async (ep) => {
      await etcdctl(ep, ['put', '/w2/x', 'a']);
      const rev = JSON.parse((await etcdctl(ep, ['get', '/w2/x', '-w', 'json'])).stdout).header.revision as number;
      await etcdctl(ep, ['put', '/w2/x', 'b']);
      return watchOutput(ep, ['--rev', String(rev), '/w2/x'], async () => undefined, '/w2/x');
    });
    expect(ref).toBe('PUT\n/w2/x\na\nPUT\n/w2/x\nb\n');
    expect(sub).toBe(ref);
  });
  // etcdctl 3.4.23 has no --progress-notify flag (it arrived in 3.5); periodic progress is covered
  // on the wire by test/watch/conformance.test.ts.
});

describe('etcdctl lease', () => {
  it('grant, timetolive --keys, list, keep-alive --once and revoke print what etcd prints', async () => {
    const results = await both(async (ep) => {
      const out: string[] = [];
      const g = await etcdctl(ep, ['lease', 'grant', '60']);
      const id = /lease ([0-9a-f]+) granted/.exec(g.stdout)![1];
      const norm = (s: string): string => s.split(id).join('ID').replace(/remaining\(\d+s\)/, 'remaining(Ns)');
      out.push(norm(g.stdout));
      await etcdctl(ep, ['put', '--lease', id, '/l1/k', 'v']);
      out.push(norm((await etcdctl(ep, ['lease', 'timetolive', '--keys', id])).stdout));
      out.push(String((await etcdctl(ep, ['lease', 'list'])).stdout.includes(id)));
      out.push(norm((await etcdctl(ep, ['lease', 'keep-alive', '--once', id])).stdout));
      out.push(norm((await etcdctl(ep, ['lease', 'revoke', id])).stdout));
      out.push(norm((await etcdctl(ep, ['lease', 'timetolive', id])).stdout));
      const bad = await etcdctl(ep, ['lease', 'revoke', '1234abcd']);
      out.push(String(bad.code), bad.stderr.trim().split('\n').pop()!);
      return out;
    });
    expect(results[0][0]).toBe('lease ID granted with TTL(60s)\n');
    expect(results[1]).toEqual(results[0]);
  });
});
