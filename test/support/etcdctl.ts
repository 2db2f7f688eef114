import { spawn } from 'node:child_process';

/** Run etcdctl (API v3) against an endpoint, with optional stdin. Never rejects on a non-zero exit. */

export const ETCDCTL_BIN = process.env.ETCDCTL_BIN ?? '/usr/bin/etcdctl';

export interface EtcdctlResult {
  stdout: string;
  stderr: string;
  /** Exit code (null if killed by a signal, e.g. the timeout). */
  code: number | null;
}

export interface EtcdctlOptions {
  stdin?: string | Buffer;
  /** Kill etcdctl after this many ms (default 15 s). */
  timeoutMs?: number;
  env?: Record<string, string>;
}

export function etcdctl(endpoints: string | string[], args: string[], opts: EtcdctlOptions = {}): Promise<EtcdctlResult> {
  const eps = (Array.isArray(endpoints) ? endpoints : [endpoints]).join(',');
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('ETCDCTL_')) env[k] = v;
  Object.assign(env, { ETCDCTL_API: '3' }, opts.env);
  return new Promise((resolve, reject) => {
    const child = spawn(ETCDCTL_BIN, [`--endpoints=${eps}`, ...args], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 15_000);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8'), code });
    });
    child.stdin.on('error', () => {
      /* etcdctl may exit before reading stdin */
    });
    if (opts.stdin !== undefined) child.stdin.end(opts.stdin);
    else child.stdin.end();
  });
}

/**
 * etcd's HealthInterval (5 s) with room to spare: with --strict-reconfig-check (the default, in
 * etcd and cairn alike) a member refuses reconfiguration with "etcdserver: unhealthy cluster"
 * until every voting member has been connected to it that long, e.g. right after a start.
 */
export const RECONFIG_HEALTHY_TIMEOUT_MS = 20_000;
/** Between attempts of a reconfiguration refused as unhealthy. */
export const RECONFIG_RETRY_MS = 200;
export const UNHEALTHY_CLUSTER = 'etcdserver: unhealthy cluster';

/** Retries `attempt` while its answer says "unhealthy cluster", as an operator would; returns the first other answer. */
export async function retryWhileUnhealthy<T>(attempt: () => Promise<T>, unhealthy: (r: T) => boolean, timeoutMs = RECONFIG_HEALTHY_TIMEOUT_MS): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await attempt();
    if (!unhealthy(r) || Date.now() > deadline) return r;
    await new Promise((resolve) => setTimeout(resolve, RECONFIG_RETRY_MS));
  }
}

/** An etcdctl membership command, retried while the member answers "unhealthy cluster". */
export function etcdctlReconfig(endpoints: string | string[], args: string[], opts: EtcdctlOptions = {}): Promise<EtcdctlResult> {
  return retryWhileUnhealthy(() => etcdctl(endpoints, args, opts), (r) => r.code !== 0 && r.stderr.includes(UNHEALTHY_CLUSTER));
}
