import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { scrape, valueOf, type Scrape } from '../metrics/prom-text';
import { waitFor } from '../support/cluster';
import { startMember, type Member } from '../support/member';
import { b64, post, StreamCall } from './gateway-client';

/**
 * etcd's gateway is a gRPC client of its own member, so every JSON request is also a gRPC call in
 * grpc_server_*. The same gateway requests go to a fresh etcd 3.4 and a fresh cairn; the counters
 * each moved by must agree.
 */
let etcd: Member;
let cairn: Member;

beforeAll(async () => {
  [etcd, cairn] = await Promise.all([startMember({ kind: 'etcd', name: 'gwm' }), startMember({ kind: 'cairn', name: 'gwm' })]);
});

afterAll(async () => {
  await Promise.all([etcd?.cleanup(), cairn?.cleanup()]);
});

const SERIES: [string, Record<string, string>][] = [
  ['grpc_server_started_total', { grpc_method: 'Range' }],
  ['grpc_server_handled_total', { grpc_method: 'Range', grpc_code: 'OK' }],
  ['grpc_server_handled_total', { grpc_method: 'Put', grpc_code: 'OK' }],
  ['grpc_server_handled_total', { grpc_method: 'Put', grpc_code: 'InvalidArgument' }],
  ['grpc_server_msg_received_total', { grpc_method: 'Put' }],
  ['grpc_server_msg_sent_total', { grpc_method: 'Range' }],
  ['grpc_server_started_total', { grpc_method: 'LeaseKeepAlive', grpc_type: 'bidi_stream' }],
  ['grpc_server_msg_received_total', { grpc_method: 'LeaseKeepAlive' }],
  ['grpc_server_msg_sent_total', { grpc_method: 'LeaseKeepAlive' }],
];

async function moved(m: Member): Promise<number[]> {
  const before = await scrape(m.clientUrl);
  for (let i = 0; i < 3; i++) await post(m.clientUrl, '/v3/kv/put', { key: b64(`k${i}`), value: b64('v') });
  await post(m.clientUrl, '/v3/kv/put', { value: b64('no key') });
  for (let i = 0; i < 4; i++) await post(m.clientUrl, '/v3/kv/range', { key: b64('k0') });
  await post(m.clientUrl, '/v3/lease/grant', { ID: '500', TTL: 60 });
  // Two keepalives in one body, both answered; the stream ends with the body.
  const ka = await StreamCall.open(m.clientUrl, '/v3/lease/keepalive', '{"ID":"500"} {"ID":"500"}');
  await ka.rest();
  const after = await scrapeOnceKeepaliveHandled(m, before);
  return SERIES.map(([name, labels]) => valueOf(after, name, labels) - (valueOf(before, name, labels) || 0));
}

/** The keepalive stream is counted handled when the server sees it end: poll for that (bounded). */
async function scrapeOnceKeepaliveHandled(m: Member, before: Scrape): Promise<Scrape> {
  const handled = (x: Scrape): number => valueOf(x, 'grpc_server_handled_total', { grpc_method: 'LeaseKeepAlive' }) || 0;
  return waitFor(`${m.kind}: the keepalive stream to be counted as handled`, 10_000, async () => {
    const s = await scrape(m.clientUrl);
    return handled(s) > handled(before) && s;
  });
}

describe('gateway requests in grpc_server_*', () => {
  it('count as gRPC calls, as on etcd 3.4', async () => {
    const [want, got] = await Promise.all([moved(etcd), moved(cairn)]);
    expect(got).toEqual(want);
    // The calls were seen at all (a counter that never moves would compare equal to itself).
    expect(want[1]).toBe(4);
  });
});
