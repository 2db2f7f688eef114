import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sleep, startCluster, waitFor, type Cluster, type ClusterMember } from '../support/cluster';
import { etcdctl, etcdctlReconfig } from '../support/etcdctl';
import { scrape, valueOf, type Scrape } from './prom-text';

/**
 * The families only a cluster moves, each asserted to move when its event happens, on a 3-member
 * cairn cluster (compare.test.ts covers what a single member's workload moves):
 *
 * - a premature `member promote` of a learner that has not started, then one that succeeds:
 *   etcd_server_learner_promote_failures{Reason} / _successes on the leader;
 * - the learner, joining after the leader compacted its log, gets a snapshot:
 *   etcd_network_snapshot_send_* {To} on the leader, etcd_network_snapshot_receive_* {From} and
 *   etcd_snap_db_{save_total,fsync}_duration_seconds on the learner;
 * - the leader stopped (SIGSTOP) for longer than two heartbeat intervals, shorter than an election
 *   timeout: etcd_server_heartbeat_send_failures_total on it (etcd counts a heartbeat sent late);
 * - a follower killed: etcd_network_disconnected_peers_total{Local,Remote} on the leader;
 * - a lease left to expire: etcd_debugging_server_lease_expired_total on the leader.
 *
 * Not here: etcd_server_slow_apply_total (an apply over 100 ms) has no way to be caused on demand
 * short of a slow disk or a pause that happens to land inside an apply; it is left untested.
 */

/** etcd's default timing: the leader's pause (PAUSE_MS) stays well inside the election timeout. */
const HEARTBEAT_MS = 100;
const ELECTION_MS = 1_000;
/** The leader's SIGSTOP: over 2 heartbeat intervals (etcd's limit), under half an election timeout. */
const PAUSE_MS = 450;
/** Small, so the writes before the learner joins compact the leader's log past index 1. */
const SNAPSHOT_COUNT = 40;
const SNAPSHOT_CATCHUP_ENTRIES = 10;
const WRITES = 3 * SNAPSHOT_COUNT;
const TEST_TIMEOUT_MS = 90_000;
const WAIT_MS = 20_000;

const hexOf = (s: string): string => s.trim().toLowerCase();

