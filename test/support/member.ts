import * as grpc from '@grpc/grpc-js';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { connect } from './grpc-client';
import { memberPorts } from './ports';

/**
 * Start a single-member etcd or cairn for process-level tests, with identical flags.
 *
 * Each member lives in a fresh temp dir (`<tmp>/data` is the data dir, `<tmp>/member.log` the
 * combined stdout/stderr). `start` resolves once a Range succeeds over gRPC. Every spawned
 * process is tracked and SIGKILLed when the test worker exits, so nothing outlives the run even
 * if a test forgets `cleanup()`.
 */

export type MemberKind = 'etcd' | 'cairn';

export interface StartMemberOptions {
  kind: MemberKind;
  name?: string;
  /** Data dir to use (default: `<fresh tmp dir>/data`). */
  dataDir?: string;
  /** Extra flags appended after the standard ones. */
  extraArgs?: string[];
  /** How long to wait for the first successful Range (default 20 s). */
  readyTimeoutMs?: number;
  /** Extra environment variables. */
  env?: Record<string, string>;
  /** Client mTLS: an https:// client URL served with this pair, client certificates verified against `ca`. */
  tls?: MemberTls;
}

/** Certificate files for a member's client mTLS, and the pair its clients (the readiness probe) use. */
export interface MemberTls {
  ca: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
}

export interface Member {
  readonly kind: MemberKind;
  readonly name: string;
  readonly clientUrl: string;
  /** host:port for gRPC clients. */
  readonly endpoint: string;
  readonly peerUrl: string;
  readonly dataDir: string;
  readonly tmpDir: string;
  readonly logFile: string;
  /** The current process id (changes on restart). */
  readonly pid: number;
  /** Whether the process is running. */
  readonly running: boolean;
  /** SIGTERM, then SIGKILL after `graceMs` (default 5 s). Resolves when the process has exited. */
  stop(graceMs?: number): Promise<void>;
  /** Send a signal (default SIGKILL) and wait for the exit. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Stop (if running) and start again on the same ports and data dir; waits until ready. */
  restart(): Promise<void>;
  /** The member's log so far. */
  log(): string;
  /** Stop and delete the temp dir (kept when CAIRN_TEST_KEEP_TMP=1). */
  cleanup(): Promise<void>;
}

export const REPO_ROOT = path.resolve(__dirname, '../..');
export const ETCD_BIN = process.env.ETCD_BIN ?? '/usr/bin/etcd';
export const CAIRN_BIN = path.join(REPO_ROOT, 'bin/cairn');

const live = new Set<ChildProcess>();
let exitHookInstalled = false;

/** Tracks a spawned server so it is SIGKILLed if the test worker exits without stopping it. */
export function trackChild(child: ChildProcess): void {
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on('exit', () => {
      for (const c of live) {
        try {
          c.kill('SIGKILL');
        } catch {
          /* already gone */
        }
      }
    });
  }
  live.add(child);
  child.once('exit', () => live.delete(child));
}

function memberFlags(name: string, dataDir: string, client: number, peer: number, tls?: MemberTls): string[] {
  const clientUrl = `${tls ? 'https' : 'http'}://127.0.0.1:${client}`;
  const tlsFlags = tls ? ['--cert-file', tls.serverCert, '--key-file', tls.serverKey, '--trusted-ca-file', tls.ca, '--client-cert-auth'] : [];
  const peerUrl = `http://127.0.0.1:${peer}`;
  return [
    '--name', name,
    '--data-dir', dataDir,
    '--listen-client-urls', clientUrl,
    '--advertise-client-urls', clientUrl,
    '--listen-peer-urls', peerUrl,
    '--initial-advertise-peer-urls', peerUrl,
    '--initial-cluster', `${name}=${peerUrl}`,
    ...tlsFlags,
  ];
}

function commandFor(kind: MemberKind, flags: string[]): { cmd: string; args: string[] } {
  if (kind === 'etcd') return { cmd: ETCD_BIN, args: flags };
  if (!fs.existsSync(CAIRN_BIN)) throw new Error(`${CAIRN_BIN} does not exist (the cairn server has not landed or is not built)`);
  return { cmd: process.execPath, args: [CAIRN_BIN, ...flags] };
}

