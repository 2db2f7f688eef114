import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { Compactor, retentionMs } from '../../server/api/compactor';

function target(revs: { rev: number }, leader = true) {
  const compacted: number[] = [];
  return {
    compacted,
    t: { isLeader: leader, currentRevision: () => revs.rev, compact: async (r: number) => void compacted.push(r) },
  };
}

describe('auto compaction', () => {
  it('periodic mode compacts to the revision seen one retention ago', async () => {
    let now = 0;
    const revs = { rev: 10 };
    const { compacted, t } = target(revs);
    const c = new Compactor('periodic', '1m', t, pino({ level: 'silent' }), () => now);
    c.tick(); // t=0: rev 10 sampled
    now = 30_000;
    revs.rev = 50;
    c.tick(); // nothing is a minute old yet
    expect(compacted).toEqual([]);
    now = 61_000;
    revs.rev = 90;
    c.tick();
    await Promise.resolve();
    expect(compacted).toEqual([10]);
  });

  it('revision mode keeps the last N revisions', async () => {
    const revs = { rev: 1500 };
    const { compacted, t } = target(revs);
    new Compactor('revision', '1000', t, pino({ level: 'silent' })).tick();
    await Promise.resolve();
    expect(compacted).toEqual([500]);
  });

  it('only the leader compacts, and a retention of 0 disables it', async () => {
    const { compacted, t } = target({ rev: 5000 }, false);
    new Compactor('revision', '10', t, pino({ level: 'silent' })).tick();
    await Promise.resolve();
    expect(compacted).toEqual([]);
    expect(new Compactor('periodic', '0', t, pino({ level: 'silent' })).enabled).toBe(false);
  });

  it('reads a bare number as hours, as etcd does', () => {
    expect(retentionMs('1')).toBe(3_600_000);
    expect(retentionMs('30m')).toBe(1_800_000);
  });
});
