/**
 * etcd's command-line flags (etcdmain/config.go), with etcd's defaults, also readable from
 * ETCD_* environment variables; a flag given on the command line wins (pkg/flags SetFlagsFromEnv).
 * Flags cairn does not act on yet are accepted and reported, so existing manifests start, except
 * the security flags (SECURITY_FLAGS), which refuse to start rather than be ignored.
 */

import { mapCipherSuites, parseTlsVersion, type TLSConfig } from '../transport/tls/tls-info';
import { urlScheme } from '../transport/url-scheme';

type FlagKind = 'string' | 'bool' | 'int' | 'duration';

interface FlagSpec {
  kind: FlagKind;
  default: string;
  /** False: accepted for compatibility, logged as not implemented. */
  implemented: boolean;
}

const S = (d: string, implemented = true): FlagSpec => ({ kind: 'string', default: d, implemented });
const B = (d: boolean, implemented = true): FlagSpec => ({ kind: 'bool', default: String(d), implemented });
const I = (d: number, implemented = true): FlagSpec => ({ kind: 'int', default: String(d), implemented });
const D = (d: string, implemented = true): FlagSpec => ({ kind: 'duration', default: d, implemented });

export const FLAGS: Record<string, FlagSpec> = {
  name: S('default'),
  'data-dir': S(''),
  'wal-dir': S('', false),
  'listen-client-urls': S('http://localhost:2379'),
  'advertise-client-urls': S('http://localhost:2379'),
  'listen-peer-urls': S('http://localhost:2380'),
  'initial-advertise-peer-urls': S('http://localhost:2380'),
  'listen-metrics-urls': S(''),
  'listen-client-http-urls': S('', false),
  'initial-cluster': S(''),
  'initial-cluster-state': S('new'),
  'initial-cluster-token': S('etcd-cluster'),
  'heartbeat-interval': I(100),
  'election-timeout': I(1000),
  'snapshot-count': I(100000),
  'snapshot-catchup-entries': I(5000),
  'quota-backend-bytes': I(0),
  'max-request-bytes': I(1572864),
  'max-txn-ops': I(128),
  'max-concurrent-streams': I(2 ** 32 - 1, false),
  'grpc-keepalive-min-time': D('5s'),
  'grpc-keepalive-interval': D('2h'),
  'grpc-keepalive-timeout': D('20s'),
  'auto-compaction-mode': S('periodic'),
  'auto-compaction-retention': S('0'),
  'experimental-watch-progress-notify-interval': D('10m'),
  'experimental-enable-lease-checkpoint': B(false),
  'experimental-enable-lease-checkpoint-persist': B(false, false),
  'experimental-initial-corrupt-check': B(false, false),
  'experimental-corrupt-check-time': D('0s', false),
  'experimental-compact-hash-check-enabled': B(false, false),
  'experimental-compaction-batch-limit': I(1000, false),
  'experimental-backend-bbolt-freelist-type': S('map', false),
  'experimental-peer-skip-client-san-verification': B(false),
  'experimental-warning-apply-duration': D('100ms', false),
  'experimental-memory-mlock': B(false, false),
  'experimental-txn-mode-write-with-shared-buffer': B(true, false),
  'experimental-bootstrap-defrag-threshold-megabytes': I(0, false),
  'experimental-distributed-tracing-address': S('', false),
  'experimental-enable-distributed-tracing': B(false, false),
  'experimental-stop-grpc-service-on-defrag': B(false, false),
  'cert-file': S(''),
  'key-file': S(''),
  'client-cert-auth': B(false),
  'client-crl-file': S(''),
  'client-cert-allowed-hostname': S(''),
  'trusted-ca-file': S(''),
  'auto-tls': B(false),
  'client-cert-file': S('', false),
  'client-key-file': S('', false),
  'peer-cert-file': S(''),
  'peer-key-file': S(''),
  'peer-client-cert-auth': B(false),
  'peer-trusted-ca-file': S(''),
  'peer-auto-tls': B(false),
  'peer-crl-file': S(''),
  'peer-cert-allowed-cn': S(''),
  'peer-cert-allowed-hostname': S(''),
  'peer-client-cert-file': S(''),
  'peer-client-key-file': S(''),
  'self-signed-cert-validity': I(1),
  'cipher-suites': S(''),
  'tls-min-version': S('TLS1.2'),
  'tls-max-version': S(''),
  'cors': S('*', false),
  'host-whitelist': S('*', false),
  logger: S('zap'),
  'log-outputs': S('default'),
  'log-level': S('info'),
  'log-format': S('json', false),
  'log-package-levels': S('', false),
  debug: B(false),
  'enable-v2': B(false, false),
  'enable-pprof': B(false, false),
  metrics: S('basic'),
  'auth-token': S('simple'),
  'bcrypt-cost': I(10),
  'auth-token-ttl': I(300),
  'enable-grpc-gateway': B(true, false),
  'strict-reconfig-check': B(true),
  'pre-vote': B(true),
  'force-new-cluster': B(false),
  'unsafe-no-fsync': B(false, false),
  'max-snapshots': I(5, false),
  'max-wals': I(5),
  'initial-election-tick-advance': B(true, false),
  discovery: S('', false),
  'discovery-fallback': S('proxy', false),
  'discovery-proxy': S('', false),
  'discovery-srv': S('', false),
  'discovery-srv-name': S('', false),
  proxy: S('off', false),
  'proxy-failure-wait': I(5000, false),
  'proxy-refresh-interval': I(30000, false),
  'proxy-dial-timeout': I(1000, false),
  'proxy-write-timeout': I(5000, false),
  'proxy-read-timeout': I(0, false),
  'config-file': S('', false),
  version: B(false),
  'socket-reuse-port': B(false, false),
  'socket-reuse-address': B(false, false),
  'v2-deprecation': S('not-yet', false),
  // cairn's own: dial a peer at host:port instead of its advertised URL (fault-injection proxies).
  'peer-dial-override': S(''),
  // cairn's own: LevelDB's block cache, in bytes (etcd's bbolt has none; values live on disk).
  'backend-leveldb-cache-bytes': I(33554432),
};

