import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FAST_ELECTION_MS, FAST_HEARTBEAT_MS, startCluster, waitFor, type Cluster } from '../support/cluster';
import { etcdctl } from '../support/etcdctl';

/**
 * The backend quota across a cluster: filling it raises a cluster-wide NOSPACE alarm (writes refused
 * on every member, reads and deletes still served); compact, defrag and `alarm disarm` recover,
 * as etcd's maintenance guide describes.
 */

const QUOTA_BYTES = 2 * 1024 * 1024;
const VALUE_BYTES = 128 * 1024;
/** Puts of VALUE_BYTES that certainly exceed the quota (with slack for compression and size refresh). */
const MAX_PUTS = 200;
const NOSPACE = 'etcdserver: mvcc: database space exceeded';

describe('NOSPACE alarm in a cluster (process level)', () => {
  let c: Cluster;

  beforeAll(async () => {
    c = await startCluster({ kind: 'cairn', heartbeatIntervalMs: FAST_HEARTBEAT_MS, electionTimeoutMs: FAST_ELECTION_MS, quotaBackendBytes: QUOTA_BYTES });
  });
  afterAll(async () => {
    await c?.cleanup();
  });

  it('filling the quota raises NOSPACE on every member; reads and deletes still served', async () => {
    const leader = await c.leader();
    await etcdctl(c.endpoints(), ['put', 'small', 'before']);
    // Overwrite one key with incompressible values: every version stays until compaction.
    let refused: string | undefined;
    for (let i = 0; i < MAX_PUTS && !refused; i++) {
      const value = Buffer.alloc(VALUE_BYTES);
      for (let j = 0; j < value.length; j += 4) value.writeUInt32LE((Math.random() * 0xffffffff) >>> 0, j);
      const r = await c.members[i % 3].grpc.put({ key: Buffer.from('big'), value });
      if (r.err) refused = r.err.details;
    }
    expect(refused).toBe(NOSPACE);

    // The alarm is cluster-wide: listed by every member, in Status errors, and writes fail everywhere.
    for (const m of c.members) {
      const list = await etcdctl(m.endpoint, ['alarm', 'list']);
      expect(list.stdout, `alarm list on ${m.name}`).toMatch(/alarm:NOSPACE/);
      const put = await etcdctl(m.endpoint, ['put', 'small', 'x']);
      expect(put.stderr, `put on ${m.name}`).toContain(NOSPACE);
    }
    expect((await leader.status())!.errors.join(' ')).toMatch(/alarm:NOSPACE/);
    // Reads and deletes still work.
    expect((await etcdctl(c.endpoints(), ['get', 'small', '--print-value-only'])).stdout.trim()).toBe('before');
    expect((await etcdctl(c.endpoints(), ['del', 'small'])).stdout.trim()).toBe('1');
  });

  it('compact + defrag + alarm disarm recovers', async () => {
    const leader = await c.leader();
    // Recovery, as etcd's maintenance guide has it: compact away the old versions, defrag every member, disarm.
    const rev = (await leader.status())!.revision;
    const compact = await etcdctl(c.endpoints(), ['compact', String(rev), '--physical']);
    expect(compact.stdout).toContain(`compacted revision ${rev}`);
    const defrag = await etcdctl(c.endpoints(), ['defrag'], { timeoutMs: 60_000 });
    expect(defrag.code, defrag.stderr).toBe(0);
    for (const m of c.members) expect(defrag.stdout).toContain(`Finished defragmenting etcd member[${m.endpoint}]`);
    const sizes = await Promise.all(c.members.map(async (m) => (await m.status())!.dbSize));
    expect(Math.max(...sizes), `dbSize after defrag: ${sizes.join(', ')}`).toBeLessThan(QUOTA_BYTES);
    const disarm = await etcdctl(c.endpoints(), ['alarm', 'disarm']);
    expect(disarm.code, disarm.stderr).toBe(0);
    for (const m of c.members) {
      await waitFor(`alarm cleared on ${m.name}`, 5_000, async () => (await etcdctl(m.endpoint, ['alarm', 'list'])).stdout.trim() === '');
      const put = await etcdctl(m.endpoint, ['put', `after-${m.name}`, 'x']);
      expect(put.stdout.trim(), put.stderr).toBe('OK');
    }
    expect((await leader.status())!.errors).toEqual([]);
  });
});
