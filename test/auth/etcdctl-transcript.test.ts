import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMember, type Member } from '../support/member';
import { etcdctl, type EtcdctlResult } from '../support/etcdctl';

/**
 * The same etcdctl (Debian's etcd-client 3.4) session against a fresh etcd 3.4 and a fresh cairn:
 * users, roles, permissions (key, prefix, range, from-key; read, write, readwrite), auth
 * enable/disable and every allowed and refused request. Outputs, errors and exit codes must be
 * identical once member-specific values are masked.
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
      .replaceAll(m.endpoint, 'ENDPOINT')
      .replace(/"(cluster_id|member_id)":\d+/g, '"$1":ID')
      .replace(/"(raft_term|revision)":\d+/g, '"$1":N')
      // etcdctl logs each retry as a JSON line on stderr; the "Error:" line that follows is the answer.
      .split('\n')
      .filter((l) => !l.startsWith('{"level"'))
      .join('\n');
  return { code: r.code, stdout: clean(r.stdout), stderr: clean(r.stderr) };
}

/** An HTTP probe instead of etcdctl: /health, or the etcd_debugging_auth_revision gauge. */
async function probe(m: Member, what: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  if (what === '#health') {
    const r = await fetch(`http://${m.endpoint}/health`);
    const body = await r.text();
    expect(body).toContain('"health":"true"');
    return { code: r.status, stdout: body, stderr: '' };
  }
  const text = await (await fetch(`http://${m.endpoint}/metrics`)).text();
  const line = text.split('\n').filter((l) => l.startsWith('etcd_debugging_auth_revision '));
  expect(line).toHaveLength(1);
  return { code: 200, stdout: line[0], stderr: '' };
}

/** One etcdctl invocation: arguments, and stdin for the password prompts (--interactive=false). */
type Step = [string[], string?];

const ROOT = ['--user', 'root:rootpw'];
const ALICE = ['--user', 'alice:alicepw'];