/**
 * Flags that ask for security (authentication, authorization, transport security, request
 * filtering). One of these given but not implemented is a startup error, never "ignored": a member
 * must not look protected when it is not (fail closed).
 */
export const SECURITY_FLAGS: ReadonlySet<string> = new Set([
  'client-cert-file', 'client-key-file', 'auth-token', 'bcrypt-cost', 'auth-token-ttl', 'cors', 'host-whitelist',
  ...['cert-file', 'key-file', 'client-cert-auth', 'client-crl-file', 'client-cert-allowed-hostname', 'trusted-ca-file', 'auto-tls'],
  ...['peer-cert-file', 'peer-key-file', 'peer-client-cert-auth', 'peer-trusted-ca-file', 'peer-auto-tls', 'peer-crl-file'],
  ...['peer-cert-allowed-cn', 'peer-cert-allowed-hostname', 'peer-client-cert-file', 'peer-client-key-file', 'cipher-suites'],
  ...['tls-min-version', 'tls-max-version', 'experimental-peer-skip-client-san-verification'],
]);

export interface ParsedFlags {
  values: Map<string, string>;
  /** Flags explicitly given (command line or environment) that cairn does not act on. */
  unimplemented: string[];
  /** ETCD_* variables that name no flag (etcd warns and carries on). */
  unknownEnv: string[];
}

export class FlagError extends Error {}

function validate(name: string, spec: FlagSpec, raw: string): string {
  switch (spec.kind) {
    case 'bool':
      if (!['true', 'false', '1', '0', 't', 'f', 'TRUE', 'FALSE', 'True', 'False'].includes(raw)) {
        throw new FlagError(`invalid boolean value "${raw}" for -${name}`);
      }
      return String(['true', '1', 't', 'TRUE', 'True'].includes(raw));
    case 'int':
      if (!/^-?\d+$/.test(raw)) throw new FlagError(`invalid value "${raw}" for flag -${name}: parse error`);
      return raw;
    case 'duration':
      parseDurationMs(raw, name);
      return raw;
    default:
      return raw;
  }
}

