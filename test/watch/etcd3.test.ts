import { Etcd3, type IKeyValue } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../support/cluster';
import { startMember, type Member } from '../support/member';

/**
 * The npm etcd3 client's watch builder against a bin/cairn member, including resuming after the
 * member restarts: etcd3 re-creates its watchers from the last revision it saw + 1, so events
 * committed while it was away arrive once, in order, with nothing lost and nothing repeated.
 */

let member: Member;
let client: Etcd3;

beforeAll(async () => {
  member = await startMember({ kind: 'cairn' });
  client = new Etcd3({ hosts: member.endpoint });
}, 60_000);

afterAll(async () => {
  client?.close();
  await member?.cleanup();
});

const fmt = (type: string, kv: IKeyValue): string => `${kv.mod_revision} ${type} ${kv.key.toString()}=${kv.value.toString()}`;

async function until(pred: () => boolean, timeoutMs: number, what: string): Promise<void> {
  await waitFor(what, timeoutMs, pred);
}

describe('npm etcd3 watch()', () => {
  it('prefix watch with prev_kv sees puts and deletes in order; key() watch sees only its key', async () => {
    const got: string[] = [];
    const single: string[] = [];
    const w = await client.watch().prefix('/w1/').withPreviousKV().create();
    w.on('put', (kv, prev) => got.push(`${fmt('PUT', kv)}${prev ? ` prev=${prev.value.toString()}` : ''}`));
    w.on('delete', (kv, prev) => got.push(`${fmt('DELETE', kv)}${prev ? ` prev=${prev.value.toString()}` : ''}`));
    const k = await client.watch().key('/w1/a').create();
    k.on('put', (kv) => single.push(fmt('PUT', kv)));
    const r1 = Number((await client.put('/w1/a').value('1').exec()).header.revision);
    const r2 = Number((await client.put('/w1/b').value('2').exec()).header.revision);
    const r3 = Number((await client.put('/w1/a').value('3').exec()).header.revision);
    const r4 = Number((await client.delete().key('/w1/b').exec()).header.revision);
    await until(() => got.length >= 4 && single.length >= 2, 10_000, 'events');
    expect(got).toEqual([`${r1} PUT /w1/a=1`, `${r2} PUT /w1/b=2`, `${r3} PUT /w1/a=3 prev=1`, `${r4} DELETE /w1/b= prev=2`]);
    expect(single).toEqual([`${r1} PUT /w1/a=1`, `${r3} PUT /w1/a=3`]);
    await w.cancel();
    await k.cancel();
  }, 30_000);

  it('resumes after the member restarts: events before, during reconnection and after arrive exactly once, in order', async () => {
    const got: string[] = [];
    const w = await client.watch().prefix('/w2/').create();
    w.on('put', (kv) => got.push(fmt('PUT', kv)));
    w.on('delete', (kv) => got.push(fmt('DELETE', kv)));
    let disconnects = 0;
    let reconnects = 0;
    w.on('disconnected', () => disconnects++);
    w.on('connected', () => reconnects++);
    w.on('error', () => undefined);
    const want: string[] = [];
    const put = async (k: string, v: string): Promise<void> => {
      const rev = Number((await client.put(k).value(v).exec()).header.revision);
      want.push(`${rev} PUT ${k}=${v}`);
    };
    for (let i = 0; i < 5; i++) await put(`/w2/k${i}`, `before${i}`);
    await until(() => got.length >= 5, 10_000, 'events before the restart');

    await member.restart();
    // Written as soon as the member is back, likely before the watcher has re-attached: they must
    // come from history when it resumes at its last revision + 1.
    const c2 = new Etcd3({ hosts: member.endpoint });
    for (let i = 0; i < 5; i++) {
      const rev = Number((await c2.put(`/w2/k${i}`).value(`during${i}`).exec()).header.revision);
      want.push(`${rev} PUT /w2/k${i}=during${i}`);
    }
    c2.close();
    await until(() => reconnects > 0, 20_000, 'the watcher to reconnect');
    for (let i = 0; i < 5; i++) await put(`/w2/k${i}`, `after${i}`);
    const drev = Number((await client.delete().key('/w2/k0').exec()).header.revision);
    want.push(`${drev} DELETE /w2/k0=`);
    // Nothing more (no duplicate) may arrive: a last put in the watched prefix is a barrier, as the
    // watcher gets its events in revision order; anything repeated arrives before its event.
    await put('/w2/~barrier', 'end');
    await until(() => got.some((g) => g.endsWith(' PUT /w2/~barrier=end')), 20_000, 'the barrier event');
    expect(disconnects).toBeGreaterThan(0);
    expect(got).toEqual(want);
    await w.cancel();
  }, 60_000);
});