const SESSION: Step[] = [
  [['auth', 'enable']], // no root user yet
  [['user', 'add', 'root:rootpw']],
  [['role', 'add', 'reader']],
  [['role', 'add', 'reader']], // already exists
  [['role', 'add', 'writer']],
  [['user', 'add', 'alice:alicepw']],
  [['user', 'add', 'alice:other']], // already exists
  [['role', 'grant-permission', 'reader', 'read', 'pub/', '--prefix']],
  [['role', 'grant-permission', 'reader', 'read', 'exact']],
  [['role', 'grant-permission', 'writer', 'readwrite', 'rw/', '--prefix']],
  [['role', 'grant-permission', 'writer', 'write', 'wa', 'wm']],
  [['role', 'grant-permission', 'writer', 'read', 'zz', '--from-key']],
  [['role', 'grant-permission', 'nobody', 'read', 'x']], // role not found
  [['user', 'grant-role', 'alice', 'reader']],
  [['user', 'grant-role', 'alice', 'writer']],
  [['user', 'grant-role', 'alice', 'nobody']],
  [['user', 'grant-role', 'ghost', 'reader']],
  [['put', 'pub/a', 'seed']],
  [['put', 'exact', 'seed']],
  [['auth', 'enable']], // etcdctl adds the root role and grants it to root, then enables
  [['#health']], // the member's own probe has no user: still healthy
  [['#auth-revision']],
  [['get', 'pub/a']], // no user
  [['put', 'pub/a', 'x']],
  [[...ALICE, 'get', 'pub/a']],
  [[...ALICE, 'get', 'pub/', '--prefix']],
  [[...ALICE, 'get', 'exact']],
  [[...ALICE, 'get', 'exact', '--consistency=s']], // serializable reads are checked too
  [[...ALICE, 'get', 'secret', '--consistency=s']],
  [[...ALICE, 'watch', 'secret']], // refused at creation; etcdctl reports the cancel and exits
  [[...ALICE, 'get', '', '--prefix']], // more than alice may read
  [[...ALICE, 'put', 'pub/a', 'x']], // read-only there
  [[...ALICE, 'put', 'rw/1', 'one']],
  [[...ALICE, 'get', 'rw/1']],
  [[...ALICE, 'put', 'wb', 'w']],
  [[...ALICE, 'get', 'wb']], // write-only range
  [[...ALICE, 'put', 'wm', 'w']], // the range end is excluded
  [[...ALICE, 'del', 'rw/', '--prefix']],
  [[...ALICE, 'del', 'wa', 'wm']],
  [[...ALICE, 'get', 'zzz', '--from-key']],
  [[...ALICE, 'get', 'zz', '--from-key']],
  [[...ALICE, 'txn'], 'value("rw/1") = "one"\n\nput rw/2 two\n\nput rw/3 three\n\n'],
  [[...ALICE, 'txn'], 'value("pub/a") = "seed"\n\nput rw/2 two\n\n\n'], // a compare alice may read
  [[...ALICE, 'txn'], 'value("secret") = "x"\n\nput rw/2 two\n\n\n'], // a compare she may not
  [[...ALICE, 'txn'], '\nput rw/2 two\nput pub/b no\n\n\n'], // one op she may not
  [[...ALICE, 'user', 'list']],
  [[...ALICE, 'role', 'list']],
  [[...ALICE, 'user', 'get', 'alice']], // herself: allowed
  [[...ALICE, 'user', 'get', 'root']],
  [[...ALICE, 'role', 'get', 'reader']], // a role she has
  [[...ALICE, 'role', 'add', 'mine']],
  [[...ALICE, 'auth', 'disable']],
  [[...ALICE, 'compact', '1']],
  [[...ALICE, 'defrag']],
  [['--user', 'alice:wrong', 'get', 'pub/a']],
  [['--user', 'ghost:pw', 'get', 'pub/a']],
  [[...ROOT, 'get', '', '--prefix', '--keys-only']],
  [[...ROOT, 'user', 'list']],
  [[...ROOT, 'role', 'list']],
  [[...ROOT, 'user', 'get', 'alice']],
  [[...ROOT, 'user', 'get', 'alice', '--detail']],
  [[...ROOT, 'role', 'get', 'reader']],
  [[...ROOT, 'role', 'get', 'writer']],
  [[...ROOT, 'role', 'get', 'root']],
  [[...ROOT, 'user', 'get', 'ghost']],
  [[...ROOT, 'role', 'get', 'ghost']],
  [[...ROOT, 'role', 'revoke-permission', 'writer', 'rw/', '--prefix']],
  [[...ROOT, 'role', 'revoke-permission', 'writer', 'rw/', '--prefix']], // not granted any more
  [[...ALICE, 'put', 'rw/4', 'four']],
  [[...ROOT, 'user', 'revoke-role', 'alice', 'reader']],
  [[...ROOT, 'user', 'revoke-role', 'alice', 'reader']], // not granted
  [[...ALICE, 'get', 'pub/a']],
  [[...ROOT, 'user', 'passwd', 'alice', '--interactive=false'], 'newpw\n'],
  [[...ALICE, 'get', 'zz', '--from-key']], // old password
  [['--user', 'alice:newpw', 'get', 'zz', '--from-key']],
  [[...ROOT, 'user', 'delete', 'root']], // root cannot be deleted while auth is on
  [[...ROOT, 'user', 'revoke-role', 'root', 'root']],
  [[...ROOT, 'role', 'delete', 'root']],
  [[...ROOT, 'role', 'delete', 'writer']],
  [[...ROOT, 'user', 'get', 'alice']], // writer is gone from alice too
  [[...ROOT, 'user', 'delete', 'alice']],
  [[...ROOT, 'user', 'delete', 'alice']],
  [['--user', 'alice:newpw', 'get', 'pub/a']],
  [[...ALICE, 'member', 'remove', '1234']], // member changes need the root role
  [[...ROOT, 'member', 'remove', '1234']],
  [['#auth-revision']], // every change bumped the auth revision exactly as etcd's did
  [[...ROOT, 'auth', 'disable']],
  [['auth', 'disable']], // already disabled: no-op
  [['--user', 'root:rootpw', 'get', 'pub/a']], // authenticate with auth off
  [['get', '', '--prefix']],
  [['user', 'list']],
  [['role', 'list']],
  [['user', 'delete', 'root']], // allowed with auth off
  [['role', 'delete', 'root']],
  [['user', 'list']],
];

describe('etcdctl auth session: cairn answers exactly as etcd 3.4', () => {
  it('every step has the same stdout, stderr and exit code', async () => {
    for (const [args, stdin] of SESSION) {
      const [a, b] = await Promise.all(
        [etcd, cairn].map(async (m) =>
          args[0].startsWith('#') ? probe(m, args[0]) : normalise(m, await etcdctl(m.endpoint, args, stdin === undefined ? {} : { stdin })),
        ),
      );
      expect({ step: args.join(' '), ...b }).toEqual({ step: args.join(' '), ...a });
    }
  }, 240_000);
});
