import { spawn } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { waitFor } from '../support/cluster';
import { ETCDCTL_BIN } from '../support/etcdctl';
import { connect, must, type EtcdClient } from '../support/grpc-client';
import { startMember, trackChild, type Member } from '../support/member';

/**
 * The no-downtime migration of docs/migration.md: `etcdctl make-mirror` from a live etcd into
 * cairn copies the existing keys, then follows etcd's watch, deletes included, while writes go on.
 */
const members: Member[] = [];
afterAll(async () => {
  for (const m of members) await m.cleanup();
});

async function snapshotOf(c: EtcdClient): Promise<Array<[string, string]>> {
  const r = must(await c.range({ key: Buffer.from('/app/'), range_end: Buffer.from('/app0') }));
  return (r.kvs as Array<{ key: Buffer; value: Buffer }>).map((kv) => [kv.key.toString(), kv.value.toString()]);
}

describe('etcdctl make-mirror from etcd into cairn', () => {
  it('copies existing keys and follows later puts and deletes', async () => {
    const etcd = await startMember({ kind: 'etcd' });
    members.push(etcd);
    const cairn = await startMember({ kind: 'cairn' });
    members.push(cairn);
    const src = connect(etcd.endpoint);
    const dst = connect(cairn.endpoint);
    try {
      for (let i = 0; i < 20; i++) must(await src.put({ key: Buffer.from(`/app/k${i}`), value: Buffer.from(`v${i}`) }));
      const mirror = spawn(ETCDCTL_BIN, [`--endpoints=${etcd.endpoint}`, 'make-mirror', '--prefix', '/app/', cairn.endpoint], {
        env: { ...process.env, ETCDCTL_API: '3' },
        stdio: 'ignore',
      });
      trackChild(mirror);
      try {
        must(await src.put({ key: Buffer.from('/app/k1'), value: Buffer.from('changed') }));
        must(await src.deleteRange({ key: Buffer.from('/app/k2') }));
        must(await src.put({ key: Buffer.from('/app/new'), value: Buffer.from('n') }));
        const want = await snapshotOf(src);
        expect(want).toHaveLength(20);
        let got = await snapshotOf(dst);
        await waitFor('the mirror to catch up', 20_000, async () => JSON.stringify((got = await snapshotOf(dst))) === JSON.stringify(want)).catch(() => undefined);
        expect(got).toEqual(want);
      } finally {
        mirror.kill('SIGTERM');
      }
    } finally {
      src.close();
      dst.close();
    }
  });
});
