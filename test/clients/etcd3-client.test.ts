import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Etcd3 } from 'etcd3';
import { startMember, type Member } from '../support/member';

/** The npm `etcd3` client (what many Node programs use) against a cairn member, unchanged. */

let member: Member;
let client: Etcd3;

beforeAll(async () => {
  member = await startMember({ kind: 'cairn' });
  client = new Etcd3({ hosts: member.clientUrl });
});

afterAll(async () => {
  client?.close();
  await member?.cleanup();
});

describe('npm etcd3 client', () => {
  it('put, get and delete a key', async () => {
    await client.put('app/config').value('v1');
    expect(await client.get('app/config').string()).toBe('v1');
    await client.put('app/config').value('v2');
    expect(await client.get('app/config').string()).toBe('v2');
    const del = await client.delete().key('app/config').exec();
    expect(del.deleted).toBe('1');
    expect(await client.get('app/config').string()).toBeNull();
  });

  it('getAll().prefix() lists keys in order with their values', async () => {
    for (let i = 0; i < 5; i++) await client.put(`list/${i}`).value(`value-${i}`);
    await client.put('listx').value('outside');
    expect(await client.getAll().prefix('list/').strings()).toEqual({
      'list/0': 'value-0',
      'list/1': 'value-1',
      'list/2': 'value-2',
      'list/3': 'value-3',
      'list/4': 'value-4',
    });
    expect(await client.getAll().prefix('list/').keys()).toEqual(['list/0', 'list/1', 'list/2', 'list/3', 'list/4']);
    expect(await client.getAll().prefix('list/').count()).toBe(5);
    expect(await client.getAll().prefix('list/').limit(2).sort('Key', 'Descend').keys()).toEqual(['list/4', 'list/3']);
  });

  it('range between two keys, and delete a range', async () => {
    const inRange = await client.getAll().inRange({ start: 'list/1', end: 'list/3' }).keys();
    expect(inRange).toEqual(['list/1', 'list/2']);
    const res = await client.delete().inRange({ start: 'list/1', end: 'list/3' }).exec();
    expect(res.deleted).toBe('2');
    expect(await client.getAll().prefix('list/').keys()).toEqual(['list/0', 'list/3', 'list/4']);
    await client.delete().prefix('list/').exec();
    expect(await client.getAll().prefix('list/').count()).toBe(0);
  });

  it('if().then().else() transactions take the right branch, atomically', async () => {
    await client.put('lock/owner').value('alice');
    const taken = await client
      .if('lock/owner', 'Value', '==', 'alice')
      .then(client.put('lock/owner').value('bob'), client.put('lock/audit').value('alice->bob'))
      .else(client.get('lock/owner'))
      .commit();
    expect(taken.succeeded).toBe(true);
    expect(await client.get('lock/owner').string()).toBe('bob');
    expect(await client.get('lock/audit').string()).toBe('alice->bob');

    const missed = await client
      .if('lock/owner', 'Value', '==', 'alice')
      .then(client.put('lock/owner').value('carol'))
      .else(client.get('lock/owner'))
      .commit();
    expect(missed.succeeded).toBe(false);
    expect(missed.responses[0].response_range.kvs[0].value.toString()).toBe('bob');
    expect(await client.get('lock/owner').string()).toBe('bob');

    const created = await client.if('fresh', 'Create', '==', 0).then(client.put('fresh').value('1')).commit();
    expect(created.succeeded).toBe(true);
    const again = await client.if('fresh', 'Create', '==', 0).then(client.put('fresh').value('2')).commit();
    expect(again.succeeded).toBe(false);
    expect(await client.get('fresh').string()).toBe('1');
  });

  it('reports etcd errors as the client expects', async () => {
    await expect(client.put('k').value('v').lease('123456')).rejects.toThrow(/requested lease not found/);
  });
});
