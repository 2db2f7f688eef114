import { buildConfig, FlagError, FLAGS, parseFlags, type ServerConfig } from './config';

/**
 * A typed way to configure an embedded member (etcd's embed.NewConfig + field assignments): each
 * option is one of etcd's flags, camel-cased, and anything left out takes etcd's default from the
 * flag table (config.ts). The options go through the same parser and validation as bin/cairn's
 * command line, so a bad value fails with the same FlagError message etcd prints, e.g.
 * `invalid value "x" for flag -initial-cluster-state: valid values are "new", "existing"`.
 * TLS, authentication and metrics options included: they fill the same ServerConfig fields
 * (`tls`, `authToken`, `metrics`, ...) the flags do, and are checked the same way at start.
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
  /** --metrics: 'extensive' adds grpc_server_handling_seconds, as etcd's. */
  metrics?: 'basic' | 'extensive';

  // Authentication (etcd's --auth-token, --bcrypt-cost, --auth-token-ttl).
  /** 'simple', or 'jwt,pub-key=...,priv-key=...,sign-method=...[,ttl=...]'. */
  authToken?: string;
  bcryptCost?: number;
  /** --auth-token-ttl, in seconds (300): how long a simple token lives. */
  authTokenTtlSeconds?: number;

  // Client TLS (the client and metrics URLs that are https://).
  certFile?: string;
  keyFile?: string;
  trustedCaFile?: string;
  /** Require a client certificate signed by trustedCaFile. */
  clientCertAuth?: boolean;
  clientCrlFile?: string;
  clientCertAllowedHostname?: string;
  /** A self-signed certificate made at start when certFile/keyFile are not given. */
  autoTls?: boolean;

  // Peer TLS.
  peerCertFile?: string;
  peerKeyFile?: string;
  peerTrustedCaFile?: string;
  peerClientCertAuth?: boolean;
  peerCrlFile?: string;
  peerAutoTls?: boolean;
  peerCertAllowedCn?: string;
  peerCertAllowedHostname?: string;
  /** The pair this member presents when it dials peers, if not peerCertFile/peerKeyFile. */
  peerClientCertFile?: string;
  peerClientKeyFile?: string;
  experimentalPeerSkipClientSanVerification?: boolean;

  // Both.
  /** --self-signed-cert-validity, in years (1), for autoTls / peerAutoTls. */
  selfSignedCertValidityYears?: number;
  /** Go's cipher suite names, e.g. ['TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256']. */
  cipherSuites?: string | readonly string[];
  tlsMinVersion?: 'TLS1.2' | 'TLS1.3';
  tlsMaxVersion?: 'TLS1.2' | 'TLS1.3';
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
  metrics: 'metrics',
  authToken: 'auth-token',
  bcryptCost: 'bcrypt-cost',
  authTokenTtlSeconds: 'auth-token-ttl',
  certFile: 'cert-file',
  keyFile: 'key-file',
  trustedCaFile: 'trusted-ca-file',
  clientCertAuth: 'client-cert-auth',
  clientCrlFile: 'client-crl-file',
  clientCertAllowedHostname: 'client-cert-allowed-hostname',
  autoTls: 'auto-tls',
  peerCertFile: 'peer-cert-file',
  peerKeyFile: 'peer-key-file',
  peerTrustedCaFile: 'peer-trusted-ca-file',
  peerClientCertAuth: 'peer-client-cert-auth',
  peerCrlFile: 'peer-crl-file',
  peerAutoTls: 'peer-auto-tls',
  peerCertAllowedCn: 'peer-cert-allowed-cn',
  peerCertAllowedHostname: 'peer-cert-allowed-hostname',
  peerClientCertFile: 'peer-client-cert-file',
  peerClientKeyFile: 'peer-client-key-file',
  experimentalPeerSkipClientSanVerification: 'experimental-peer-skip-client-san-verification',
  selfSignedCertValidityYears: 'self-signed-cert-validity',
  cipherSuites: 'cipher-suites',
  tlsMinVersion: 'tls-min-version',
  tlsMaxVersion: 'tls-max-version',
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
