import type { Logger } from 'pino';

/**
 * Every test-only switch cairn reads, in one place. Each one breaks a guarantee on purpose so the
 * fault-injection harness (cluster-tests/) can prove its checkers catch the breakage, or models a
 * fault the real world produces (a power cut). None may ever be set on a member holding real
 * data; every one that is set is logged at warn level at start (logTestingSwitches).
 */
export interface TestingSwitches {
  /** CAIRN_TESTING_UNSAFE_LOCAL_READS=1: "linearizable" reads served from local state without ReadIndex. */
  readonly unsafeLocalReads: boolean;
  /** CAIRN_TESTING_LOSE_UNSYNCED_WRITES=1: unfsynced WAL and backend writes stay in process memory, so SIGKILL acts as a power cut. */
  readonly loseUnsyncedWrites: boolean;
  /** CAIRN_TESTING_UNSAFE_NO_FSYNC=1: writes are acknowledged without fsync. */
  readonly unsafeNoFsync: boolean;
  /** CAIRN_LEASE_CHECKPOINT_INTERVAL_MS: the lease checkpoint interval (etcd's default 5 min) shortened for tests. */
  readonly leaseCheckpointIntervalMs: number | undefined;
}

const ENV_NAMES: Record<keyof TestingSwitches, string> = {
  unsafeLocalReads: 'CAIRN_TESTING_UNSAFE_LOCAL_READS',
  loseUnsyncedWrites: 'CAIRN_TESTING_LOSE_UNSYNCED_WRITES',
  unsafeNoFsync: 'CAIRN_TESTING_UNSAFE_NO_FSYNC',
  leaseCheckpointIntervalMs: 'CAIRN_LEASE_CHECKPOINT_INTERVAL_MS',
};

/** The shortest lease checkpoint interval a test may ask for. */
export const MIN_TEST_LEASE_CHECKPOINT_INTERVAL_MS = 100;

export function readTestingSwitches(env: NodeJS.ProcessEnv = process.env): TestingSwitches {
  const interval = Number(env[ENV_NAMES.leaseCheckpointIntervalMs]);
  return {
    unsafeLocalReads: env[ENV_NAMES.unsafeLocalReads] === '1',
    loseUnsyncedWrites: env[ENV_NAMES.loseUnsyncedWrites] === '1',
    unsafeNoFsync: env[ENV_NAMES.unsafeNoFsync] === '1',
    leaseCheckpointIntervalMs: Number.isFinite(interval) && interval >= MIN_TEST_LEASE_CHECKPOINT_INTERVAL_MS ? interval : undefined,
  };
}

/** The switches of this process, read once. */
export const testingSwitches: TestingSwitches = readTestingSwitches();

export function logTestingSwitches(log: Logger, switches: TestingSwitches = testingSwitches): void {
  for (const key of Object.keys(ENV_NAMES) as (keyof TestingSwitches)[]) {
    const v = switches[key];
    if (v === false || v === undefined) continue;
    log.warn({ switch: ENV_NAMES[key], value: v }, 'TEST-ONLY SWITCH ENABLED: this member breaks a guarantee on purpose; never use it for real data');
  }
}