/** Go's time.ParseDuration for the units etcd users write (ns..h, combined like 1h30m). */
export function parseDurationMs(raw: string, name = 'duration'): number {
  if (raw === '0') return 0;
  const re = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g;
  const unitMs: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  let total = 0;
  let consumed = 0;
  for (const m of raw.matchAll(re)) {
    total += Number(m[1]) * unitMs[m[2]];
    consumed += m[0].length;
  }
  if (consumed === 0 || consumed !== raw.length) throw new FlagError(`invalid value "${raw}" for flag -${name}: parse error`);
  return total;
}

/** Parses argv the way Go's flag package does (-f, --f, -f=v, --f v; bools take no separate value). */
export function parseFlags(argv: readonly string[], env: NodeJS.ProcessEnv): ParsedFlags {
  const given = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (!arg.startsWith('-') || arg === '-' || arg === '--') throw new FlagError(`'${arg}' is not a valid flag`);
    const body = arg.replace(/^--?/, '');
    const eq = body.indexOf('=');
    const name = eq >= 0 ? body.slice(0, eq) : body;
    const spec = FLAGS[name];
    if (!spec) throw new FlagError(`flag provided but not defined: -${name}`);
    let raw: string;
    if (eq >= 0) raw = body.slice(eq + 1);
    else if (spec.kind === 'bool') raw = 'true';
    else {
      if (i + 1 >= argv.length) throw new FlagError(`flag needs an argument: -${name}`);
      raw = argv[++i];
    }
    given.set(name, validate(name, spec, raw));
  }
  const unknownEnv: string[] = [];
  const envNames = new Map(Object.keys(FLAGS).map((f) => [`ETCD_${f.toUpperCase().replace(/-/g, '_')}`, f]));
  for (const [key, raw] of Object.entries(env)) {
    if (!key.startsWith('ETCD_') || raw === undefined) continue;
    const name = envNames.get(key);
    if (!name) {
      unknownEnv.push(key);
      continue;
    }
    if (!given.has(name)) given.set(name, validate(name, FLAGS[name], raw));
  }
  const values = new Map<string, string>();
  for (const [name, spec] of Object.entries(FLAGS)) values.set(name, given.get(name) ?? spec.default);
  const unimplemented = [...given.keys()].filter((n) => !FLAGS[n].implemented && given.get(n) !== FLAGS[n].default);
  return { values, unimplemented, unknownEnv };
}

/** The member's configuration, typed, with units in the names. */
export interface ServerConfig {
  name: string;
  dataDir: string;
  listenClientUrls: URL[];
  advertiseClientUrls: string[];
  listenPeerUrls: URL[];
  initialAdvertisePeerUrls: string[];
  listenMetricsUrls: URL[];
  /** --metrics: 'extensive' adds grpc_server_handling_seconds, as etcd's. */
  metrics: 'basic' | 'extensive';
  initialCluster: Map<string, string[]>;
  initialClusterState: 'new' | 'existing';
  initialClusterToken: string;
  heartbeatIntervalMs: number;
  electionTimeoutMs: number;
  snapshotCount: number;
  snapshotCatchupEntries: number;
  /** --max-wals: WAL segments kept although a snapshot covers them (0: all). */
  maxWals: number;
  quotaBackendBytes: number;
  maxRequestBytes: number;
  maxTxnOps: number;
  grpcKeepaliveMinTimeMs: number;
  grpcKeepaliveIntervalMs: number;
  grpcKeepaliveTimeoutMs: number;
  autoCompactionMode: 'periodic' | 'revision';
  autoCompactionRetention: string;
  watchProgressNotifyIntervalMs: number;
  enableLeaseCheckpoint: boolean;
  preVote: boolean;
  strictReconfigCheck: boolean;
  /** Restart from the data dir as the only member of its cluster (etcd's disaster recovery). */
  forceNewCluster: boolean;
  logLevel: string;
  /** --auth-token: "simple" or "jwt,pub-key=...,priv-key=...,sign-method=...,ttl=..." (checked at start). */
  authToken: string;
  bcryptCost: number;
  authTokenTtlSeconds: number;
  /** member name → host:port to dial instead of its advertised peer URL. */
  peerDialOverride: Map<string, string>;
  /** Client, peer (and metrics) TLS; validated by startMember (transport/tls/tls-info.ts). */
  tls: TLSConfig;
  /** LevelDB block cache bytes (cairn's --backend-leveldb-cache-bytes); absent = mvcc's default. */
  backendLevelDbCacheBytes?: number;
}

