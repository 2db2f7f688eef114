import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMember, type Member } from '../support/member';
import { etcdctl, type EtcdctlResult } from '../support/etcdctl';

/**
 * etcdctl (Debian's etcd-client 3.4) drives the real etcd and cairn through the same command
 * sequence; both start empty, so revisions line up exactly and outputs must match once member
 * IDs, ports and timings are normalised.
 */

let etcd: Member;
let cairn: Member;

beforeAll(async () => {
  [etcd, cairn] = await Promise.all([startMember({ kind: 'etcd' }), startMember({ kind: 'cairn' })]);
});

afterAll(async () => {
  await Promise.all([etcd?.cleanup(), cairn?.cleanup()]);
});

function normalise(m: Member, r: EtcdctlResult): { code: number | null; stdout: string; stderr: string } {
  const clean = (s: string): string =>
    s
      .replaceAll(m.clientUrl, 'CLIENT_URL')
      .replaceAll(m.peerUrl, 'PEER_URL')
      .replaceAll(m.endpoint, 'ENDPOINT')
      .replace(/took = [0-9.]+[a-zµ]+/g, 'took = T')
      .replace(/"(cluster_id|member_id|leader|ID)":\d+/g, '"$1":ID')
      .replace(/"(raft_term|raftTerm|raftIndex|raftAppliedIndex|dbSize|dbSizeInUse)":\d+/g, '"$1":N')
      .replace(/"version":"[0-9.]+"/g, '"version":"V"')
      .replace(/"name":"[^"]*"/g, '"name":"NAME"')
      .replace(/^[0-9a-f]+, started, [^,]+,/gm, 'ID, started, NAME,')
      // etcdctl logs retries as JSON lines on stderr with timestamps; keep only the error line.
      .split('\n')
      .filter((l) => !l.startsWith('{"level"'))
      .join('\n');
  return { code: r.code, stdout: clean(r.stdout), stderr: clean(r.stderr) };
}

async function both(args: string[], stdin?: string) {
  const [e, c] = await Promise.all([
    etcdctl(etcd.endpoint, args, { stdin }),
    etcdctl(cairn.endpoint, args, { stdin }),
  ]);
  return { etcd: normalise(etcd, e), cairn: normalise(cairn, c) };
}

/** Runs sequentially on both members and expects identical (normalised) results. */
async function same(args: string[], stdin?: string) {
  const r = await both(args, stdin);
  expect(r.cairn, `etcdctl ${args.join(' ')}`).toEqual(r.etcd);
  return r.cairn;
}

describe('etcdctl against cairn matches etcd', () => {
  it('put and get, with --prefix, --limit, --keys-only, --count-only and --sort-by', async () => {
    expect((await same(['put', 'foo', 'bar'])).stdout).toBe('OK\n');
    for (const [k, v] of [['foo1', 'bar1'], ['foo2', 'bar2'], ['foo3', 'bar3'], ['zoo', 'z']]) await same(['put', k, v]);
    await same(['put', 'foo2', 'bar2-v2']);
    expect((await same(['get', 'foo'])).stdout).toBe('foo\nbar\n');
    expect((await same(['get', 'foo', '--prefix'])).stdout).toBe('foo\nbar\nfoo1\nbar1\nfoo2\nbar2-v2\nfoo3\nbar3\n');
    await same(['get', 'foo', '--prefix', '--limit', '2']);
    await same(['get', 'foo', '--prefix', '--limit', '2', '-w', 'json']);
    await same(['get', 'foo', '--prefix', '--keys-only']);
    await same(['get', 'foo', '--prefix', '--count-only', '-w', 'json']);
    await same(['get', 'foo', '--prefix', '--sort-by=MODIFY', '--order=DESCEND']);
    await same(['get', 'foo', '--prefix', '--sort-by=VERSION', '--order=DESCEND', '-w', 'json']);
    await same(['get', 'foo', '--prefix', '--sort-by=VALUE', '--order=ASCEND']);
    await same(['get', 'foo', '--prefix', '--sort-by=CREATE', '--order=DESCEND', '--limit', '1']);
    await same(['get', '', '--from-key']);
    await same(['get', 'foo', 'foo3']);
  });

  it('get --rev reads history, and fails with the compaction error after compaction', async () => {
    expect((await same(['get', 'foo2', '--rev', '4'])).stdout).toBe('foo2\nbar2\n');
    await same(['get', 'foo2', '--rev', '4', '-w', 'json']);
    const future = await same(['get', 'foo2', '--rev', '1000']);
    expect(future.code).not.toBe(0);
    expect(future.stderr).toContain('etcdserver: mvcc: required revision is a future revision');
    expect((await same(['compaction', '5'])).stdout).toBe('compacted revision 5\n');
    const compacted = await same(['get', 'foo2', '--rev', '4']);
    expect(compacted.code).not.toBe(0);
    expect(compacted.stderr).toContain('etcdserver: mvcc: required revision has been compacted');
    await same(['get', 'foo2', '--rev', '5']);
    await same(['compaction', '5']);
    await same(['compaction', '6', '--physical']);
  });

  it('del --prev-kv and del --prefix', async () => {
    expect((await same(['del', 'foo1', '--prev-kv'])).stdout).toBe('1\nfoo1\nbar1\n');
    expect((await same(['del', 'nothing-here'])).stdout).toBe('0\n');
    await same(['del', 'foo', '--prefix', '--prev-kv', '-w', 'json']);
    await same(['get', '', '--from-key']);
  });

  it('txn -i: compares, success and failure branches', async () => {
    await same(['put', 'tkey', 'v1']);
    const script = 'value("tkey") = "v1"\n\nput tkey v2\nget tkey\n\nput other x\n\n';
    const r = await same(['txn', '-i'], script);
    const prompts = 'compares:\nsuccess requests (get, put, del):\nfailure requests (get, put, del):\n';
    expect(r.stdout).toBe(`${prompts}SUCCESS\n\nOK\n\ntkey\nv2\n`);
    const r2 = await same(['txn', '-i'], script);
    expect(r2.stdout).toBe(`${prompts}FAILURE\n\nOK\n`);
    await same(['txn', '-i', '-w', 'json'], 'mod("tkey") > "0"\nversion("missing") = "0"\n\nget tkey\n\n\n');
  });

  it('bad input gets the same error', async () => {
    await same(['put', '', 'x']);
    await same(['get', '']);
    await same(['put', 'foo', 'x', '--ignore-lease', '--lease', '1234']);
    await same(['put', 'nokey', '--ignore-value']);
  });

  it('endpoint status, endpoint health and member list', async () => {
    const status = await same(['endpoint', 'status', '-w', 'json']);
    expect(status.stdout).toContain('"revision":');
    const health = await same(['endpoint', 'health']);
    expect(health.stdout + health.stderr).toContain('is healthy: successfully committed proposal: took = T');
    const members = await same(['member', 'list', '-w', 'json']);
    expect(members.stdout).toContain('"clientURLs":["CLIENT_URL"]');
    expect(members.stdout).toContain('"peerURLs":["PEER_URL"]');
    await same(['member', 'list']);
  });
});
