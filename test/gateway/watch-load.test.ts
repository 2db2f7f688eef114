import * as http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../support/cluster';
import { connect, must, type EtcdClient } from '../support/grpc-client';
import { startMember, type Member } from '../support/member';

/**
 * Gateway watches under load, on one cairn member: a watcher whose HTTP client stops reading must
 * not stop the member serving gRPC clients (its events wait in the hub's bounded queue, as etcd's
 * slow watchers do, instead of piling up in the HTTP response), and must get every event once it
 * reads again; many concurrent gateway watch streams each get their events, and closing them
 * cancels their watchers.
 */

const b64 = (s: string): string => Buffer.from(s).toString('base64');
/**
 * More responses than a watcher may queue (WATCHER_BUFFER_RESPONSES, 128) plus those in flight to
 * its HTTP response (STREAM_INFLIGHT_WRITES, 64), so only a slow-watcher move can hold them.
 */
const SLOW_PUTS = 600;
const VALUE_BYTES = 16 * 1024;
const CONCURRENT_WATCHES = 100;
const DEADLINE_MS = 30_000;

/** A gateway watch over a raw HTTP/1.1 request, read line by line under the test's control. */
class RawWatch {
  private res?: http.IncomingMessage;
  private buffered = '';
  readonly lines: string[] = [];
  private readonly req: http.ClientRequest;

  constructor(base: string, body: string) {
    this.req = http.request(`${base}/v3/watch`, { method: 'POST', agent: false });
    this.req.on('response', (res) => {
      this.res = res;
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        this.buffered += chunk;
        const parts = this.buffered.split('\n');
        this.buffered = parts.pop()!;
        this.lines.push(...parts);
      });
    });
    this.req.on('error', () => undefined);
    this.req.end(body);
  }

  pause(): void {
    this.res?.pause();
  }

  resume(): void {
    this.res?.resume();
  }

  close(): void {
    this.req.destroy();
  }

  /** The PUT events received so far, as [key, mod_revision]. */
  puts(): [string, number][] {
    const out: [string, number][] = [];
    for (const l of this.lines) {
      const events = (JSON.parse(l) as { result: { events?: { type?: string; kv: { key: string; mod_revision: string } }[] } }).result.events ?? [];
      for (const e of events) if (e.type === undefined) out.push([Buffer.from(e.kv.key, 'base64').toString(), Number(e.kv.mod_revision)]);
    }
    return out;
  }
}

async function gauge(m: Member, name: string): Promise<number> {
  const text = await (await fetch(`${m.clientUrl}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line ? Number(line.split(' ')[1]) : Number.NaN;
}

let member: Member;
let client: EtcdClient;

beforeAll(async () => {
  member = await startMember({ kind: 'cairn' });
  client = connect(member.endpoint);
});

afterAll(async () => {
  client?.close();
  await member?.cleanup();
});

describe('gateway watches under load', () => {
  it('a watcher that stops reading does not stop gRPC clients, becomes a slow watcher, and then gets every event', async () => {
    const slow = new RawWatch(member.clientUrl, JSON.stringify({ create_request: { key: b64('s/'), range_end: b64('s0') } }));
    await waitFor('the watch to be created', DEADLINE_MS, () => slow.lines.length >= 1);
    slow.pause();
    try {

    const value = Buffer.alloc(VALUE_BYTES, 'v');
    for (let i = 0; i < SLOW_PUTS; i++) must(await client.put({ key: Buffer.from(`s/${String(i).padStart(4, '0')}`), value }), `put ${i}`);
    const count = must(await client.range({ key: Buffer.from('s/'), range_end: Buffer.from('s0'), count_only: true }), 'range');
    expect(Number(count.count)).toBe(SLOW_PUTS);
    // Backpressure reached the watch hub: the stalled watcher was moved to the unsynced group.
    await waitFor('a slow watcher', DEADLINE_MS, async () => (await gauge(member, 'etcd_debugging_mvcc_slow_watcher_total')) >= 1);

    slow.resume();
    await waitFor('every event after resuming', DEADLINE_MS, () => slow.puts().length >= SLOW_PUTS);
    const puts = slow.puts();
    expect(puts.map(([k]) => k)).toEqual(Array.from({ length: SLOW_PUTS }, (_, i) => `s/${String(i).padStart(4, '0')}`));
    expect(puts.map(([, rev]) => rev)).toEqual([...puts.map(([, rev]) => rev)].sort((a, b) => a - b));
    } finally {
      slow.close();
    }
  });

  it('a keepalive body arriving in pieces, split inside a request, is read as its requests in order', async () => {
    const grant = must(await client.leaseGrant({ ID: '4242', TTL: 60 }), 'grant');
    expect(grant.ID).toBe('4242');
    const req = http.request(`${member.clientUrl}/v3/lease/keepalive`, { method: 'POST', agent: false });
    let body = '';
    const answer = new Promise<string>((resolve, reject) => {
      req.on('response', (res) => {
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve(body));
      });
      req.on('error', reject);
    });
    // The first piece ends inside the second request; the rest is sent once the first request is
    // answered, so the server has read the first piece on its own.
    req.write('{"ID":"4242"}\n{"ID":"42');
    await waitFor('the first request to be answered', DEADLINE_MS, () => body.includes('\n'));
    req.write('42"}\n{"ID":42');
    req.end('42} {"ID":"7"}');
    const lines = (await answer).split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { result: { ID: string; TTL?: string } }).result);
    expect(lines.map((r) => [r.ID, r.TTL])).toEqual([
      ['4242', '60'],
      ['4242', '60'],
      ['4242', '60'],
      ['7', undefined],
    ]);
  });

  it(`${CONCURRENT_WATCHES} concurrent gateway watches each get the event; closing them cancels their watchers`, async () => {
    const watches = Array.from({ length: CONCURRENT_WATCHES }, () => new RawWatch(member.clientUrl, JSON.stringify({ create_request: { key: b64('many') } })));
    await waitFor('every watch created', DEADLINE_MS, () => watches.every((w) => w.lines.length >= 1));
    expect(await gauge(member, 'etcd_debugging_mvcc_watcher_total')).toBeGreaterThanOrEqual(CONCURRENT_WATCHES);
    const put = must(await client.put({ key: Buffer.from('many'), value: Buffer.from('1') }), 'put');
    await waitFor('every watch to see the put', DEADLINE_MS, () => watches.every((w) => w.puts().length === 1));
    for (const w of watches) expect(w.puts()).toEqual([['many', Number(put.header.revision)]]);
    for (const w of watches) w.close();
    await waitFor('the watchers to be cancelled', DEADLINE_MS, async () => (await gauge(member, 'etcd_debugging_mvcc_watcher_total')) === 0);
  });
});
