import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMember, type Member } from '../support/member';
import { b64, post, StreamCall, type Answer } from './gateway-client';

/**
 * The gateway's size limits with a non-default `--max-request-bytes 1024`, against etcd 3.4 and
 * cairn started with the same flag. Two limits meet a put: gRPC's receive limit on the member
 * (--max-request-bytes + 512 KiB, grpc-go's "received message larger than max") and etcd's own
 * check of the Raft request ("etcdserver: request is too large" past --max-request-bytes).
 */

const MAX_REQUEST_BYTES = 1024;
const GRPC_LIMIT = MAX_REQUEST_BYTES + 512 * 1024;

/** A PutRequest{key: "k", value} whose protobuf encoding is exactly `size` bytes (3-byte value length). */
function putOfEncodedSize(size: number): object {
  // 0x0a 0x01 'k', then 0x12, the value's length as a 3-byte varint, the value.
  const valueLen = size - 3 - 1 - 3;
  return { key: b64('k'), value: Buffer.alloc(valueLen, 'v').toString('base64') };
}

let etcd: Member;
let cairn: Member;

beforeAll(async () => {
  const extraArgs = ['--max-request-bytes', String(MAX_REQUEST_BYTES)];
  [etcd, cairn] = await Promise.all([startMember({ kind: 'etcd', name: 'gwmax', extraArgs }), startMember({ kind: 'cairn', name: 'gwmax', extraArgs })]);
});

afterAll(async () => {
  await Promise.all([etcd?.cleanup(), cairn?.cleanup()]);
});

const mask = (body: string): string => body.replace(/"(cluster_id|member_id|raft_term)":"\d+"/g, '"$1":"X"');

async function sequence(base: string): Promise<{ step: string; answer: Answer }[]> {
  const out: { step: string; answer: Answer }[] = [];
  const call = async (step: string, path: string, body: string | object): Promise<void> => {
    const a = await post(base, path, body);
    out.push({ step, answer: { ...a, body: mask(a.body) } });
  };
  await call('put under --max-request-bytes', '/v3/kv/put', { key: b64('k'), value: Buffer.alloc(512, 'v').toString('base64') });
  await call('put over --max-request-bytes', '/v3/kv/put', { key: b64('k'), value: Buffer.alloc(2 * MAX_REQUEST_BYTES, 'v').toString('base64') });
  await call('put of exactly the gRPC limit', '/v3/kv/put', putOfEncodedSize(GRPC_LIMIT));
  await call('put one byte over the gRPC limit', '/v3/kv/put', putOfEncodedSize(GRPC_LIMIT + 1));
  await call('range still served', '/v3/kv/range', { key: b64('k') });
  const w = await StreamCall.open(base, '/v3/watch', JSON.stringify({ create_request: { key: Buffer.alloc(GRPC_LIMIT, 'w').toString('base64') } }));
  out.push({ step: 'watch whose first request is over the gRPC limit', answer: { status: w.status, headers: w.headers, body: await w.rest() } });
  return out;
}

describe('JSON gateway with --max-request-bytes 1024', () => {
  it('answers puts around both limits as etcd 3.4 does', async () => {
    const [want, got] = await Promise.all([sequence(etcd.clientUrl), sequence(cairn.clientUrl)]);
    expect(got.map((e) => e.step)).toEqual(want.map((e) => e.step));
    for (let i = 0; i < want.length; i++) expect(got[i], want[i].step).toEqual(want[i]);
    // The numbers in grpc-go's message are the encoded message and the limit.
    expect(JSON.parse(want[3].answer.body)).toMatchObject({ code: 8, message: `grpc: received message larger than max (${GRPC_LIMIT + 1} vs. ${GRPC_LIMIT})` });
  });

  it('a JSON body past 4x the gRPC limit: the same status and code; cairn stops reading, so its byte count differs', async () => {
    // cairn reads at most MAX_JSON_TO_MESSAGE_RATIO (4) times the message limit of JSON text
    // (server/api/gateway/gateway.ts) and answers without decoding on; etcd decodes the whole body
    // and reports the encoded message's size (docs/gateway.md, Limits).
    // Its base64 alone is 4 * GRPC_LIMIT characters.
    const value = Buffer.alloc(3 * GRPC_LIMIT, 'v');
    const body = { key: b64('k'), value: value.toString('base64') };
    const [want, got] = await Promise.all([post(etcd.clientUrl, '/v3/kv/put', body), post(cairn.clientUrl, '/v3/kv/put', body)]);
    const parse = (a: Answer): { status: number; headers: Record<string, string>; code: unknown; message: string } => {
      const b = JSON.parse(a.body) as { code: unknown; message: string };
      return { status: a.status, headers: a.headers, code: b.code, message: b.message.replace(/\(\d+ vs\./, '(N vs.') };
    };
    expect(parse(got)).toEqual(parse(want));
    expect(parse(want)).toMatchObject({ status: 429, code: 8, message: `grpc: received message larger than max (N vs. ${GRPC_LIMIT})` });
    // etcd's N: the PutRequest as encoded (1 + 1 + 1 key, 1 + 3 varint + the value).
    expect(JSON.parse(want.body).message).toContain(`(${value.length + 7} vs.`);
    const jsonLimit = 4 * GRPC_LIMIT;
    expect(JSON.parse(got.body).message).toContain(`(${jsonLimit + 1} vs.`);
  });
});
