import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FAST_ELECTION_MS, FAST_HEARTBEAT_MS, startCluster, waitFor, type Cluster, type ClusterMember } from '../support/cluster';
import { etcdctl } from '../support/etcdctl';

/**
 * Snapshots with bounded memory (process level). A member stopped while SNAPSHOT_MIB of values are
 * written comes back through the leader's snapshot; the leader streams it chunk by chunk, the member
 * spools it to disk and installs it from the file in bounded batches, so neither's peak resident
 * memory (VmHWM) grows by more than a fraction of the snapshot. The same holds for the member
 * serving Maintenance.Snapshot (etcdctl snapshot save) of that backend. Memory is not speed: the bound is a fraction of the data's size, which a
 * member holding the snapshot in memory (as cairn did before) cannot meet on any machine.
 *
 * CAIRN_SNAPSHOT_MEMORY_TEST_MIB sets the size (default 256; e.g. 1024 for a run by hand).
 */

const SNAPSHOT_MIB = Number(process.env.CAIRN_SNAPSHOT_MEMORY_TEST_MIB ?? 256);
const VALUE_BYTES = 256 * 1024;
const PUTS_IN_FLIGHT = 8;
/** Peak RSS may grow by at most this fraction of the snapshot. */
const MAX_GROWTH_FRACTION = 1 / 3;
const MIB = 1024 * 1024;

