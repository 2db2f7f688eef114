import { buildConfig, FlagError, FLAGS, parseFlags, type ServerConfig } from './config';

/**
 * A typed way to configure an embedded member (etcd's embed.NewConfig + field assignments): each
 * option is one of etcd's flags, camel-cased, and anything left out takes etcd's default from the
 * flag table (config.ts). The options go through the same parser and validation as bin/cairn's
 * command line, so a bad value fails with the same FlagError message etcd prints, e.g.
 * `invalid value "x" for flag -initial-cluster-state: valid values are "new", "existing"`.
 *
 *   const cfg = memberConfig({ name: 'app', dataDir: '/var/lib/app/etcd', listenClientUrls: 'http://127.0.0.1:2379' });
 *   const member = await startMember(cfg);
 */

type Urls = string | readonly string[];

export interface MemberOptions {
  name?: string;
  dataDir?: string;
  listenClientUrls?: Urls;
  advertiseClientUrls?: Urls;
  listenPeerUrls?: Urls;
  initialAdvertisePeerUrls?: Urls;
  listenMetricsUrls?: Urls;
  /** `name=url,...` or `{ name: url | [urls] }`; defaults to this member alone. */
  initialCluster?: string | Readonly<Record<string, Urls>>;
  initialClusterState?: 'new' | 'existing';
  initialClusterToken?: string;
  /** --heartbeat-interval, in ms (100). */
  heartbeatIntervalMs?: number;
  /** --election-timeout, in ms (1000). */
  electionTimeoutMs?: number;
  snapshotCount?: number;
  snapshotCatchupEntries?: number;
  /** 0 means etcd's default, 2 GiB. */
  quotaBackendBytes?: number;
  maxRequestBytes?: number;
  maxTxnOps?: number;
  /** Go durations, as the flags take them: '5s', '2h'. */
  grpcKeepaliveMinTime?: string;
  grpcKeepaliveInterval?: string;
  grpcKeepaliveTimeout?: string;
  autoCompactionMode?: 'periodic' | 'revision';
  autoCompactionRetention?: string;
  experimentalWatchProgressNotifyInterval?: string;
  experimentalEnableLeaseCheckpoint?: boolean;
  strictReconfigCheck?: boolean;
  preVote?: boolean;
  forceNewCluster?: boolean;
  logLevel?: 'debug' | 'info' | 'warn' | 'error' | 'panic' | 'fatal';
}

/** Option name → flag name, for the options above (each is in config.ts's flag table). */
const FLAG_OF: Record<keyof MemberOptions, string> = {
  name: 'name',
  dataDir: 'data-dir',
  listenClientUrls: 'listen-client-urls',
  advertiseClientUrls: 'advertise-client-urls',
  listenPeerUrls: 'listen-peer-urls',
  initialAdvertisePeerUrls: 'initial-advertise-peer-urls',
  listenMetricsUrls: 'listen-metrics-urls',
  initialCluster: 'initial-cluster',
  initialClusterState: 'initial-cluster-state',
  initialClusterToken: 'initial-cluster-token',
  heartbeatIntervalMs: 'heartbeat-interval',
  electionTimeoutMs: 'election-timeout',
  snapshotCount: 'snapshot-count',
  snapshotCatchupEntries: 'snapshot-catchup-entries',
  quotaBackendBytes: 'quota-backend-bytes',
  maxRequestBytes: 'max-request-bytes',
  maxTxnOps: 'max-txn-ops',
  grpcKeepaliveMinTime: 'grpc-keepalive-min-time',
  grpcKeepaliveInterval: 'grpc-keepalive-interval',
  grpcKeepaliveTimeout: 'grpc-keepalive-timeout',
  autoCompactionMode: 'auto-compaction-mode',
  autoCompactionRetention: 'auto-compaction-retention',
  experimentalWatchProgressNotifyInterval: 'experimental-watch-progress-notify-interval',
  experimentalEnableLeaseCheckpoint: 'experimental-enable-lease-checkpoint',
  strictReconfigCheck: 'strict-reconfig-check',
  preVote: 'pre-vote',
  forceNewCluster: 'force-new-cluster',
  logLevel: 'log-level',
};

function flagValue(key: string, value: unknown): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (Array.isArray(value)) return value.map(String).join(',');
  if (key === 'initialCluster' && value && typeof value === 'object') {
    return Object.entries(value as Record<string, Urls>)
      .flatMap(([name, urls]) => (typeof urls === 'string' ? [urls] : [...urls]).map((u) => `${name}=${u}`))
      .join(',');
  }
  throw new FlagError(`invalid value for member option ${key}`);
}

/** The flags `opts` stands for, as bin/cairn would take them (`--data-dir=/x`, ...). */
export function memberFlags(opts: MemberOptions): string[] {
  const argv: string[] = [];
  for (const [key, value] of Object.entries(opts)) {
    if (value === undefined) continue;
    const flag = (FLAG_OF as Record<string, string | undefined>)[key];
    // A plain-JavaScript caller can pass anything: an unknown option fails as an unknown flag does.
    if (!flag || !FLAGS[flag]) throw new FlagError(`flag provided but not defined: -${key}`);
    argv.push(`--${flag}=${flagValue(key, value)}`);
  }
  return argv;
}

/** A validated ServerConfig for startMember: etcd's defaults, overridden by `opts`. */
export function memberConfig(opts: MemberOptions = {}): ServerConfig {
  return buildConfig(parseFlags(memberFlags(opts), {}));
}