function tlsConfig(v: (n: string) => string): TLSConfig {
  const minVersion = parseTlsVersion(v('tls-min-version')) ?? 'TLSv1.2';
  const maxVersion = parseTlsVersion(v('tls-max-version'));
  const ciphers = mapCipherSuites(v('cipher-suites'));
  const common = { ciphers, minVersion, maxVersion, selfSigned: false };
  return {
    client: {
      ...common,
      certFile: v('cert-file'),
      keyFile: v('key-file'),
      trustedCAFile: v('trusted-ca-file'),
      clientCertAuth: v('client-cert-auth') === 'true',
      crlFile: v('client-crl-file'),
      allowedCN: '',
      allowedHostname: v('client-cert-allowed-hostname'),
      checkClientSAN: false,
      autoTls: v('auto-tls') === 'true',
    },
    peer: {
      ...common,
      certFile: v('peer-cert-file'),
      keyFile: v('peer-key-file'),
      trustedCAFile: v('peer-trusted-ca-file'),
      clientCertAuth: v('peer-client-cert-auth') === 'true',
      crlFile: v('peer-crl-file'),
      allowedCN: v('peer-cert-allowed-cn'),
      allowedHostname: v('peer-cert-allowed-hostname'),
      checkClientSAN: v('experimental-peer-skip-client-san-verification') !== 'true',
      autoTls: v('peer-auto-tls') === 'true',
      clientCertFile: v('peer-client-cert-file'),
      clientKeyFile: v('peer-client-key-file'),
    },
    selfSignedCertValidityYears: Number(v('self-signed-cert-validity')),
  };
}

/** etcd's default backend quota when --quota-backend-bytes is 0: 2 GiB. */
export const DEFAULT_QUOTA_BACKEND_BYTES = 2 * 1024 * 1024 * 1024;

function urls(list: string, flag: string): URL[] {
  return list
    .split(',')
    .filter((s) => s.trim() !== '')
    .map((s) => {
      try {
        const u = new URL(s.trim());
        urlScheme(u); // throws on any scheme but http, https, unix, unixs
        return u;
      } catch {
        throw new FlagError(`invalid value "${list}" for flag -${flag}: URL scheme must be http, https, unix, or unixs: ${s}`);
      }
    });
}

export function parseInitialCluster(spec: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const part of spec.split(',').filter((p) => p.trim() !== '')) {
    const eq = part.indexOf('=');
    if (eq <= 0) throw new FlagError(`invalid value "${spec}" for flag -initial-cluster`);
    const name = part.slice(0, eq).trim();
    const url = part.slice(eq + 1).trim();
    const list = out.get(name) ?? [];
    list.push(url);
    out.set(name, list);
  }
  return out;
}

