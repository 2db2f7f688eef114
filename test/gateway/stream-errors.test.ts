import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../support/cluster';
import { CAIRN_BIN } from '../support/member';
import { freePorts } from '../support/ports';
import { post, StreamCall } from './gateway-client';

/**
 * A stream that fails before its first response, over the gateway: `Grpc-Metadata-Hasleader: true`
 * becomes the `hasleader` metadata clientv3 sets, and on a member without a leader the Watch and
 * LeaseKeepAlive handlers refuse the stream with "etcdserver: no leader" (Unavailable). grpc-gateway
 * v1 (runtime.ForwardResponseStream, handleForwardResponseStreamError) then writes the status's HTTP
 * code and one `{"error": StreamError}` chunk, with proto field names. etcd 3.4 itself cannot be
 * compared here: it serves no client before it has published itself through a leader. A leaderless
 * member is member "a" of a cluster {a, b} whose "b" never starts.
 */

let child: ChildProcess | undefined;
let dir: string;
let base: string;

beforeAll(async () => {
  const [client, peerA, peerB] = await freePorts(3);
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-gw-noleader-'));
  const url = (p: number): string => `http://127.0.0.1:${p}`;
  const flags = [
    '--name', 'a', '--data-dir', path.join(dir, 'data'),
    '--listen-client-urls', url(client), '--advertise-client-urls', url(client),
    '--listen-peer-urls', url(peerA), '--initial-advertise-peer-urls', url(peerA),
    '--initial-cluster', `a=${url(peerA)},b=${url(peerB)}`,
  ];
  const fd = fs.openSync(path.join(dir, 'member.log'), 'a');
  child = spawn(process.execPath, [CAIRN_BIN, ...flags], { stdio: ['ignore', fd, fd] });
  fs.closeSync(fd);
  base = url(client);
  // Serving HTTP, and a plain watch (no hasleader) is created: the member is up, without a leader.
  await waitFor('the member to serve watches', 20_000, async () => {
    try {
      const w = await StreamCall.open(base, '/v3/watch', '{"create_request":{"key":"cA=="}}');
      const created = (await w.lines(1, 2000))[0]?.includes('"created":true');
      w.close();
      return created;
    } catch {
      return false;
    }
  });
});

afterAll(async () => {
  if (child && child.exitCode === null && child.signalCode === null) {
    child.kill('SIGKILL');
    await new Promise((r) => child!.once('exit', r));
  }
  fs.rmSync(dir, { recursive: true, force: true });
});

const NO_LEADER_CHUNK = '{"error":{"grpc_code":14,"http_code":503,"message":"etcdserver: no leader","http_status":"Service Unavailable"}}';

describe('gateway stream errors', () => {
  it.each(['/v3/watch', '/v3/lease/keepalive'])('%s with Grpc-Metadata-Hasleader on a leaderless member: 503 and one StreamError chunk', async (route) => {
    const body = route === '/v3/watch' ? '{"create_request":{"key":"Zm9v"}}' : '{"ID":"1"}';
    const a = await post(base, route, body, { headers: { 'Grpc-Metadata-Hasleader': 'true' } });
    expect(a).toEqual({ status: 503, headers: { 'content-type': 'application/json', 'access-control-allow-origin': '*' }, body: NO_LEADER_CHUNK });
  });

  it('Status on a leaderless member leaves out leader (0 is a default value, not written)', async () => {
    const a = await post(base, '/v3/maintenance/status', {});
    expect(a.status).toBe(200);
    const status = JSON.parse(a.body) as Record<string, unknown>;
    expect(status.version).toBeDefined();
    expect('leader' in status).toBe(false);
  });
});
