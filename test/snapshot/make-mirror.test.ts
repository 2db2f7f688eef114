import { spawn } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { waitFor } from '../support/cluster';
import { ETCDCTL_BIN } from '../support/etcdctl';
import { connect, must, type EtcdClient } from '../support/grpc-client';
import { startMember, trackChild, type Member } from '../support/member';

/**
 * The no-downtime migration of docs/migration.md, both ways: `etcdctl make-mirror` from a live etcd
 * into cairn (and from a live cairn back into etcd) copies the existing keys, then follows the
 * source's watch, deletes included, while writes go on.
 */
const members: Member[] = [];
afterAll(async () => {
  for (const m of members) await m.cleanup();
});

async function snapshotOf(c: EtcdClient): Promise<Array<[string, string]>> {
  const r = must(await c.range({ key: Buffer.from('/app/'), range_end: Buffer.from('/app0') }));
  return (r.kvs as Array<{ key: Buffer; value: Buffer }>).map((kv) => [kv.key.toString(), kv.value.toString()]);
}

describe.each([
  ['etcd', 'cairn'],
  ['cairn', 'etcd'],
] as const)('etcdctl make-mirror from %s into %s', (from, to) => {
  it('copies existing keys and follows later puts and deletes', async () => {
    const [source, target] = await Promise.all([startMember({ kind: from }), startMember({ kind: to })]);
    members.push(source, target);
    const src = connect(source.endpoint);
    const dst = connect(target.endpoint);
    try {
      for (let i = 0; i < 20; i++) must(await src.put({ key: Buffer.from(`/app/k${i}`), value: Buffer.from(`v${i}`) }));
      const mirror = spawn(ETCDCTL_BIN, [`--endpoints=${source.endpoint}`, 'make-mirror', '--prefix', '/app/', target.endpoint], {
        env: { ...process.env, ETCDCTL_API: '3' },
        stdio: 'ignore',
      });
      trackChild(mirror);
      try {
        // The initial copy first, so what follows reaches the target through the source's watch.
        await waitFor('the initial copy', 20_000, async () => (await snapshotOf(dst)).length === 20);
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