export function buildConfig(flags: ParsedFlags): ServerConfig {
  const v = (n: string): string => flags.values.get(n) ?? '';
  const int = (n: string): number => Number(v(n));
  const name = v('name');
  const initialAdvertisePeerUrls = v('initial-advertise-peer-urls').split(',').map((s) => s.trim());
  let initialClusterSpec = v('initial-cluster');
  // etcd derives the default initial cluster from the member's own name and advertised peer URLs.
  if (initialClusterSpec === '') initialClusterSpec = initialAdvertisePeerUrls.map((u) => `${name}=${u}`).join(',');
  const levelDbCacheBytes = int('backend-leveldb-cache-bytes');
  if (!Number.isSafeInteger(levelDbCacheBytes) || levelDbCacheBytes < 0) {
    throw new FlagError(`invalid value "${v('backend-leveldb-cache-bytes')}" for flag -backend-leveldb-cache-bytes: must be a non-negative byte count`);
  }
  const state = v('initial-cluster-state');
  if (state !== 'new' && state !== 'existing') {
    throw new FlagError(`invalid value "${state}" for flag -initial-cluster-state: valid values are "new", "existing"`);
  }
  const mode = v('auto-compaction-mode');
  if (mode !== 'periodic' && mode !== 'revision') {
    throw new FlagError(`unknown auto-compaction-mode "${mode}"`);
  }
  const heartbeatIntervalMs = int('heartbeat-interval');
  const electionTimeoutMs = int('election-timeout');
  if (5 * heartbeatIntervalMs > electionTimeoutMs) {
    throw new FlagError(`--election-timeout[${electionTimeoutMs}ms] should be at least as 5 times as --heartbeat-interval[${heartbeatIntervalMs}ms]`);
  }
  return {
    name,
    dataDir: v('data-dir') || `${name}.etcd`,
    listenClientUrls: urls(v('listen-client-urls'), 'listen-client-urls'),
    advertiseClientUrls: v('advertise-client-urls').split(',').map((s) => s.trim()).filter(Boolean),
    listenPeerUrls: urls(v('listen-peer-urls'), 'listen-peer-urls'),
    initialAdvertisePeerUrls,
    listenMetricsUrls: urls(v('listen-metrics-urls'), 'listen-metrics-urls'),
    metrics: v('metrics') === 'extensive' ? 'extensive' : 'basic',
    initialCluster: parseInitialCluster(initialClusterSpec),
    initialClusterState: state,
    initialClusterToken: v('initial-cluster-token'),
    heartbeatIntervalMs,
    electionTimeoutMs,
    snapshotCount: int('snapshot-count'),
    snapshotCatchupEntries: int('snapshot-catchup-entries'),
    maxWals: int('max-wals'),
    quotaBackendBytes: int('quota-backend-bytes') || DEFAULT_QUOTA_BACKEND_BYTES,
    maxRequestBytes: int('max-request-bytes'),
    maxTxnOps: int('max-txn-ops'),
    grpcKeepaliveMinTimeMs: parseDurationMs(v('grpc-keepalive-min-time')),
    grpcKeepaliveIntervalMs: parseDurationMs(v('grpc-keepalive-interval')),
    grpcKeepaliveTimeoutMs: parseDurationMs(v('grpc-keepalive-timeout')),
    autoCompactionMode: mode,
    autoCompactionRetention: v('auto-compaction-retention'),
    watchProgressNotifyIntervalMs: parseDurationMs(v('experimental-watch-progress-notify-interval')),
    enableLeaseCheckpoint: v('experimental-enable-lease-checkpoint') === 'true',
    preVote: v('pre-vote') === 'true',
    strictReconfigCheck: v('strict-reconfig-check') === 'true',
    forceNewCluster: v('force-new-cluster') === 'true',
    logLevel: v('debug') === 'true' ? 'debug' : v('log-level'),
    authToken: v('auth-token'),
    bcryptCost: int('bcrypt-cost'),
    authTokenTtlSeconds: int('auth-token-ttl'),
    backendLevelDbCacheBytes: levelDbCacheBytes,
    peerDialOverride: new Map(
      v('peer-dial-override')
        .split(',')
        .filter((p) => p.includes('='))
        .map((p) => [p.slice(0, p.indexOf('=')).trim(), p.slice(p.indexOf('=') + 1).trim()] as [string, string]),
    ),
    tls: tlsConfig(v),
  };
}
