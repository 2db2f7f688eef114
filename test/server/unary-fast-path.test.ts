import * as http2 from 'node:http2';
import * as zlib from 'node:zlib';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { protoRoot, serviceDefinition } from '../../proto';
import { UnaryFastPath, injectedHttp2Server, unaryMethods } from '../../server/v3rpc/unary-fast-path';
import { startMember, type Member } from '../support/member';

/**
 * The KV service's unary calls are served off the HTTP/2 stream in front of grpc-js
 * (server/v3rpc/unary-fast-path.ts), which still serves everything else, a gzip-compressed request
 * among them. Each case here sends the same call twice over raw HTTP/2 to a real member: plain
 * (the fast path) and gzip-compressed (grpc-js), and the two answers must be the same on the wire:
 * response headers, messages and trailers, successes and every failure a unary call can meet.
 */
let member: Member;
let session: http2.ClientHttp2Session;

const root = protoRoot();
const RangeRequest = root.lookupType('etcdserverpb.RangeRequest');
const PutRequest = root.lookupType('etcdserverpb.PutRequest');
const PutResponse = root.lookupType('etcdserverpb.PutResponse');

interface Answer {
  headers: Record<string, unknown>;
  messages: string[];
  trailers: Record<string, unknown>;
}

function frame(message: Uint8Array, gzip: boolean): Buffer {
  const body = gzip ? zlib.gzipSync(message) : Buffer.from(message);
  const prefix = Buffer.alloc(5);
  prefix[0] = gzip ? 1 : 0;
  prefix.writeUInt32BE(body.length, 1);
  return Buffer.concat([prefix, body]);
}

/** Header names and values (no Node symbols); the Date header differs by the second. */
function withoutDate(h: http2.IncomingHttpHeaders): Record<string, unknown> {
  return Object.fromEntries(Object.entries(h).filter(([k]) => k !== 'date'));
}

/** One call: `frames` are the request's DATA (already framed); `end` false leaves the request open. */
function call(path: string, frames: Buffer[], opts: { gzip?: boolean; headers?: http2.OutgoingHttpHeaders; end?: boolean } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = session.request({
      ':method': 'POST',
      ':path': path,
      'content-type': 'application/grpc',
      te: 'trailers',
      ...(opts.gzip ? { 'grpc-encoding': 'gzip' } : {}),
      ...opts.headers,
    });
    let headers: Record<string, unknown> = {};
    let trailers: Record<string, unknown> = {};
    const chunks: Buffer[] = [];
    req.on('response', (h) => (headers = withoutDate(h)));
    req.on('trailers', (t) => (trailers = withoutDate(t)));
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const data = Buffer.concat(chunks);
      const messages: string[] = [];
      for (let off = 0; off < data.length; ) {
        const n = data.readUInt32BE(off + 1);
        messages.push(data.subarray(off, off + 5 + n).toString('hex'));
        off += 5 + n;
      }
      resolve({ headers, messages, trailers });
    });
    req.on('error', reject);
    for (const f of frames) req.write(f);
    if (opts.end !== false) req.end();
  });
}

/** The same call, plain and gzip-compressed: the two answers, for comparing. */
async function bothWays(path: string, messages: Uint8Array[], opts: { headers?: http2.OutgoingHttpHeaders; end?: boolean } = {}): Promise<[Answer, Answer]> {
  const fast = await call(path, messages.map((m) => frame(m, false)), opts);
  const grpcJs = await call(path, messages.map((m) => frame(m, true)), { ...opts, gzip: true });
  return [fast, grpcJs];
}

async function metric(line: string): Promise<number> {
  const text = await (await fetch(`${member.clientUrl}/metrics`)).text();
  const m = text.split('\n').find((l) => l.startsWith(line + ' '));
  return m === undefined ? 0 : Number(m.slice(line.length + 1));
}

beforeAll(async () => {
  member = await startMember({ kind: 'cairn' });
  session = http2.connect(member.clientUrl);
  // The member's end of the connection goes away at cleanup.
  session.on('error', () => undefined);
  const put = PutRequest.encode({ key: Buffer.from('k'), value: Buffer.from('v') }).finish();
  await call('/etcdserverpb.KV/Put', [frame(put, false)]);
}, 60_000);

afterAll(async () => {
  session?.close();
  await member?.cleanup();
});

const RANGE = '/etcdserverpb.KV/Range';
const PUT = '/etcdserverpb.KV/Put';

