import { describe } from 'vitest';
import { must } from '../support/grpc-client';
import { conformanceSuite, type Ctx } from './support/harness';
import { create, type WatchResponseMsg } from './support/watch-client';

/**
 * Watch start revisions below the compaction point, side by side with the real etcd 3.4
 * (etcd-api-surface.md §2.5). Observed on etcd 3.4.23:
 *
 *  - a start_revision below compact_revision gets the created response, then
 *    `{watch_id, canceled: true, compact_revision}` with a zero header revision;
 *  - a negative start_revision is not "now": it is compared with the compact revision like any
 *    other, and etcd's compact revision is -1 until the first compaction. So on a never-compacted
 *    store -5 is cancelled with compact_revision -1, while -1 (not below -1) becomes a watcher of
 *    later revisions only (its catch-up read from revision -1 finds nothing); once compacted, every
 *    negative start is cancelled with the real compact revision.
 *
 * The members are this file's own, so "never compacted" holds for the first scenario. Instead of
 * waiting for silence, each transcript ends with a later event on the same stream: anything the
 * server sent for the earlier watchers was sent before it.
 */

/** c.norm, but a negative compact_revision (-1: never compacted) is kept as is, not made relative. */
function norm(c: Ctx): (r: WatchResponseMsg) => unknown {
  return (r) => {
    const n = c.norm(r) as Record<string, unknown>;
    const compact = Number(r.compact_revision);
    return compact < 0 ? { ...n, compact } : n;
  };
}

describe('watch start revisions below the compaction point', () => {
  const scenario = conformanceSuite('startrev');

  scenario('never compacted: start -5 is cancelled with compact_revision -1; start -1 sees only later revisions', async (c) => {
    for (let i = 1; i <= 3; i++) await c.put('k', `v${i}`);
    const minusOne = c.watch();
    minusOne.send(create({ key: c.k('k'), start_revision: -1 }));
    await minusOne.count(1);
    const minusFive = c.watch();
    minusFive.send(create({ key: c.k('k'), start_revision: -5 }));
    await minusFive.count(2);
    // A second watcher on the -5 stream: its event closes that transcript.
    minusFive.send(create({ key: c.k('k') }));
    await minusFive.count(3);
    await c.put('k', 'v4');
    await minusOne.count(2);
    await minusFive.count(4);
    return { minusOne: minusOne.responses.map(norm(c)), minusFive: minusFive.responses.map(norm(c)) };
  });

  scenario('compacted: a compacted start, -1 and -9 are each created then cancelled with compact_revision; a start at the compact revision replays', async (c) => {
    for (let i = 1; i <= 5; i++) await c.put('k', `v${i}`);
    must(await c.client.compact({ revision: c.rev(3) }), 'compact');
    const s = c.watch();
    let n = 0;
    for (const start of [c.rev(2), -1, -9]) {
      s.send(create({ key: c.k('k'), start_revision: start }));
      n += 2;
      await s.count(n);
    }
    s.send(create({ key: c.k('k'), start_revision: c.rev(3) }));
    n += 2;
    await s.count(n);
    await c.put('k', 'v6');
    await s.count(n + 1);
    return s.responses.map(norm(c));
  });
});
