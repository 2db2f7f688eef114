import { spawn } from 'node:child_process';
import { ETCDCTL_BIN, etcdctl } from '../support/etcdctl';

/** How long one workload step may take before the test fails. */
export const STEP_TIMEOUT_MS = 15_000;

async function ok(endpoint: string, args: string[], stdin?: string): Promise<string> {
  const r = await etcdctl(endpoint, args, { stdin, timeoutMs: STEP_TIMEOUT_MS });
  if (r.code !== 0) throw new Error(`etcdctl ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
  return r.stdout;
}

/**
 * Runs etcdctl until its output contains `until`, then stops it with SIGTERM, the way a user ends
 * `etcdctl watch` or `lease keep-alive`: the stream ends from the client's side.
 */
function streamUntil(endpoint: string, args: string[], until: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const env: NodeJS.ProcessEnv = { ...process.env, ETCDCTL_API: '3' };
    const child = spawn(ETCDCTL_BIN, [`--endpoints=${endpoint}`, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`etcdctl ${args.join(' ')} never printed ${until}: ${out}`));
    }, STEP_TIMEOUT_MS);
    child.stdout.on('data', (b: Buffer) => {
      out += b.toString();
      if (out.includes(until)) child.kill('SIGTERM');
    });
    child.once('error', reject);
    child.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/**
 * The same client workload for etcd and cairn: puts, a range, a txn, a watch that sees an event
 * and is ended by the client, a lease with one keepalive, a compaction, a defragmentation, a
 * delete, hashes and status. Every step goes through etcdctl, the real client.
 */
export async function runWorkload(endpoint: string): Promise<void> {
  await ok(endpoint, ['put', 'a', '1']);
  await ok(endpoint, ['put', 'b', '2']);
  await ok(endpoint, ['put', 'a', '11']);
  await ok(endpoint, ['get', 'a']);
  await ok(endpoint, ['txn'], '\nput c 3\n\n\n');
  // From revision 1 the watch replays the puts at once: it has seen an event before it is ended.
  await streamUntil(endpoint, ['watch', 'a', '--rev=1'], 'PUT');
  const lease = /lease ([0-9a-f]+) granted/.exec(await ok(endpoint, ['lease', 'grant', '60']))?.[1];
  if (!lease) throw new Error('lease grant printed no lease ID');
  await streamUntil(endpoint, ['lease', 'keep-alive', lease], 'keepalived');
  await ok(endpoint, ['put', 'd', '4', `--lease=${lease}`]);
  // Revision 4 overwrote a's first value: compacting at 4 deletes revision 2.
  await ok(endpoint, ['compact', '4']);
  await ok(endpoint, ['defrag']);
  await ok(endpoint, ['del', 'b']);
  await ok(endpoint, ['endpoint', 'hashkv']);
  await ok(endpoint, ['endpoint', 'status']);
  await ok(endpoint, ['member', 'list']);
}
