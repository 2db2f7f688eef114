import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import { startCluster, waitFor, type Cluster, type ClusterMember } from '../support/cluster';
import { retryWhileUnhealthy, UNHEALTHY_CLUSTER } from '../support/etcdctl';

/**
 * MemberRemove of the current leader (the leader removes itself), repeated: the two remaining
 * members must elect a leader and take a write. etcd's survivors wait out an election timeout for
 * the removed leader first (1.1–1.7 s here at etcd's timing); cairn's forget it when they apply the
 * removal and the lowest-ID one campaigns on its next tick (onLeaderRemoved in raft/conf-switch.ts), which
 * took 77–141 ms. The bound stays at three election timeouts: it guards liveness on a loaded CI
 * machine, and raft/sim/self-removal.test.ts pins the faster election deterministically.
 *
 * A regression guard for docs/verification.md finding 11 (a long Jepsen run was leaderless for
 * more than 10 s after the leader removed itself).
 */

const HEARTBEAT_MS = 100;
const ELECTION_MS = 1_000;
/** Leader removals in a row (each one re-adds the removed member with a fresh data dir). */
const ROUNDS = 3;
/** From the MemberRemove response to a committed write on a new leader. */
const NEW_LEADER_BOUND_MS = 3 * ELECTION_MS;
const REMOVE_DEADLINE_MS = 5_000;
const PUT_DEADLINE_MS = 500;

describe('removing the leader (process level)', () => {
  let c: Cluster;
  beforeAll(async () => {
    c = await startCluster({ kind: 'cairn', heartbeatIntervalMs: HEARTBEAT_MS, electionTimeoutMs: ELECTION_MS });
  }, 60_000);
  afterAll(async () => {
    await c?.cleanup();
  });

  it(`elects a new leader and commits a write within ${NEW_LEADER_BOUND_MS} ms, ${ROUNDS} times`, async () => {
    for (let round = 0; round < ROUNDS; round++) {
      const members: ClusterMember[] = [...c.members];
      const leader = await c.leader(30_000, members);
      const leaderId = (await leader.status())!.id;
      const others = members.filter((m) => m !== leader);
      const removed = await retryWhileUnhealthy(
        () => others[0].grpc.call('Cluster', 'MemberRemove', { ID: BigInt('0x' + leaderId).toString() }, { deadlineMs: REMOVE_DEADLINE_MS }),
        (r) => r.err?.details === UNHEALTHY_CLUSTER,
      );
      expect(removed.err).toBeUndefined();
      const t0 = Date.now();
      await waitFor(`round ${round}: a new leader that takes a write`, NEW_LEADER_BOUND_MS, async () => {
        const sts = await Promise.all(others.map((m) => m.status()));
        const lead = sts[0]?.leader;
        if (!lead || lead === '0' || lead === leaderId || sts.some((s) => s?.leader !== lead)) return undefined;
        const put = await others[0].grpc.put({ key: Buffer.from(`after-removal-${round}`), value: Buffer.from('v') }, { deadlineMs: PUT_DEADLINE_MS });
        return put.err ? undefined : true;
      });
      const elapsedMs = Date.now() - t0;
      console.log(`leader removal round ${round}: a new leader took a write ${elapsedMs} ms after MemberRemove answered`);
      expect(elapsedMs).toBeLessThanOrEqual(NEW_LEADER_BOUND_MS);
      // The removed member stops by itself (etcd exits); bring it back as a new member.
      await waitFor('the removed leader to exit', 10_000, () => !leader.running);
      fs.rmSync(leader.dataDir, { recursive: true, force: true });
      const added = await retryWhileUnhealthy(
        () => others[0].grpc.call('Cluster', 'MemberAdd', { peerURLs: [leader.peerUrl] }, { deadlineMs: REMOVE_DEADLINE_MS }),
        (r) => r.err?.details === UNHEALTHY_CLUSTER,
      );
      expect(added.err).toBeUndefined();
      leader.spawn('existing', c.initialCluster());
      await leader.waitReady();
      await c.waitConverged(members);
      // Started in etcd's sense: its name is published through the log. Until then
      // --strict-reconfig-check refuses the next removal ("not enough started members").
      await waitFor('the re-added member to publish its name', 10_000, async () => {
        const list = await others[0].grpc.call('Cluster', 'MemberList', {}, { deadlineMs: REMOVE_DEADLINE_MS });
        const ms = (list.ok as { members?: { name: string }[] } | undefined)?.members ?? [];
        return (ms.length === members.length && ms.every((m) => m.name !== '')) || undefined;
      });
    }
  }, 180_000);
});