describe('KV unary calls served before grpc-js', () => {
  it('answers a Range exactly as grpc-js does', async () => {
    const [fast, grpcJs] = await bothWays(RANGE, [RangeRequest.encode({ key: Buffer.from('k') }).finish()]);
    expect(fast.trailers).toEqual({ 'grpc-status': '0', 'grpc-message': 'OK' });
    expect(fast.messages).toHaveLength(1);
    expect(fast).toEqual(grpcJs);
  });

  it('answers a Range whose response is over the copy limit (written after its prefix) as grpc-js does', async () => {
    const big = PutRequest.encode({ key: Buffer.from('big'), value: Buffer.alloc(300 * 1024, 7) }).finish();
    await call(PUT, [frame(big, false)]);
    const [fast, grpcJs] = await bothWays(RANGE, [RangeRequest.encode({ key: Buffer.from('big') }).finish()]);
    expect(fast.messages).toHaveLength(1);
    expect(fast.messages[0].length / 2).toBeGreaterThan(300 * 1024);
    expect(fast).toEqual(grpcJs);
  });

  it('answers a Put with the same headers and trailers, and a response one revision on', async () => {
    const put = PutRequest.encode({ key: Buffer.from('k2'), value: Buffer.from('v2') }).finish();
    const [fast, grpcJs] = await bothWays(PUT, [put]);
    expect({ ...fast, messages: [] }).toEqual({ ...grpcJs, messages: [] });
    const revision = (a: Answer): number => Number((PutResponse.decode(Buffer.from(a.messages[0], 'hex').subarray(5)) as unknown as { header: { revision: { toString(): string } } }).header.revision.toString());
    expect(revision(grpcJs)).toBe(revision(fast) + 1);
  });

  it("answers etcd's errors as grpc-js does (trailers-only)", async () => {
    const [fast, grpcJs] = await bothWays(PUT, [PutRequest.encode({ key: Buffer.alloc(0), value: Buffer.from('v') }).finish()]);
    expect(fast.headers['grpc-status']).toBe('3');
    expect(fast.headers['grpc-message']).toBe('etcdserver:%20key%20is%20not%20provided');
    expect(fast).toEqual(grpcJs);
  });

  it('answers a request with no message, two messages or an undecodable one as grpc-js does', async () => {
    const range = RangeRequest.encode({ key: Buffer.from('k') }).finish();
    for (const messages of [[], [range, range], [Buffer.from([0xff, 0xff, 0xff])]]) {
      const [fast, grpcJs] = await bothWays(RANGE, messages);
      expect(fast.headers['grpc-status']).not.toBe('0');
      expect(fast).toEqual(grpcJs);
    }
  });

  it('answers a deadline that passes before the request ends as grpc-js does', async () => {
    const [fast, grpcJs] = await bothWays(RANGE, [], { headers: { 'grpc-timeout': '20m' }, end: false });
    expect(fast.headers['grpc-status']).toBe('4');
    expect(fast.headers['grpc-message']).toBe('Deadline%20exceeded');
    expect(fast).toEqual(grpcJs);
  });

  it('refuses a message over the receive limit with grpc-js\'s status and text, before reading it', async () => {
    // --max-request-bytes defaults to 1.5 MiB; grpc's limit is that plus etcd's 512 KiB overhead.
    const max = 1.5 * 1024 * 1024 + 512 * 1024;
    const prefix = Buffer.alloc(5);
    prefix.writeUInt32BE(max + 1, 1);
    const fast = await call(RANGE, [prefix], { end: false });
    expect(fast.headers['grpc-status']).toBe('8');
    expect(decodeURI(String(fast.headers['grpc-message']))).toBe(`Received message larger than max (${max + 1} vs ${max})`);
  });

  it('counts calls as the grpc-js interceptor does: an answered one, and one the client resets', async () => {
    const labels = 'grpc_type="unary",grpc_service="etcdserverpb.KV",grpc_method="Range"';
    const series = [`grpc_server_started_total{${labels}}`, `grpc_server_msg_received_total{${labels}}`, `grpc_server_msg_sent_total{${labels}}`, 'etcd_network_client_grpc_received_bytes_total'];
    for (const code of ['OK', 'Canceled', 'Unimplemented']) series.push(`grpc_server_handled_total{${labels},grpc_code="${code}"}`);
    const snapshot = (): Promise<number[]> => Promise.all(series.map(metric));
    const range = RangeRequest.encode({ key: Buffer.from('k') }).finish();
    const deltas: number[][] = [];
    for (const gzip of [false, true]) {
      const before = await snapshot();
      await call(RANGE, [frame(range, gzip)], { gzip });
      // A call the client resets once the member has started it, before its message is complete.
      const req = session.request({ ':method': 'POST', ':path': RANGE, 'content-type': 'application/grpc', te: 'trailers', ...(gzip ? { 'grpc-encoding': 'gzip' } : {}) });
      req.on('error', () => undefined);
      req.write(Buffer.from([0, 0]));
      await expect.poll(() => metric(series[0]), { timeout: 5_000 }).toBe(before[0] + 2);
      const closed = new Promise((resolve) => req.on('close', resolve));
      req.close(http2.constants.NGHTTP2_CANCEL);
      await closed;
      // Both calls handled: OK plus whichever code grpc-js gives the reset one.
      await expect.poll(async () => (await snapshot()).slice(4).reduce((a, b) => a + b) - before.slice(4).reduce((a, b) => a + b), { timeout: 5_000 }).toBe(2);
      const after = await snapshot();
      deltas.push(after.map((v, i) => v - before[i]));
    }
    expect(deltas[0].slice(0, 3)).toEqual([2, 1, 1]);
    expect(deltas[0][4]).toBe(1);
    expect(deltas[0][3]).toBe(range.length);
    expect(deltas[0].slice(4)).toEqual(deltas[1].slice(4));
  });
});

