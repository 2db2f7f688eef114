import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FAST_ELECTION_MS, FAST_HEARTBEAT_MS, startCluster, waitFor, type Cluster, type ClusterMember } from '../support/cluster';
import { etcdctl } from '../support/etcdctl';

/**
 * Snapshots with bounded memory (process level). A member stopped while SNAPSHOT_MIB of values are
 * written comes back through the leader's snapshot; the leader streams it chunk by chunk, the member
 * spools it to disk and installs it from the file in bounded batches, so neither's peak resident
 * memory (VmHWM, and the sampled peak of its anonymous part) grows by more than a fraction of the
 * snapshot. The same holds for the member
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
/** Writing and transferring the data takes longer than the default test timeout on a loaded machine. */
const TEST_TIMEOUT_MS = 240_000 * Math.max(1, SNAPSHOT_MIB / 256);
/** HashKV reads every value: etcdctl's default 5 s is too short for a GiB on a loaded machine. */
const HASHKV_TIMEOUT_S = 30 * Math.max(1, SNAPSHOT_MIB / 256);

type StatusField = 'VmRSS' | 'VmHWM' | 'RssAnon';

function procStatusKib(pid: number, field: StatusField): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no ${field} for ${pid}`);
  return Number(m[1]);
}

/**
 * The peak of a process's anonymous memory (RssAnon: heap, buffers, LevelDB's memtables and caches)
 * while it runs, sampled every 10 ms; VmHWM (the kernel's exact peak) also counts file pages, among
 * them LevelDB's mmapped tables, which grow with the data any member holding it reads.
 */
function sampleAnon(pid: number): () => number {
  let peak = procStatusKib(pid, 'RssAnon');
  const timer = setInterval(() => {
    try {
      peak = Math.max(peak, procStatusKib(pid, 'RssAnon'));
    } catch {
      // exited: the caller's waits report it
    }
  }, 10);
  return () => {
    clearInterval(timer);
    return peak;
  };
}

const mib = (kib: number): string => `${(kib / 1024).toFixed(0)} MiB`;

/** Resets the process's peak RSS to its current RSS (Linux: `5` to /proc/<pid>/clear_refs). */
function resetPeak(pid: number): void {
  fs.writeFileSync(`/proc/${pid}/clear_refs`, '5');
}

async function hashKv(members: ClusterMember[], rev: number): Promise<number[]> {
  const r = await etcdctl(members.map((m) => m.endpoint), ['endpoint', 'hashkv', `--rev=${rev}`, '-w', 'json', `--command-timeout=${HASHKV_TIMEOUT_S}s`], { timeoutMs: (HASHKV_TIMEOUT_S + 10) * 1000 });
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
    // The member's own peak while it started and followed a small cluster, and its memory now: the baseline.
    const baselineKib = procStatusKib(stopped.pid, 'VmHWM');
    const baselineAnonKib = procStatusKib(stopped.pid, 'RssAnon');
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
    const leaderAnonBeforeKib = procStatusKib(leader.pid, 'RssAnon');
    const leaderAnon = sampleAnon(leader.pid);
    await stopped.restart();
    const pid = stopped.pid;
    const anon = sampleAnon(pid);
    let peakAnonKib: number;
    let leaderPeakAnonKib: number;
    try {
      await waitFor('the snapshot installed', 120_000, async () => {
        if (!/installing snapshot from leader/.test(stopped.log())) return undefined;
        const s = await stopped.status();
        return s && s.revision >= rev ? s : undefined;
      });
      await c.waitConverged(c.members, 120_000);
    } finally {
      peakAnonKib = anon();
      leaderPeakAnonKib = leaderAnon();
    }
    const growthKib = procStatusKib(pid, 'VmHWM') - baselineKib;
    const anonGrowthKib = peakAnonKib - baselineAnonKib;
    const leaderGrowthKib = procStatusKib(leader.pid, 'VmHWM') - leaderBeforeKib;
    const leaderAnonGrowthKib = leaderPeakAnonKib - leaderAnonBeforeKib;
    console.log(`snapshot install (${SNAPSHOT_MIB} MiB of values): follower VmHWM ${mib(baselineKib)} -> ${mib(baselineKib + growthKib)} (+${mib(growthKib)}), RssAnon ${mib(baselineAnonKib)} -> peak ${mib(peakAnonKib)} (+${mib(anonGrowthKib)})`);
    console.log(`snapshot send: leader VmRSS ${mib(leaderBeforeKib)}, VmHWM +${mib(leaderGrowthKib)}, RssAnon ${mib(leaderAnonBeforeKib)} -> peak ${mib(leaderPeakAnonKib)} (+${mib(leaderAnonGrowthKib)})`);
    expect(stopped.log()).toMatch(/saved snapshot from leader to disk/);
    const bound = SNAPSHOT_MIB * MAX_GROWTH_FRACTION * 1024;
    expect(growthKib).toBeLessThan(bound);
    expect(anonGrowthKib).toBeLessThan(bound);
    expect(leaderGrowthKib).toBeLessThan(bound);
    expect(leaderAnonGrowthKib).toBeLessThan(bound);

    const hashes = await hashKv(c.members, rev);
    expect(new Set(hashes).size, JSON.stringify(hashes)).toBe(1);
    // The spooled file is gone once installed.
    expect(fs.readdirSync(path.join(stopped.dataDir, 'member', 'snap')).filter((n) => n.includes('.snap.db'))).toEqual([]);
    const r = await stopped.grpc.range({ key: Buffer.from(`big/${String(puts - 1).padStart(8, '0')}`), serializable: true });
    expect(r.ok?.kvs?.[0]?.value?.readUInt32BE(0)).toBe(puts - 1);
  }, TEST_TIMEOUT_MS);

  it('Maintenance.Snapshot of that backend (etcdctl snapshot save) stays far below its size', async () => {
    const leader = await c.leader();
    const pid = leader.pid;
    resetPeak(pid);
    const beforeKib = procStatusKib(pid, 'VmRSS');
    const anonBeforeKib = procStatusKib(pid, 'RssAnon');
    const anon = sampleAnon(pid);
    const file = path.join(c.baseDir, 'memory.snapshot.db');
    const r = await etcdctl(leader.endpoint, ['snapshot', 'save', file], { timeoutMs: TEST_TIMEOUT_MS });
    const peakAnonKib = anon();
    expect(r.code, r.stderr).toBe(0);
    const growthKib = procStatusKib(pid, 'VmHWM') - beforeKib;
    const sizeMib = fs.statSync(file).size / MIB;
    console.log(`Maintenance.Snapshot (${sizeMib.toFixed(0)} MiB file): VmRSS ${mib(beforeKib)}, VmHWM +${mib(growthKib)}, RssAnon ${mib(anonBeforeKib)} -> peak ${mib(peakAnonKib)} (+${mib(peakAnonKib - anonBeforeKib)})`);
    expect(sizeMib).toBeGreaterThan(SNAPSHOT_MIB);
    expect(growthKib).toBeLessThan(SNAPSHOT_MIB * MAX_GROWTH_FRACTION * 1024);
    expect(peakAnonKib - anonBeforeKib).toBeLessThan(SNAPSHOT_MIB * MAX_GROWTH_FRACTION * 1024);
    fs.rmSync(file, { force: true });
  }, TEST_TIMEOUT_MS);
});