function procStatusKib(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no ${field} for ${pid}`);
  return Number(m[1]);
}

/** Resets the process's peak RSS to its current RSS (Linux: `5` to /proc/<pid>/clear_refs). */
function resetPeak(pid: number): void {
  fs.writeFileSync(`/proc/${pid}/clear_refs`, '5');
}

async function hashKv(members: ClusterMember[], rev: number): Promise<number[]> {
  const r = await etcdctl(members.map((m) => m.endpoint), ['endpoint', 'hashkv', `--rev=${rev}`, '-w', 'json']);
  if (r.code !== 0) throw new Error(`endpoint hashkv: ${r.stderr}`);
  return (JSON.parse(r.stdout) as { HashKV: { hash: number } }[]).map((x) => x.HashKV.hash);
}

describe(`snapshot transfer and Maintenance.Snapshot with bounded memory (${SNAPSHOT_MIB} MiB of values)`, () => {
  let c: Cluster;

  beforeAll(async () => {
    c = await startCluster({
      kind: 'cairn',
      heartbeatIntervalMs: FAST_HEARTBEAT_MS,
      electionTimeoutMs: FAST_ELECTION_MS,
      // Few entries per snapshot, so the leader's log is compacted past the stopped member early.
      snapshotCount: 100,
      snapshotCatchupEntries: 10,
      // Room for the data (etcd's default quota is 2 GiB).
      quotaBackendBytes: Math.max(2 * 1024 * MIB, 4 * SNAPSHOT_MIB * MIB),
    });
  });
  afterAll(async () => {
    await c?.cleanup();
  });

  it("a member catching up through the leader's snapshot stays far below the snapshot's size, and converges", async () => {
    const leader = await c.leader();
    const stopped = c.members.find((m) => m !== leader)!;
    // The member's own peak while it started and followed a small cluster: the baseline.
    const baselineKib = procStatusKib(stopped.pid, 'VmHWM');
    await stopped.stop();

    const puts = Math.ceil((SNAPSHOT_MIB * MIB) / VALUE_BYTES);
    const value = Buffer.alloc(VALUE_BYTES);
    let next = 0;
    const writer = async (): Promise<void> => {
      for (let i = next++; i < puts; i = next++) {
        value.writeUInt32BE(i, 0);
        const r = await leader.grpc.put({ key: Buffer.from(`big/${String(i).padStart(8, '0')}`), value }, { deadlineMs: 30_000 });
        if (r.err) throw new Error(`put ${i}: ${r.err.details}`);
      }
    };
    await Promise.all(Array.from({ length: PUTS_IN_FLIGHT }, writer));
    const rev = (await leader.status())!.revision;

    // The leader's peak from here on is what sending the snapshot costs it.
    resetPeak(leader.pid);
    const leaderBeforeKib = procStatusKib(leader.pid, 'VmRSS');
    // Sample the RSS while it restarts and installs, for the report; VmHWM is the bound checked.
    await stopped.restart();
    const pid = stopped.pid;
    let sampledKib = 0;
    const sampler = setInterval(() => {
      try {
        sampledKib = Math.max(sampledKib, procStatusKib(pid, 'VmRSS'));
      } catch {
        // exited: the waits below report it
      }
    }, 20);
    try {
      await waitFor('the snapshot installed', 120_000, async () => {
        if (!/installing snapshot from leader/.test(stopped.log())) return undefined;
        const s = await stopped.status();
        return s && s.revision >= rev ? s : undefined;
      });
      await c.waitConverged(c.members, 120_000);
    } finally {
      clearInterval(sampler);
    }
    const peakKib = procStatusKib(pid, 'VmHWM');
    const growthMib = (peakKib - baselineKib) / 1024;
    console.log(`snapshot install: ${SNAPSHOT_MIB} MiB of values, baseline VmHWM ${(baselineKib / 1024).toFixed(0)} MiB, peak VmHWM ${(peakKib / 1024).toFixed(0)} MiB (sampled VmRSS max ${(sampledKib / 1024).toFixed(0)} MiB), growth ${growthMib.toFixed(0)} MiB`);
    const leaderGrowthMib = (procStatusKib(leader.pid, 'VmHWM') - leaderBeforeKib) / 1024;
    console.log(`snapshot send: leader VmRSS before ${(leaderBeforeKib / 1024).toFixed(0)} MiB, peak growth ${leaderGrowthMib.toFixed(0)} MiB`);
    expect(stopped.log()).toMatch(/saved snapshot from leader to disk/);
    expect(growthMib).toBeLessThan(SNAPSHOT_MIB * MAX_GROWTH_FRACTION);
    expect(leaderGrowthMib).toBeLessThan(SNAPSHOT_MIB * MAX_GROWTH_FRACTION);

    const hashes = await hashKv(c.members, rev);
    expect(new Set(hashes).size, JSON.stringify(hashes)).toBe(1);
    // The spooled file is gone once installed.
    expect(fs.readdirSync(path.join(stopped.dataDir, 'member', 'snap')).filter((n) => n.includes('.snap.db'))).toEqual([]);
    const r = await stopped.grpc.range({ key: Buffer.from(`big/${String(puts - 1).padStart(8, '0')}`), serializable: true });
    expect(r.ok?.kvs?.[0]?.value?.readUInt32BE(0)).toBe(puts - 1);
  });

  it('Maintenance.Snapshot of that backend (etcdctl snapshot save) stays far below its size', async () => {
    const leader = await c.leader();
    const pid = leader.pid;
    resetPeak(pid);
    const beforeKib = procStatusKib(pid, 'VmRSS');
    const file = path.join(c.baseDir, 'memory.snapshot.db');
    const r = await etcdctl(leader.endpoint, ['snapshot', 'save', file], { timeoutMs: 300_000 });
    expect(r.code, r.stderr).toBe(0);
    const peakKib = procStatusKib(pid, 'VmHWM');
    const sizeMib = fs.statSync(file).size / MIB;
    const growthMib = (peakKib - beforeKib) / 1024;
    console.log(`Maintenance.Snapshot: ${sizeMib.toFixed(0)} MiB file, VmRSS before ${(beforeKib / 1024).toFixed(0)} MiB, peak VmHWM ${(peakKib / 1024).toFixed(0)} MiB, growth ${growthMib.toFixed(0)} MiB`);
    expect(sizeMib).toBeGreaterThan(SNAPSHOT_MIB);
    expect(growthMib).toBeLessThan(SNAPSHOT_MIB * MAX_GROWTH_FRACTION);
    fs.rmSync(file, { force: true });
  });
});