function tail(file: string, lines = 40): string {
  try {
    return fs.readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

function waitExit(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

class MemberImpl implements Member {
  readonly clientUrl: string;
  readonly endpoint: string;
  readonly peerUrl: string;
  readonly logFile: string;
  private child?: ChildProcess;

  constructor(
    readonly kind: MemberKind,
    readonly name: string,
    readonly tmpDir: string,
    readonly dataDir: string,
    private readonly clientPort: number,
    private readonly peerPort: number,
    private readonly extraArgs: string[],
    private readonly env: Record<string, string>,
    private readonly readyTimeoutMs: number,
    readonly tls?: MemberTls,
  ) {
    this.clientUrl = `${tls ? 'https' : 'http'}://127.0.0.1:${clientPort}`;
    this.endpoint = `127.0.0.1:${clientPort}`;
    this.peerUrl = `http://127.0.0.1:${peerPort}`;
    this.logFile = path.join(tmpDir, 'member.log');
  }

  get pid(): number {
    return this.child?.pid ?? -1;
  }

  get running(): boolean {
    return !!this.child && this.child.exitCode === null && this.child.signalCode === null;
  }

  log(): string {
    try {
      return fs.readFileSync(this.logFile, 'utf8');
    } catch {
      return '';
    }
  }

  /** Spawn and wait until ready. Throws (with the log tail) on early exit or timeout. */
  async launch(): Promise<void> {
    const flags = [...memberFlags(this.name, this.dataDir, this.clientPort, this.peerPort, this.tls), ...this.extraArgs];
    const { cmd, args } = commandFor(this.kind, flags);
    const fd = fs.openSync(this.logFile, 'a');
    fs.writeSync(fd, `\n=== ${new Date().toISOString()} ${cmd} ${args.join(' ')}\n`);
    const env: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('ETCD_') && !k.startsWith('ETCDCTL_')) env[k] = v;
    Object.assign(env, this.env);
    let child: ChildProcess;
    try {
      child = spawn(cmd, args, { stdio: ['ignore', fd, fd], env, cwd: this.tmpDir });
    } finally {
      fs.closeSync(fd);
    }
    trackChild(child);
    this.child = child;
    let spawnError: Error | undefined;
    child.once('error', (e) => (spawnError = e));

    const t = this.tls;
    const credentials = t ? grpc.credentials.createSsl(fs.readFileSync(t.ca), fs.readFileSync(t.clientKey), fs.readFileSync(t.clientCert)) : undefined;
    const client = connect(this.endpoint, { defaultDeadlineMs: 1000, credentials });
    const started = Date.now();
    try {
      for (;;) {
        if (spawnError) throw spawnError;
        if (!this.running) {
          throw new Error(
            `${this.kind} member ${this.name} exited during start (code ${child.exitCode}, signal ${child.signalCode}); log tail:\n${tail(this.logFile)}`,
          );
        }
        const r = await client.range({ key: Buffer.from('health') });
        // A member with auth enabled (e.g. restored from such a snapshot) answers the anonymous
        // probe with etcd's "user name is empty": it is serving.
        if (!r.err || r.err.details === 'etcdserver: user name is empty') return;
        if (Date.now() - started > this.readyTimeoutMs) {
          await this.kill('SIGKILL');
          throw new Error(
            `${this.kind} member ${this.name} not ready after ${this.readyTimeoutMs} ms (last error: ${r.err.code} ${r.err.details}); log tail:\n${tail(this.logFile)}`,
          );
        }
        await sleep(100);
      }
    } finally {
      client.close();
    }
  }

  async stop(graceMs = 5000): Promise<void> {
    const child = this.child;
    if (!child || !this.running) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }, graceMs);
    await waitExit(child);
    clearTimeout(timer);
  }

  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.child;
    if (!child || !this.running) return;
    child.kill(signal);
    if (signal === 'SIGKILL' || signal === 'SIGTERM' || signal === 'SIGINT') await waitExit(child);
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.launch();
  }

  async cleanup(): Promise<void> {
    await this.stop();
    if (process.env.CAIRN_TEST_KEEP_TMP !== '1') fs.rmSync(this.tmpDir, { recursive: true, force: true });
  }
}

let counter = 0;

/** Start a single-member cluster of `kind` and wait until it serves a Range. */
export async function startMember(opts: StartMemberOptions): Promise<Member> {
  const name = opts.name ?? `m${process.pid}-${++counter}`;
  let lastErr: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    const tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), `cairn-test-${opts.kind}-`));
    const dataDir = opts.dataDir ?? path.join(tmpDir, 'data');
    const { client, peer } = await memberPorts();
    const m = new MemberImpl(opts.kind, name, tmpDir, dataDir, client, peer, opts.extraArgs ?? [], opts.env ?? {}, opts.readyTimeoutMs ?? 20_000, opts.tls);
    try {
      await m.launch();
      return m;
    } catch (e) {
      lastErr = e;
      const inUse = /address already in use|EADDRINUSE/i.test(m.log());
      await m.cleanup();
      if (!inUse) throw e;
    }
  }
  throw lastErr;
}
