import { describe, expect, it } from 'vitest';
import { buildConfig, FlagError, parseFlags, DEFAULT_QUOTA_BACKEND_BYTES } from '../../server/embed/config';

describe('etcd flags and ETCD_* environment variables', () => {
  it('uses etcd defaults: member "default" on localhost:2379 with data in default.etcd', () => {
    const cfg = buildConfig(parseFlags([], {}));
    expect(cfg.name).toBe('default');
    expect(cfg.dataDir).toBe('default.etcd');
    expect(cfg.listenClientUrls.map(String)).toEqual(['http://localhost:2379/']);
    expect(cfg.initialCluster.get('default')).toEqual(['http://localhost:2380']);
    expect(cfg.maxRequestBytes).toBe(1572864);
    expect(cfg.maxTxnOps).toBe(128);
    expect(cfg.quotaBackendBytes).toBe(DEFAULT_QUOTA_BACKEND_BYTES);
    expect(cfg.heartbeatIntervalMs).toBe(100);
    expect(cfg.electionTimeoutMs).toBe(1000);
    expect(cfg.snapshotCount).toBe(100000);
    expect(cfg.watchProgressNotifyIntervalMs).toBe(600_000);
  });

  it('derives the data dir from --name', () => {
    expect(buildConfig(parseFlags(['--name', 'infra1'], {})).dataDir).toBe('infra1.etcd');
  });

  it('reads ETCD_* variables, and the command line wins over them', () => {
    const env = { ETCD_NAME: 'from-env', ETCD_DATA_DIR: '/env/dir', ETCD_MAX_TXN_OPS: '64' };
    const cfg = buildConfig(parseFlags(['--name=from-flag'], env));
    expect(cfg.name).toBe('from-flag');
    expect(cfg.dataDir).toBe('/env/dir');
    expect(cfg.maxTxnOps).toBe(64);
  });

  it('accepts both -flag and --flag forms, "=" or a separate value, and bare booleans', () => {
    const cfg = buildConfig(parseFlags(['-name', 'a', '--snapshot-count=10', '--experimental-enable-lease-checkpoint', '-pre-vote=false'], {}));
    expect(cfg.name).toBe('a');
    expect(cfg.snapshotCount).toBe(10);
    expect(cfg.enableLeaseCheckpoint).toBe(true);
    expect(cfg.preVote).toBe(false);
  });

  it('accepts flags it does not implement yet and reports them, so manifests still start', () => {
    const parsed = parseFlags(['--max-snapshots', '3', '--enable-pprof', '--auto-compaction-retention', '1'], { ETCD_UNKNOWN_THING: '1' });
    expect(parsed.unimplemented).toEqual(expect.arrayContaining(['max-snapshots', 'enable-pprof']));
    expect(parsed.unknownEnv).toEqual(['ETCD_UNKNOWN_THING']);
  });

  it('refuses an unknown flag with Go flag-package wording', () => {
    expect(() => parseFlags(['--no-such-flag'], {})).toThrow(new FlagError('flag provided but not defined: -no-such-flag'));
    expect(() => parseFlags(['--snapshot-count', 'lots'], {})).toThrow(FlagError);
    expect(() => parseFlags(['--name'], {})).toThrow('flag needs an argument: -name');
  });

  it("takes cairn's --backend-leveldb-cache-bytes (LevelDB block cache) and refuses a negative size", () => {
    expect(buildConfig(parseFlags([], {})).backendLevelDbCacheBytes).toBe(32 * 1024 * 1024);
    expect(buildConfig(parseFlags(['--backend-leveldb-cache-bytes', '1048576'], {})).backendLevelDbCacheBytes).toBe(1048576);
    expect(() => buildConfig(parseFlags(['--backend-leveldb-cache-bytes', '-1'], {}))).toThrow(FlagError);
  });

  it('checks the election timeout against the heartbeat as etcd does', () => {
    expect(() => buildConfig(parseFlags(['--heartbeat-interval', '300', '--election-timeout', '1000'], {}))).toThrow(/at least as 5 times/);
  });

  it('parses --initial-cluster and Go durations', () => {
    const cfg = buildConfig(
      parseFlags(['--initial-cluster', 'a=http://10.0.0.1:2380,b=http://10.0.0.2:2380', '--experimental-watch-progress-notify-interval', '1m30s'], {}),
    );
    expect([...cfg.initialCluster.keys()]).toEqual(['a', 'b']);
    expect(cfg.watchProgressNotifyIntervalMs).toBe(90_000);
  });
});
