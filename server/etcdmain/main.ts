import pino from 'pino';
import { buildConfig, FlagError, parseFlags } from '../embed/config';
import { startMember, type RunningMember } from '../embed/etcd';
import { CAIRN_VERSION, SERVER_VERSION } from '../version';
import { restoreSnapshot } from './snapshot-restore';
import { readSnapshotFile } from '../api/snapshot-file';
import { exitFatal, failStopOnUnhandledErrors, setFatalLogger } from '../etcdserver/fatal';
import { DataDirLockedError } from '../storage/datadir-lock';
import { WalCorruptionError } from '../storage/wal/wal';

const SNAPSHOT_USAGE = `usage:
  cairn snapshot restore <file> --data-dir <dir> [--name ...]   restore into a new data dir
  cairn snapshot status <file>                                   verify a snapshot file
Start the restored member(s) with --initial-cluster-state new: they form a new cluster that has
the snapshot's keys, revisions and leases.`;

async function snapshotCommand(args: string[]): Promise<void> {
  const [sub, file, ...rest] = args;
  if (sub === 'status' && file) {
    const entries = readSnapshotFile(file);
    process.stdout.write(`ok: ${entries.length} backend entries, sha256 verified\n`);
    return;
  }
  if (sub !== 'restore' || !file) {
    process.stderr.write(`${SNAPSHOT_USAGE}\n`);
    process.exit(2);
  }
  const flags = parseFlags(rest, {});
  const dataDir = flags.values.get('data-dir') || `${flags.values.get('name') ?? 'default'}.etcd`;
  const r = await restoreSnapshot(file, dataDir);
  process.stdout.write(`restored snapshot to ${dataDir}: ${r.keys} keys at revision ${r.revision}\n`);
}

/** bin/cairn: etcd's command line, flags and ETCD_* environment variables. */
export async function main(argv: string[] = process.argv.slice(2)): Promise<void> {
  if (argv[0] === 'snapshot') return snapshotCommand(argv.slice(1));
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
  const cfg = buildConfig(parsed);
  const log = pino({ level: cfg.logLevel, base: { name: cfg.name } });
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