describe('metrics: cluster events move their families (process level)', () => {
  let c: Cluster;

  beforeAll(async () => {
    c = await startCluster({ kind: 'cairn', heartbeatIntervalMs: HEARTBEAT_MS, electionTimeoutMs: ELECTION_MS, snapshotCount: SNAPSHOT_COUNT, snapshotCatchupEntries: SNAPSHOT_CATCHUP_ENTRIES });
  }, 60_000);
  afterAll(async () => {
    await c?.cleanup();
  });

  it('learner promotion, peer snapshot, late heartbeats, a lost peer and an expired lease are counted', { timeout: TEST_TIMEOUT_MS }, async () => {
    const leader = await c.leader();
    const leaderId = (await leader.status())!.id;
    const at = (m: ClusterMember): Promise<Scrape> => scrape(m.clientUrl);
    const v = (s: Scrape, name: string, labels: Record<string, string> = {}): number => {
      const x = valueOf(s, name, labels);
      return Number.isNaN(x) ? 0 : x;
    };
    const before = await at(leader);

    // A lease that expires (etcd's minimum TTL applies); checked at the end, so its wait overlaps the rest.
    const grant = await etcdctl(leader.endpoint, ['lease', 'grant', '1']);
    expect(grant.stdout, grant.stderr).toMatch(/lease \w+ granted with TTL\(\d+s\)/);
    expect(v(before, 'etcd_debugging_server_lease_expired_total')).toBe(0);

    // Enough writes that the leader snapshots and compacts its log: a new member must get a snapshot.
    for (let i = 0; i < WRITES; i += 20) {
      const rs = await Promise.all(Array.from({ length: 20 }, (_, j) => leader.grpc.put({ key: Buffer.from(`k${i + j}`), value: Buffer.from('v') })));
      for (const r of rs) expect(r.err).toBeUndefined();
    }
    await waitFor('the leader to compact its log', WAIT_MS, () => /"compacted-to":\d+/.test(leader.log()));

    // A learner, added but not started: promoting it fails (not in sync) on the leader.
    const d = await c.newMember('d');
    const add = await etcdctlReconfig(leader.endpoint, ['member', 'add', 'd', `--peer-urls=${d.peerUrl}`, '--learner']);
    const dId = hexOf(/Member\s+(\w+) added to cluster/.exec(add.stdout)?.[1] ?? '');
    expect(dId, add.stdout + add.stderr).not.toBe('');
    const early = await etcdctl(leader.endpoint, ['member', 'promote', dId]);
    expect(early.stderr).toMatch(/can only promote a learner member which is in sync with leader/);
    let s = await at(leader);
    expect(v(s, 'etcd_server_learner_promote_failures')).toBe(v(before, 'etcd_server_learner_promote_failures') + 1);
    const reasons = s.get('etcd_server_learner_promote_failures')!.samples.filter((x) => x.value > 0).map((x) => x.labels.Reason);
    expect(reasons.some((r) => /in sync with leader/.test(r)), JSON.stringify(reasons)).toBe(true);
    expect(v(s, 'etcd_server_learner_promote_successes')).toBe(v(before, 'etcd_server_learner_promote_successes'));

    // It joins, behind the leader's compacted log: a snapshot from the leader.
    await c.join(d);
    await waitFor('the leader to count a snapshot sent to d', WAIT_MS, async () => v(await at(leader), 'etcd_network_snapshot_send_success', { To: dId }) === 1);
    s = await at(leader);
    expect(v(s, 'etcd_network_snapshot_send_total_duration_seconds_count', { To: dId })).toBe(1);
    expect(v(s, 'etcd_network_snapshot_send_failures', { To: dId })).toBe(0);
    expect(v(s, 'etcd_network_snapshot_send_inflights_total', { To: dId })).toBe(0);
    const atD = await waitFor('d to count the snapshot it received', WAIT_MS, async () => {
      const x = await at(d);
      return v(x, 'etcd_network_snapshot_receive_success', { From: leaderId }) === 1 ? x : undefined;
    });
    expect(v(atD, 'etcd_network_snapshot_receive_total_duration_seconds_count', { From: leaderId })).toBe(1);
    expect(v(atD, 'etcd_network_snapshot_receive_failures')).toBe(0);
    expect(v(atD, 'etcd_network_snapshot_receive_inflights_total', { From: leaderId })).toBe(0);
    expect(v(atD, 'etcd_snap_db_save_total_duration_seconds_count')).toBe(1);
    expect(v(atD, 'etcd_snap_db_fsync_duration_seconds_count')).toBe(1);
    expect(v(atD, 'etcd_server_snapshot_apply_in_progress_total')).toBe(0);

    // Promoted once it has caught up: a success on the leader.
    await waitFor('member promote to succeed', WAIT_MS, async () => (await etcdctl(leader.endpoint, ['member', 'promote', dId])).code === 0);
    s = await at(leader);
    expect(v(s, 'etcd_server_learner_promote_successes')).toBe(v(before, 'etcd_server_learner_promote_successes') + 1);

    // The leader blocked for longer than two heartbeat intervals sends its next heartbeats late.
    const hbBefore = v(await at(leader), 'etcd_server_heartbeat_send_failures_total');
    process.kill(leader.pid, 'SIGSTOP');
    try {
      await sleep(PAUSE_MS); // the fault itself: how long the leader is stopped
    } finally {
      process.kill(leader.pid, 'SIGCONT');
    }
    await waitFor('late heartbeats counted on the leader', WAIT_MS, async () => v(await at(leader), 'etcd_server_heartbeat_send_failures_total') > hbBefore);
    expect(await c.leader()).toBe(leader);

    // A follower killed: the leader counts the peer it lost.
    const victim = c.members.find((m) => m !== leader && m !== d)!;
    const victimId = (await victim.status())!.id;
    const disconnected = (x: Scrape): number => v(x, 'etcd_network_disconnected_peers_total', { Local: leaderId, Remote: victimId });
    const discBefore = disconnected(await at(leader));
    expect(v(await at(leader), 'etcd_network_active_peers', { Local: leaderId, Remote: victimId })).toBe(1);
    await victim.kill();
    await waitFor('the leader to count the lost peer', WAIT_MS, async () => disconnected(await at(leader)) === discBefore + 1);
    expect(v(await at(leader), 'etcd_network_active_peers', { Local: leaderId, Remote: victimId })).toBe(0);

    // The lease granted at the start has expired by now, or does shortly: the leader revoked it.
    await waitFor('the lease to expire', WAIT_MS, async () => v(await at(leader), 'etcd_debugging_server_lease_expired_total') === 1);
    const leases = await etcdctl(leader.endpoint, ['lease', 'list']);
    expect(leases.stdout).toMatch(/found 0 leases/);
  });
});
