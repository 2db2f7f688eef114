import { createHash } from 'node:crypto';
import { describe, expect } from 'vitest';
import { etcdctl } from '../support/etcdctl';
import { b, defineScenarios, expectOk, put, type Ctx, type Scenario, type Step } from './runner';
import { relRev, useTargets } from './runner';

/**
 * Status and MemberList, compared structurally (versions, sizes, IDs and URLs legitimately
 * differ between the two members), plus an etcdctl smoke test through the real CLI.
 *
 * etcd 3.4 vs 3.5: cairn reports a 3.5 version string; the reference here is etcd 3.4.23, so
 * the version is only checked to be a plain semver >= 3.4 (what kube-apiserver and Patroni
 * parse). MemberListRequest.linearizable is a 3.5 field; 3.4 ignores it as an unknown field.
 */

function semverAtLeast34(v: unknown): boolean {
  const m = typeof v === 'string' ? /^(\d+)\.(\d+)\.(\d+)$/.exec(v) : null;
  if (!m) return false;
  const [maj, min] = [Number(m[1]), Number(m[2])];
  return maj > 3 || (maj === 3 && min >= 4);
}

/** etcd's member ID: first 8 bytes (BE) of sha1(sorted peer URLs joined + cluster token). */
function etcdMemberId(peerUrls: string[], token = 'etcd-cluster'): string {
  return createHash('sha1').update([...peerUrls].sort().join('') + token).digest().readBigUInt64BE(0).toString();
}

/** etcd's cluster ID: first 8 bytes (BE) of sha1 over the sorted member IDs as BE uint64s. */
function etcdClusterId(memberIds: string[]): string {
  const ids = memberIds.map(BigInt).sort((x, y) => (x < y ? -1 : x > y ? 1 : 0));
  const buf = Buffer.alloc(8 * ids.length);
  ids.forEach((id, i) => buf.writeBigUInt64BE(id, i * 8));
  return createHash('sha1').update(buf).digest().readBigUInt64BE(0).toString();
}

/** Header facts that the normaliser drops elsewhere. */
function headerFacts(h: { cluster_id: string; member_id: string; raft_term: string; revision: string }, c: Ctx) {
  return {
    clusterIdNonZero: h.cluster_id !== '0',
    memberIdNonZero: h.member_id !== '0',
    raftTermPositive: Number(h.raft_term) > 0,
    // 0 for the Cluster service in every etcd version: ClusterServer.header() sets only
    // ClusterId, MemberId and RaftTerm (etcdserver/api/v3rpc/member.go, 3.4 through main).
    revision: relRev(h.revision, c.base),
    memberIdIsEtcdFormula: h.member_id === etcdMemberId([c.target.member.peerUrl]),
    clusterIdIsEtcdFormula: h.cluster_id === etcdClusterId([h.member_id]),
  };
}

const status: Step = {
  label: 'Status (structural)',
  custom: async (c) => {
    const r = await c.target.client.status();
    if (r.err) return { error: r.err };
    const s = r.ok;
    return {
      header: headerFacts(s.header, c),
      versionIsSemverAtLeast34: semverAtLeast34(s.version),
      dbSizePositive: Number(s.dbSize) > 0,
      leaderIsThisMember: s.leader === s.header.member_id,
      raftIndexPositive: Number(s.raftIndex) > 0,
      raftTermPositive: Number(s.raftTerm) > 0,
      raftTermMatchesHeader: s.raftTerm === s.header.raft_term,
      raftAppliedIndexPositive: Number(s.raftAppliedIndex) > 0,
      dbSizeInUseInRange: Number(s.dbSizeInUse) > 0 && Number(s.dbSizeInUse) <= Number(s.dbSize),
      errors: s.errors,
      isLearner: s.isLearner,
    };
  },
  expect: (r) => {
    expectOk(r);
    for (const [k, v] of Object.entries(r.ok)) if (typeof v === 'boolean' && k !== 'isLearner') expect(v, k).toBe(true);
  },
};

