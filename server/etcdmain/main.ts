import { InvalidAuthOptionsError } from '../auth/token-provider';
import pino from 'pino';
import { buildConfig, FlagError, parseFlags, SECURITY_FLAGS, type ServerConfig } from '../embed/config';
import { TlsConfigError } from '../transport/tls/tls-info';
import { startMember, type RunningMember } from '../embed/etcd';
import { CAIRN_VERSION, SERVER_VERSION } from '../version';
import { restoreSnapshot } from './snapshot-restore';
import { formatStatus, snapshotStatus } from './snapshot-status';
import { exitFatal, failStopOnUnhandledErrors, setFatalLogger } from '../etcdserver/fatal';
import { DataDirLockedError } from '../storage/datadir-lock';
import { WalCorruptionError } from '../storage/wal/wal';

const SNAPSHOT_USAGE = `usage:
  cairn snapshot restore <file> --data-dir <dir> [--name ...] [--skip-hash-check]   restore into a new data dir
  cairn snapshot status <file> [-w simple|table|json|fields]                         verify and describe a snapshot
<file> is an etcd snapshot (etcdctl snapshot save, from etcd or cairn) or one in cairn's earlier format.
Start the restored member(s) with --initial-cluster-state new: they form a new cluster that has
the snapshot's keys, revisions and leases.`;

/** Takes `--name value`, `--name=value` or `-w value` out of args; returns the value. */
function takeOption(args: string[], names: string[]): string | undefined {
  for (let i = 0; i < args.length; i++) {
    for (const n of names) {
      if (args[i] === n && i + 1 < args.length) return args.splice(i, 2)[1];
      if (args[i].startsWith(`${n}=`)) return args.splice(i, 1)[0].slice(n.length + 1);
    }
  }
  return undefined;
}

async function snapshotCommand(args: string[]): Promise<void> {
  const [sub, file, ...rest] = args;
  if (sub === 'status' && file) {
    const writeOut = takeOption(rest, ['-w', '--write-out']) ?? 'simple';
    process.stdout.write(`${formatStatus(snapshotStatus(file), writeOut)}\n`);
    return;
  }
  if (sub !== 'restore' || !file) {
    process.stderr.write(`${SNAPSHOT_USAGE}\n`);
    process.exit(2);
  }
  const skip = rest.indexOf('--skip-hash-check');
  const skipHashCheck = skip >= 0 || rest.includes('--skip-hash-check=true');
  const flagArgs = rest.filter((a) => a !== '--skip-hash-check' && !a.startsWith('--skip-hash-check='));
  const flags = parseFlags(flagArgs, {});
  const dataDir = flags.values.get('data-dir') || `${flags.values.get('name') ?? 'default'}.etcd`;
  const r = await restoreSnapshot(file, dataDir, { skipHashCheck });
  process.stdout.write(`restored snapshot to ${dataDir}: ${r.keys} keys at revision ${r.revision}\n`);
}

/** bin/cairn: etcd's command line, flags and ETCD_* environment variables. */
export async function main(argv: string[] = process.argv.slice(2)): Promise<void> {
  if (argv[0] === 'snapshot') {
    // etcdctl's way: one "Error: ..." line and exit 1, no stack trace.
    return snapshotCommand(argv.slice(1)).catch((e: unknown) => {
      process.stderr.write(`Error: ${e instanceof Error ? e.message : String(e)}\n`);
      process.exit(1);
    });
  }
  let parsed;
  try {
    parsed = parseFlags(argv, process.env);
  } catch (e) {
    if (e instanceof FlagError) {
      process.stderr.write(`${e.message}\n`);
      process.exit(2);
    }
    throw e;
  }
  if (parsed.values.get('version') === 'true') {
    process.stdout.write(`etcd Version: ${SERVER_VERSION}\ncairn Version: ${CAIRN_VERSION}\nNode Version: ${process.version}\n`);
    return;
  }
  let cfg: ServerConfig;
  try {
    cfg = buildConfig(parsed);
  } catch (e) {
    if (e instanceof FlagError || e instanceof TlsConfigError) {
      process.stderr.write(`${e.message}\n`);
      process.exit(2);
    }
    throw e;
  }
  const log = pino({ level: cfg.logLevel, base: { name: cfg.name } });
  setFatalLogger(log);
  // Fail closed: a security flag cairn does not implement stops the start instead of being ignored.
  const insecure = parsed.unimplemented.filter((f) => SECURITY_FLAGS.has(f));
  if (insecure.length > 0) {
    exitFatal(`--${insecure[0]} is not implemented by cairn; refusing to start rather than run without the security it asks for`, { flags: insecure });
  }
  for (const flag of parsed.unimplemented) log.warn({ flag }, 'flag accepted but not implemented by cairn; ignoring');
  for (const env of parsed.unknownEnv) log.warn({ env }, 'unrecognized environment variable');
  log.info({ version: CAIRN_VERSION, 'etcd-api': SERVER_VERSION, node: process.version }, 'starting cairn');
  // A rejection nobody handled or an exception that reached the event loop is a failure some code
  // lost track of (possibly a write that did not happen): stop, as a panic stops etcd. Installed
  // before the member starts, so nothing it starts runs without it.
  setFatalLogger(log);
  failStopOnUnhandledErrors();
  let member: RunningMember;
  try {
    member = await startMember(cfg, log);
  } catch (e) {
    // etcd's line for a data dir in use, and nothing else (not a LevelDB stack trace).
    if (e instanceof DataDirLockedError) exitFatal(e.message, { 'data-dir': e.dataDir, lock: e.lockPath, err: String(e.cause) });
    // etcd's startup errors for TLS (etcdmain "failed to start etcd"), not a stack trace.
    if (e instanceof TlsConfigError) exitFatal('failed to start etcd', { error: e.message });
    // etcd refuses a bad --auth-token with this one line (etcdmain: auth: invalid auth options).
    if (e instanceof InvalidAuthOptionsError) exitFatal(e.message, { 'auth-token': cfg.authToken.split(',')[0], detail: e.detail });
    // A damaged WAL refuses to start, naming where (etcd: "failed to read WAL" ... "walpb: crc mismatch").
    if (e instanceof WalCorruptionError) exitFatal(e.message, { file: e.file, offset: e.offset });
    throw e;
  }
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'received signal; shutting down');
    member.close().then(
      () => process.exit(0),
      (e: unknown) => {
        log.error({ err: e }, 'error during shutdown');
        process.exit(1);
      },
    );
  };
  // etcd exits once it learns it was removed from the cluster.
  member.server.onSelfRemoved(() => stop('removed from the cluster'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}