describe('the fast path in front of an HTTP/2 server', () => {
  it("finds the HTTP/2 server behind grpc-js's connection injector (a private field of grpc-js 1.14)", () => {
    const server = new grpc.Server();
    server.createConnectionInjector(grpc.ServerCredentials.createInsecure());
    const h2 = injectedHttp2Server(server);
    expect(h2).toBeDefined();
    expect(h2?.listenerCount('stream')).toBe(1);
    server.forceShutdown();
  });

  it("serves its methods itself and hands every other stream to the server's own listeners", async () => {
    const h2 = http2.createServer();
    const def = serviceDefinition('etcdserverpb', 'KV');
    const served: string[] = [];
    const handler = (name: string) => (c: grpc.ServerUnaryCall<{ key: Buffer }, unknown>, cb: grpc.sendUnaryData<unknown>) => {
      served.push(`${name} ${c.request.key.toString()} ${c.metadata.get('token')[0]}`);
      cb(null, { header: { revision: '7' }, kvs: [], count: '0', more: false });
    };
    const fast = new UnaryFastPath(unaryMethods(def, { Range: handler('Range') }), { maxReceiveMessageBytes: 1024, countCall: () => ({ received: () => undefined, sent: () => undefined, finish: () => undefined, cancelled: () => undefined }) });
    fast.attach(h2);
    const fallback: string[] = [];
    h2.on('stream', (stream, headers) => {
      fallback.push(String(headers[':path']));
      stream.respond({ ':status': 200, 'content-type': 'application/grpc+proto' }, { endStream: true });
    });
    await new Promise<void>((resolve) => h2.listen(0, '127.0.0.1', resolve));
    const { port } = h2.address() as { port: number };
    const client = http2.connect(`http://127.0.0.1:${port}`);
    client.on('error', () => undefined);
    const saved = session;
    session = client;
    try {
      const range = await call(RANGE, [frame(RangeRequest.encode({ key: Buffer.from('abc') }).finish(), false)], { headers: { token: 't1' } });
      expect(range.trailers).toEqual({ 'grpc-status': '0', 'grpc-message': 'OK' });
      const decoded = root.lookupType('etcdserverpb.RangeResponse').decode(Buffer.from(range.messages[0], 'hex').subarray(5)) as unknown as { header: { revision: { toString(): string } } };
      expect(decoded.header.revision.toString()).toBe('7');
      await call(PUT, [frame(PutRequest.encode({ key: Buffer.from('k') }).finish(), false)]);
      await call(RANGE, [frame(RangeRequest.encode({ key: Buffer.from('k') }).finish(), true)], { gzip: true });
    } finally {
      session = saved;
      client.close();
      h2.close();
    }
    expect(served).toEqual(['Range abc t1']);
    // Put has no handler on the fast path; a compressed Range is grpc-js's to decompress.
    expect(fallback).toEqual([PUT, RANGE]);
  });
});