const memberList = (linearizable: boolean): Step => ({
  label: `MemberList (structural${linearizable ? ', linearizable' : ''})`,
  custom: async (c) => {
    const r = await c.target.client.memberList({ linearizable });
    if (r.err) return { error: r.err };
    const m = c.target.member;
    return {
      header: headerFacts(r.ok.header, c),
      members: (r.ok.members as { ID: string; name: string; peerURLs: string[]; clientURLs: string[]; isLearner: boolean }[]).map((x) => ({
        IDIsHeaderMemberId: x.ID === r.ok.header.member_id,
        name: x.name === m.name ? '<member name>' : x.name,
        peerURLs: x.peerURLs.map((u) => (u === m.peerUrl ? '<peer url>' : u)),
        clientURLs: x.clientURLs.map((u) => (u === m.clientUrl ? '<client url>' : u)),
        isLearner: x.isLearner,
      })),
    };
  },
  expect: (r) => {
    expectOk(r);
    expect(r.ok.members).toEqual([{ IDIsHeaderMemberId: true, name: '<member name>', peerURLs: ['<peer url>'], clientURLs: ['<client url>'], isLearner: false }]);
  },
});

/** etcdctl's JSON log lines (timestamps, client UUIDs) are not part of its output. */
function dropLogLines(s: string): string {
  return s
    .split('\n')
    .filter((l) => !l.startsWith('{"level"'))
    .join('\n');
}

/** Run etcdctl against this target, with its endpoint, IDs and URLs replaced by placeholders. */
function ctl(args: (c: Ctx) => string[], stdin?: string, label?: string): Step {
  return {
    label: label ?? `etcdctl ${args({ k: (s = '') => b(`<prefix>${s}`) } as unknown as Ctx).join(' ')}`,
    custom: async (c) => {
      const m = c.target.member;
      const r = await etcdctl(m.endpoint, ['--command-timeout=5s', ...args(c)], { stdin });
      // etcdctl prints IDs with %x (no leading zeros), so scrub this member's ID exactly.
      const st = await c.target.client.status();
      const memberHex = st.ok ? BigInt(st.ok.header.member_id).toString(16) : '<unknown member id>';
      const scrub = (s: string) =>
        dropLogLines(s)
          .split(m.clientUrl).join('<client url>')
          .split(m.peerUrl).join('<peer url>')
          .split(m.endpoint).join('<endpoint>')
          .replace(new RegExp(`\\b${memberHex}\\b`, 'g'), '<member id>')
          .replace(/\b(conf-ref|conf-sub)\b/g, '<member name>')
          .replace(/took = [^\s]+/g, 'took = <t>');
      return { code: r.code, stdout: scrub(r.stdout), stderr: scrub(r.stderr) };
    },
  };
}

const scenarios: Scenario[] = [
  {
    name: 'status-and-members',
    steps: [put((c) => c.k('a'), '1'), status, memberList(false), memberList(true), put((c) => c.k('b'), '2'), status],
  },
  {
    name: 'etcdctl-smoke',
    steps: [
      ctl((c) => ['put', c.k('a').toString(), 'va']),
      ctl((c) => ['put', c.k('b').toString(), 'vb', '--prev-kv']),
      ctl((c) => ['put', c.k('b').toString(), 'vb2', '--prev-kv']),
      ctl((c) => ['get', c.k('a').toString()]),
      ctl((c) => ['get', '--prefix', c.k().toString()]),
      ctl((c) => ['get', '--prefix', '--keys-only', c.k().toString()]),
      ctl((c) => ['get', '--prefix', '--limit=1', '--sort-by=MODIFY', '--order=DESCEND', c.k().toString()]),
      ctl((c) => ['get', '--from-key', c.k('b').toString(), '--keys-only', '--limit=1']),
      ctl((c) => ['get', c.k('missing').toString()]),
      ctl((c) => ['get', '']),
      {
        ...ctl((c) => ['txn'], undefined, 'etcdctl txn: value(a) = "va" then put/get else get'),
        custom: async (c) => {
          const m = c.target.member;
          const a = c.k('a').toString();
          const stdin = `value("${a}") = "va"\n\nput ${a} va2\nget ${a}\n\nget ${a}\n\n`;
          const r = await etcdctl(m.endpoint, ['txn'], { stdin });
          return { code: r.code, stdout: r.stdout, stderr: dropLogLines(r.stderr) };
        },
      },
      ctl((c) => ['del', '--prefix', '--prev-kv', c.k().toString()]),
      ctl((c) => ['del', c.k('a').toString()]),
      ctl(() => ['endpoint', 'health']),
      ctl(() => ['member', 'list']),
      ctl(() => ['lease', 'timetolive', '1234abcd']),
      ctl(() => ['lease', 'revoke', '1234abcd']),
    ],
  },
];

describe('conformance: Status, MemberList, etcdctl', () => {
  const targets = useTargets();
  defineScenarios(targets, scenarios);
});
