import { describe } from 'vitest';
import { must } from '../support/grpc-client';
import { conformanceSuite } from './support/harness';
import { cancel, create, prefixEnd, progress } from './support/watch-client';

/**
 * Watch conformance against the real etcd (etcd-api-surface.md §2.5). Every scenario's transcript
 * (normalised responses) must equal etcd's. Both members run with a 1 s progress interval and a
 * small --max-request-bytes so fragmenting is reachable.
 */
const MAX_REQUEST_BYTES = 4096;

describe('watch conformance', () => {
  const scenario = conformanceSuite('watch', ['--experimental-watch-progress-notify-interval=1s', `--max-request-bytes=${MAX_REQUEST_BYTES}`]);

  scenario('watch IDs start at 0 per stream; a client-chosen ID is kept; a duplicate ID is refused', async (c) => {
    const s = c.watch();
    s.send(create({ key: c.k('a') }));
    await s.count(1);
    s.send(create({ key: c.k('a'), watch_id: 7 }));
    await s.count(2);
    s.send(create({ key: c.k('a') }));
    await s.count(3);
    s.send(create({ key: c.k('a'), watch_id: 7 }));
    await s.count(4);
    const other = c.watch();
    other.send(create({ key: c.k('a') }));
    await other.count(1);
    await c.put('a', 'v');
    await s.count(7);
    await other.count(2);
    const rs = await c.settle(s);
    // Responses of different watchers may interleave in any order; each watcher's own order is what counts.
    const byId = (a: { id: number }, b: { id: number }): number => a.id - b.id;
    const created = rs.slice(0, 4).map(c.norm);
    const events = (rs.slice(4).map(c.norm) as { id: number }[]).sort(byId);
    return { created, events, other: (await c.settle(other)).map(c.norm) };
  });

  scenario('an empty range is refused with "mvcc: watcher range is empty"; range_end "\\x00" watches every key >= key', async (c) => {
    const s = c.watch();
    s.send(create({ key: c.k('b'), range_end: c.k('a') }));
    await s.count(1);
    s.send(create({ key: c.k('b'), range_end: Buffer.from([0]) }));
    await s.count(2);
    await c.put('a', '1');
    await c.put('c', '2');
    await s.count(3);
    return (await c.settle(s)).map(c.norm);
  });

  scenario('start_revision 0 means now; one created response precedes the events', async (c) => {
    await c.put('k', 'old');
    const s = c.watch();
    s.send(create({ key: c.k('k') }));
    await s.count(1);
    await c.put('k', 'new1');
    await c.put('k', 'new2');
    await s.count(3);
    return (await c.settle(s)).map(c.norm);
  });

  scenario('a historical start_revision replays history inclusively with prev_kv, then continues live', async (c) => {
    for (let i = 0; i < 5; i++) await c.put(`p/${i % 2}`, `v${i}`);
    await c.del('p/0');
    const s = c.watch();
    s.send(create({ key: c.k('p/'), range_end: prefixEnd(c.prefix + 'p/'), start_revision: c.rev(2), prev_kv: true }));
    await s.count(2);
    // The replay is all there (no second copy of it) before the live write.
    await c.settle(s);
    await c.put('p/1', 'live');
    return (await c.settle(s)).map(c.norm);
  });

  scenario('a future start_revision waits until the store reaches it', async (c) => {
    const s = c.watch();
    s.send(create({ key: c.k('k'), start_revision: c.rev(3) }));
    await s.count(1);
    for (let i = 1; i <= 4; i++) await c.put('k', `v${i}`);
    await s.count(3);
    return (await c.settle(s)).map(c.norm);
  });

  scenario('a compacted start_revision is cancelled with compact_revision; a start at the compact revision itself works', async (c) => {
    for (let i = 1; i <= 4; i++) await c.put('k', `v${i}`);
    must(await c.client.compact({ revision: c.rev(3) }), 'compact');
    const s = c.watch();
    s.send(create({ key: c.k('k'), start_revision: c.rev(2) }));
    await s.count(2);
    s.send(create({ key: c.k('k'), start_revision: c.rev(3) }));
    await s.count(4);
    return (await c.settle(s)).map(c.norm);
  });

  scenario('NOPUT and NODELETE filters; nothing is sent when every event is filtered out', async (c) => {
    const s = c.watch();
    s.send(create({ key: c.k('k'), filters: [0] }));
    await s.count(1);
    s.send(create({ key: c.k('k'), filters: [1] }));
    await s.count(2);
    s.send(create({ key: c.k('k'), filters: [0, 1] }));
    await s.count(3);
    await c.put('k', '1');
    await c.del('k');
    await s.count(5);
    return (await c.settle(s)).map(c.norm);
  });

  scenario('prev_kv on updates and deletes, including a range delete in one revision', async (c) => {
    const s = c.watch();
    s.send(create({ key: c.k('a'), range_end: c.k('z'), prev_kv: true }));
    await s.count(1);
    await c.put('a', '1');
    await c.put('a', '2');
    await c.put('b', '3');
    await c.del('a', 'c');
    await s.count(5);
    return (await c.settle(s)).map(c.norm);
  });

  scenario('cancel answers canceled with the current revision; an unknown ID gets no response', async (c) => {
    const s = c.watch();
    s.send(create({ key: c.k('k') }));
    await s.count(1);
    s.send(cancel(0));
    await s.count(2);
    s.send(cancel(99));
    await c.put('k', 'after-cancel');
    s.send(progress());
    await s.count(3);
    return (await c.settle(s)).map(c.norm);
  });

  scenario('RequestProgress with every watcher synced answers watch_id -1 at the current revision', async (c) => {
    const s = c.watch();
    s.send(create({ key: c.k('k') }));
    await s.count(1);
    await c.put('k', '1');
    await s.count(2);
    s.send(progress());
    await s.count(3);
    return (await c.settle(s)).map(c.norm);
  });

  scenario('progress_notify watchers get a periodic {watch_id, header.revision} when idle', async (c) => {
    const s = c.watch();
    s.send(create({ key: c.k('k'), progress_notify: true }));
    await s.count(1);
    await c.put('k', '1');
    await s.until((rs) => rs.some((r) => r.events.length === 0 && !r.created), 5000, 'a progress notification');
    const first = s.responses.find((r) => r.events.length === 0 && !r.created)!;
    return [...s.responses.slice(0, 2).map(c.norm), c.norm(first)];
  });

  scenario('fragment=true splits a response larger than max-request-bytes + 512 KiB', async (c) => {
    const value = 'x'.repeat(1000);
    for (let i = 0; i < 600; i++) await c.put(`f/${String(i).padStart(4, '0')}`, value);
    const s = c.watch();
    s.send(create({ key: c.k('f/'), range_end: prefixEnd(c.prefix + 'f/'), start_revision: c.rev(1), fragment: true }));
    s.send(create({ key: c.k('f/'), range_end: prefixEnd(c.prefix + 'f/'), start_revision: c.rev(1) }));
    await s.until((rs) => rs.filter((r) => !r.created && Number(r.watch_id) === 1).length >= 1, 15_000, 'unfragmented batch');
    await s.until((rs) => rs.some((r) => Number(r.watch_id) === 0 && !r.created && !r.fragment), 15_000, 'last fragment');
    return s.responses.sort((a, b) => Number(a.watch_id) - Number(b.watch_id)).map((r) => ({ id: Number(r.watch_id), created: r.created, fragment: r.fragment, events: r.events.length, first: r.events[0]?.kv?.key.toString().slice(c.prefix.length) }));
  }, 60_000);

  scenario('a revoked lease deletes every attached key in one revision; watchers see DELETEs with prev_kv', async (c) => {
    const id = String(0x5a000000 + Math.floor(Math.random() * 0xffffff));
    must(await c.client.leaseGrant({ ID: id, TTL: '60' }), 'grant');
    const s = c.watch();
    s.send(create({ key: c.k('l/'), range_end: prefixEnd(c.prefix + 'l/'), prev_kv: true }));
    await s.count(1);
    await c.put('l/b', '2', id);
    await c.put('l/a', '1', id);
    await c.put('l/c', '3', id);
    await s.count(4);
    must(await c.client.leaseRevoke({ ID: id }), 'revoke');
    await s.count(5);
    return (await c.settle(s)).map(c.norm);
  });
});
