import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMember, type Member } from '../support/member';

/** The HTTP/1.1 side of the client port, side by side with etcd where the answer is etcd's. */
let etcd: Member;
let cairn: Member;

beforeAll(async () => {
  [etcd, cairn] = await Promise.all([startMember({ kind: 'etcd' }), startMember({ kind: 'cairn' })]);
});
afterAll(async () => {
  await Promise.all([etcd?.cleanup(), cairn?.cleanup()]);
});

describe('HTTP endpoints on the client port', () => {
  it('GET /health answers {"health":"true"} like etcd 3.4', async () => {
    const [e, c] = await Promise.all([fetch(`${etcd.clientUrl}/health`), fetch(`${cairn.clientUrl}/health`)]);
    expect(c.status).toBe(200);
    expect(await c.json()).toEqual(await e.json());
  });

  it('GET /version reports a plain semver etcdserver version >= 3.5.13 and the cluster version', async () => {
    const body = (await (await fetch(`${cairn.clientUrl}/version`)).json()) as { etcdserver: string; etcdcluster: string };
    expect(body.etcdserver).toMatch(/^\d+\.\d+\.\d+$/);
    const [major, minor, patch] = body.etcdserver.split('.').map(Number);
    expect(major * 1e6 + minor * 1e3 + patch).toBeGreaterThanOrEqual(3_005_013);
    expect(body.etcdcluster).toBe('3.5.0');
  });

  it('GET /metrics serves Prometheus text with etcd metric names', async () => {
    const text = await (await fetch(`${cairn.clientUrl}/metrics`)).text();
    for (const name of ['etcd_server_has_leader 1', 'etcd_server_is_leader 1', 'etcd_disk_wal_fsync_duration_seconds_bucket', 'etcd_mvcc_db_total_size_in_bytes', 'grpc_server_handled_total']) {
      expect(text).toContain(name);
    }
  });

  it('non-GET methods get 405, unknown paths 404', async () => {
    expect((await fetch(`${cairn.clientUrl}/health`, { method: 'POST' })).status).toBe(405);
    expect((await fetch(`${cairn.clientUrl}/nope`)).status).toBe(404);
  });
});
