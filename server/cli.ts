import pino from 'pino';
import { buildConfig, FlagError, parseFlags } from './config';
import { startMember } from './member';
import { CAIRN_VERSION, SERVER_VERSION } from './version';

/** bin/cairn: etcd's command line, flags and ETCD_* environment variables. */
export async function main(argv: string[] = process.argv.slice(2)): Promise<void> {
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
  const member = await startMember(cfg, log);
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
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}
