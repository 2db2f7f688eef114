import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMember, type Member } from '../support/member';
import { b64, post, postInTwoParts, StreamCall, type Answer } from './gateway-client';

/**
 * The same HTTP/JSON sequence over every endpoint family, against a fresh etcd 3.4 member (whose
 * client port serves etcd's grpc-gateway) and a fresh cairn member; the transcripts must be equal
 * after masking what differs between any two clusters (cluster/member IDs, terms, ports, backend
 * sizes and hashes). Revisions are not masked: both start at 1 and the sequence is the same.
 * Lease IDs are chosen by the client so lock and election keys (which embed them) are comparable.
 */

interface Entry {
  step: string;
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** What differs between two fresh single-member clusters, whatever the implementation. */
function mask(body: string): string {
  return body
    .replace(/"(cluster_id|member_id|raft_term|leader)":"\d+"/g, '"$1":"X"')
    .replace(/"ID":"\d{10,}"/g, '"ID":"MEMBER"')
    .replace(/127\.0\.0\.1:\d+/g, '127.0.0.1:PORT')
    .replace(/"(dbSize|dbSizeInUse|raftIndex|raftAppliedIndex|raftTerm|version)":"?[\d.]+"?/g, '"$1":"X"')
    .replace(/"hash":\d+/g, '"hash":"X"')
    // A lease's remaining TTL depends on when it is asked; the granted TTL must still agree.
    .replace(/"TTL":"\d+","grantedTTL"/g, '"TTL":"X","grantedTTL"');
}

/**
 * Member lists are sorted by member ID, and an added member's ID is random (etcd derives it from
 * the time): once IDs are masked, the list is put in a fixed order so only its content counts.
 */
function sortMembers(body: string): string {
  let parsed: { members?: unknown[] };
  try {
    parsed = JSON.parse(body) as { members?: unknown[] };
  } catch {
    return body;
  }
  if (!Array.isArray(parsed.members)) return body;
  const members = parsed.members.map((m) => JSON.stringify(m)).sort();
  return body.replace(/"members":\[.*\]/, `"members":[${members.join(',')}]`);
}

/** Bodies Go's decoder or jsonpb refuses (or, for the last ones, accepts), each with its own message. */
const BAD_BODIES = [
  '{"key":"Zm9v","limit":"abc"}',
  '{"key":"Zm9v","limit":true}',
  '{"key":"Zm9v","limit":99999999999999999999}',
  '{"key":"Zm9v","limit":"1e3"}',
  '{"key":5}',
  '{"key":"Zm9v_-"}',
  '{"key":"Zm9vYg"}',
  '{"key":"Zm9v\n"}',
  '[1]',
  '"str"',
  '{"key":"Zm9v","count_only":"true"}',
  '{"key" "Zm9v"}',
  '{"key":"Zm9v" "a":1}',
  '{"key":"Zm9v","sort_order":[1]}',
  '{"key":"Zm9v","sort_order":1.5}',
  '{"key":"\u005a"}',
  'nul',
  'x',
  '{"key":tru}',
  '{"key":"Zm9v","limit":-}',
  '{"key":"Zm9v","limit":"-1","serializable":null,"range_end":null}',
  '{"key":"Zm9v","min_mod_revision":" 2 "}',
];

const LEASE = '1000';
const SESSION_LEASE = '2000';

async function transcript(base: string): Promise<Entry[]> {
  const out: Entry[] = [];
  const record = (step: string, a: Answer): void => {
    out.push({ step, status: a.status, headers: a.headers, body: sortMembers(mask(a.body)) });
  };
  const call = async (step: string, path: string, body: string | object, init?: Parameters<typeof post>[3]): Promise<Answer> => {
    const a = await post(base, path, body, init);
    record(step, a);
    return a;
  };

  // KV, with proto and camelCase field names, numbers as strings and as numbers, enums by name and number.
  await call('put', '/v3/kv/put', { key: b64('foo'), value: b64('bar') });
  await call('put camelCase prevKv', '/v3/kv/put', { key: b64('foo'), value: b64('baz'), prevKv: true });
  await call('put a/1', '/v3/kv/put', { key: b64('a/1'), value: b64('<&>') });
  await call('put a/2', '/v3/kv/put', { key: b64('a/2'), value: b64('2') });
  await call('range', '/v3/kv/range', { key: b64('foo') });
  await call('range prefix, sort by name, limit as string', '/v3/kv/range', { key: b64('a/'), range_end: b64('a0'), sort_order: 'DESCEND', sortTarget: 'KEY', limit: '1' });
  await call('range enum as number, keysOnly', '/v3/kv/range', { key: b64('a/'), rangeEnd: b64('a0'), sortOrder: 2, keysOnly: true });
  await call('range count_only', '/v3/kv/range', { key: b64('a/'), range_end: b64('a0'), count_only: true });
  await call('range /v3beta', '/v3beta/kv/range', { key: b64('foo') });
  await call('range unknown field ignored, trailing text ignored', '/v3/kv/range', `{"key":"${b64('foo')}","no_such_field":1} trailing`);
  await call('range bad enum', '/v3/kv/range', { key: b64('foo'), sort_order: 'SIDEWAYS' });
  await call('range bad base64', '/v3/kv/range', { key: 'Zm9' });
  await call('range limit as float', '/v3/kv/range', '{"key":"Zm9v","limit":1.5}');
  await call('range malformed JSON', '/v3/kv/range', '{"key":');
  await call('range malformed JSON object', '/v3/kv/range', '{"key":"Zm9v",}');
  await call('range empty body', '/v3/kv/range', '');
  for (const body of BAD_BODIES) await call(`range bad body ${body}`, '/v3/kv/range', body);
  await call('put empty key', '/v3/kv/put', { value: b64('x') });
  await call('txn compare succeeds', '/v3/kv/txn', {
    compare: [{ key: b64('foo'), result: 'EQUAL', target: 'VALUE', value: b64('baz') }],
    success: [{ request_range: { key: b64('foo') } }, { requestPut: { key: b64('foo'), value: b64('qux'), prev_kv: true } }],
    failure: [{ request_delete_range: { key: b64('foo') } }],
  });
  await call('txn compare fails', '/v3/kv/txn', {
    compare: [{ key: b64('foo'), result: 'GREATER', target: 'MOD', mod_revision: '1000' }],
    success: [],
    failure: [{ request_range: { key: b64('a/'), range_end: b64('a0') } }],
  });
  await call('txn duplicate key', '/v3/kv/txn', { success: [{ request_put: { key: b64('d') } }, { request_put: { key: b64('d') } }] });
  await call('deleterange prev_kv', '/v3/kv/deleterange', { key: b64('a/'), range_end: b64('a0'), prev_kv: true });

  // Lease.
  await call('lease grant', '/v3/lease/grant', { ID: LEASE, TTL: 60 });
  await call('lease grant existing ID', '/v3/lease/grant', { ID: Number(LEASE), TTL: '60' });
  await call('put with lease', '/v3/kv/put', { key: b64('leased'), value: b64('v'), lease: LEASE });
  await call('lease timetolive keys', '/v3/lease/timetolive', { ID: LEASE, keys: true });
  await call('lease timetolive unknown (kv path)', '/v3/kv/lease/timetolive', { ID: '77' });
  await call('lease leases', '/v3/lease/leases', {});
  await call('lease leases (kv path)', '/v3/kv/lease/leases', {});
  const ka = await StreamCall.open(base, '/v3/lease/keepalive', `{"ID":"${LEASE}"} {"ID":${LEASE}} {"ID":"77"}`);
  out.push({ step: 'lease keepalive x3', status: ka.status, headers: ka.headers, body: mask(await ka.rest()) });
  await call('lease revoke', '/v3/lease/revoke', { ID: LEASE });
  await call('lease revoke again (kv path)', '/v3/kv/lease/revoke', { ID: LEASE });
  await call('range after revoke', '/v3/kv/range', { key: b64('leased') });

  // Cluster and maintenance. A learner is added (a voter that never starts would cost the
  // single member its quorum), is refused promotion (it has not caught up), and is removed.
  const list = JSON.parse((await call('member list', '/v3/cluster/member/list', {})).body) as { header: { member_id: string }; members: { peerURLs: string[] }[] };
  const self = list.header.member_id;
  const selfPeer = list.members[0].peerURLs[0];
  await call('member remove unknown', '/v3/cluster/member/remove', { ID: '5' });
  const addedFrom = Math.floor(Date.now() / 1000);
  const added = await call('member add learner', '/v3/cluster/member/add', { peerURLs: ['http://127.0.0.1:9'], isLearner: true });
  const addedTo = Math.floor(Date.now() / 1000);
  const learner = (JSON.parse(added.body) as { member: { ID: string } }).member.ID;
  // etcd's v3rpc MemberAdd: NewMember("", urls, "", &now), an ID from the sorted URLs and the unix second.
  const idAt = (t: number): string => createHash('sha1').update(`http://127.0.0.1:9${t}`).digest().readBigUInt64BE(0).toString();
  const idFromTime = [addedFrom, addedTo].some((t) => idAt(t) === learner);
  out.push({ step: 'member add: ID is sha1(peer URLs + unix second)', status: 0, headers: {}, body: String(idFromTime) });
  // Not the same URL set (whose ID, within the same second, would already exist): a URL in use.
  await call('member add a peer URL in use', '/v3/cluster/member/add', { peerURLs: ['http://127.0.0.1:9', 'http://127.0.0.1:8'] });
  await call('member add bad peer URL', '/v3/cluster/member/add', { peerURLs: ['127.0.0.1:10'] });
  await call('member list with learner', '/v3/cluster/member/list', {});
  await call('member promote learner not ready', '/v3/cluster/member/promote', { ID: learner });
  await call('member promote a voter', '/v3/cluster/member/promote', { ID: self });
  await call('member promote unknown', '/v3/cluster/member/promote', { ID: '5' });
  // A voter's update; a learner's is not compared (etcd 3.4 drops isLearner then, see docs/gateway.md).
  await call('member update voter, URLs unsorted', '/v3/cluster/member/update', { ID: self, peerURLs: ['http://localhost:9', selfPeer] });
  await call('member update to a URL in use', '/v3/cluster/member/update', { ID: self, peerURLs: ['http://127.0.0.1:9'] });
  await call('member update unknown', '/v3/cluster/member/update', { ID: '5', peerURLs: ['http://localhost:11'] });
  await call('member remove learner', '/v3/cluster/member/remove', { ID: learner });
  await call('member list after', '/v3/cluster/member/list', {});
  await call('maintenance status', '/v3/maintenance/status', {});
  await call('alarm get', '/v3/maintenance/alarm', { action: 'GET' });
  await call('hash', '/v3/maintenance/hash', {});
  await call('defragment', '/v3/maintenance/defragment', {});
  await call('transfer leadership to a non-member', '/v3/maintenance/transfer-leadership', { targetID: '5' });
  await call('transfer leadership to itself', '/v3/maintenance/transfer-leadership', { targetID: self });

  // Election and lock, on a session lease.
  await call('session lease', '/v3/lease/grant', { ID: SESSION_LEASE, TTL: 60 });
  await call('election leader none', '/v3/election/leader', { name: b64('el') });
  const campaign = await call('election campaign', '/v3/election/campaign', { name: b64('el'), lease: SESSION_LEASE, value: b64('v1') });
  const leader = (JSON.parse(campaign.body) as { leader: unknown }).leader;
  await call('election leader', '/v3/election/leader', { name: b64('el') });
  await call('election proclaim', '/v3/election/proclaim', { leader, value: b64('v2') });
  await call('election proclaim without leader key', '/v3/election/proclaim', { leader: { name: b64('el') }, value: b64('v3') });
  const observe = await StreamCall.open(base, '/v3/election/observe', JSON.stringify({ name: b64('el') }));
  out.push({ step: 'election observe', status: observe.status, headers: observe.headers, body: mask((await observe.lines(1)).join('\n')) });
  observe.close();
  await call('election resign', '/v3/election/resign', { leader });
  await call('election leader after resign', '/v3/election/leader', { name: b64('el') });
  const lock = await call('lock', '/v3/lock/lock', { name: b64('lk'), lease: SESSION_LEASE });
  await call('unlock', '/v3/lock/unlock', { key: (JSON.parse(lock.body) as { key: string }).key });

  // Watch: two create requests in one body, then a put and a delete seen as events.
  const watch = await StreamCall.open(base, '/v3/watch', `{"create_request":{"key":"${b64('w')}"}}\n{"createRequest":{"key":"${b64('w')}","prev_kv":true,"filters":["NOPUT"]}}`);
  const created = await watch.lines(2);
  await call('watched put', '/v3/kv/put', { key: b64('w'), value: b64('1') });
  await call('watched delete', '/v3/kv/deleterange', { key: b64('w') });
  const events = await watch.lines(3);
  watch.close();
  out.push({ step: 'watch', status: watch.status, headers: watch.headers, body: mask([...created, ...events].sort().join('\n')) });
  const badWatch = await post(base, '/v3/watch', '{"create_request":');
  record('watch malformed first request', badWatch);
  // A bad value after the first only ends the requests: the first watch is still created.
  const halfBad = await StreamCall.open(base, '/v3/watch', `{"create_request":{"key":"${b64('w')}"}} xx {"create_request":{"key":"${b64('v')}"}}`);
  out.push({ step: 'watch, bad second request', status: halfBad.status, headers: halfBad.headers, body: mask((await halfBad.lines(1)).join('\n')) });
  halfBad.close();
  // A stream that fails after answering: the second create request is over the server's receive
  // limit (--max-request-bytes + 512 KiB), so the Watch handler's Recv fails once the first watch
  // has been created; grpc-gateway writes the status as an {"error": ...} chunk after the result.
  const hugeKey = Buffer.alloc(2 * 1024 * 1024, 'k').toString('base64');
  // The second request is sent once the first is answered, as a client would after its first watch.
  const failing = await postInTwoParts(base, '/v3/watch', `{"create_request":{"key":"${b64('w')}"}} `, `{"create_request":{"key":"${hugeKey}"}}`);
  out.push({ step: 'watch, second request over the limit', status: failing.status, headers: failing.headers, body: mask(failing.body) });

  // Compaction, then a read and a watch at a compacted revision.
  await call('compaction', '/v3/kv/compaction', { revision: '10', physical: true });
  await call('range at compacted revision', '/v3/kv/range', { key: b64('foo'), revision: '2' });
  await call('range at future revision', '/v3/kv/range', { key: b64('foo'), revision: '1000' });
  // The path is Hash's, not HashKV's: after a compaction HashKV would also give compact_revision.
  await call('hash after compaction', '/v3/maintenance/hash', {});
  const compacted = await StreamCall.open(base, '/v3/watch', `{"create_request":{"key":"${b64('foo')}","start_revision":"2"}}`);
  out.push({ step: 'watch from compacted revision', status: compacted.status, headers: compacted.headers, body: mask((await compacted.lines(2)).join('\n')) });
  compacted.close();

  // The HTTP mux around the gateway.
  await call('unknown path', '/v3/kv/nothing', {});
  await call('unknown version', '/v3alpha/kv/range', {});
  await call('wrong method', '/v3/kv/range', '', { method: 'GET' });
  await call('bare /v3', '/v3', {});
  await call('grpc-timeout already expired', '/v3/kv/range', { key: b64('foo') }, { headers: { 'Grpc-Timeout': '1n' } });
  await call('grpc-timeout ample', '/v3/kv/range', { key: b64('foo') }, { headers: { 'Grpc-Timeout': '30S' } });
  await call('grpc-timeout malformed', '/v3/kv/range', { key: b64('foo') }, { headers: { 'Grpc-Timeout': 'soon' } });
  await call('oversized request', '/v3/kv/put', { key: b64('big'), value: Buffer.alloc(2 * 1024 * 1024, 'x').toString('base64') });
  await call('request too large for the log', '/v3/kv/put', { key: b64('big'), value: Buffer.alloc(1572864, 'x').toString('base64') });

  // Auth, last (it locks everything else out): the token rides in the Authorization header, as
  // etcd's gateway passes it on as the `authorization` metadata.
  await call('auth status', '/v3/auth/status', {});
  await call('auth enable without root', '/v3/auth/enable', {});
  await call('auth malformed body', '/v3/auth/user/add', '{"name":');
  await call('user add root', '/v3/auth/user/add', { name: 'root', password: 'rootpw' });
  await call('user add empty name', '/v3/auth/user/add', { name: '', password: 'x' });
  await call('user add existing', '/v3/auth/user/add', { name: 'root', password: 'x' });
  await call('auth enable without root role', '/v3/auth/enable', {});
  await call('role add root', '/v3/auth/role/add', { name: 'root' });
  await call('user grant root', '/v3/auth/user/grant', { user: 'root', role: 'root' });
  await call('role add app', '/v3/auth/role/add', { name: 'app' });
  await call('role grant readwrite app/', '/v3/auth/role/grant', { name: 'app', perm: { permType: 'READWRITE', key: b64('app/'), range_end: b64('app0') } });
  await call('user add alice', '/v3/auth/user/add', { name: 'alice', password: 'alicepw' });
  await call('user grant alice', '/v3/auth/user/grant', { user: 'alice', role: 'app' });
  await call('role get app', '/v3/auth/role/get', { role: 'app' });
  await call('user get alice', '/v3/auth/user/get', { name: 'alice' });
  await call('user list', '/v3/auth/user/list', {});
  await call('auth enable', '/v3/auth/enable', {});
  await call('range without a token', '/v3/kv/range', { key: b64('app/x') });
  await call('authenticate wrong password', '/v3/auth/authenticate', { name: 'alice', password: 'nope' });
  const alice = (JSON.parse((await post(base, '/v3/auth/authenticate', { name: 'alice', password: 'alicepw' })).body) as { token: string }).token;
  const asAlice = { headers: { Authorization: alice } };
  await call('alice put app/x', '/v3/kv/put', { key: b64('app/x'), value: b64('1') }, asAlice);
  await call('alice put outside her range', '/v3/kv/put', { key: b64('other'), value: b64('1') }, asAlice);
  await call('alice range app/', '/v3/kv/range', { key: b64('app/'), range_end: b64('app0') }, asAlice);
  await call('alice role list', '/v3/auth/role/list', {}, asAlice);
  await call('alice changes her password', '/v3/auth/user/changepw', { name: 'alice', password: 'alicepw2' }, asAlice);
  await call('alice auth disable', '/v3/auth/disable', {}, asAlice);
  await call('forged token', '/v3/kv/range', { key: b64('app/x') }, { headers: { Authorization: 'forged.1' } });
  const root = (JSON.parse((await post(base, '/v3/auth/authenticate', { name: 'root', password: 'rootpw' })).body) as { token: string }).token;
  await call('root auth status', '/v3/auth/status', {}, { headers: { Authorization: root } });
  await call('root auth disable', '/v3/auth/disable', {}, { headers: { Authorization: root } });
  await call('range after auth disable', '/v3/kv/range', { key: b64('app/x') });
  await call('authenticate with auth disabled', '/v3/auth/authenticate', { name: 'alice', password: 'alicepw' });
  await call('role list', '/v3/auth/role/list', {});
  await call('user changepw', '/v3/auth/user/changepw', { name: 'alice', password: 'alicepw3' });
  await call('user changepw unknown', '/v3/auth/user/changepw', { name: 'bob', password: 'x' });
  await call('user revoke role', '/v3/auth/user/revoke', { name: 'alice', role: 'app' });
  await call('user revoke role not granted', '/v3/auth/user/revoke', { name: 'alice', role: 'app' });
  await call('user revoke role unknown user', '/v3/auth/user/revoke', { name: 'bob', role: 'app' });
  await call('role revoke permission', '/v3/auth/role/revoke', { role: 'app', key: b64('app/'), range_end: b64('app0') });
  await call('role revoke permission not granted', '/v3/auth/role/revoke', { role: 'app', key: b64('app/'), range_end: b64('app0') });
  await call('role revoke permission unknown role', '/v3/auth/role/revoke', { role: 'nobody', key: b64('app/') });
  await call('role get app after revoke', '/v3/auth/role/get', { role: 'app' });
  await call('role delete', '/v3/auth/role/delete', { role: 'app' });
  await call('role delete unknown', '/v3/auth/role/delete', { role: 'app' });
  await call('role delete root', '/v3/auth/role/delete', { role: 'root' });
  await call('user delete', '/v3/auth/user/delete', { name: 'alice' });
  await call('user delete unknown', '/v3/auth/user/delete', { name: 'alice' });
  await call('user list after delete', '/v3/auth/user/list', {});
  await call('role list after delete', '/v3/auth/role/list', {});
  return out;
}

let etcd: Member;
let cairn: Member;

beforeAll(async () => {
  [etcd, cairn] = await Promise.all([startMember({ kind: 'etcd', name: 'gw' }), startMember({ kind: 'cairn', name: 'gw' })]);
});

afterAll(async () => {
  await Promise.all([etcd?.cleanup(), cairn?.cleanup()]);
});

describe('JSON gateway transcript', () => {
  // Hundreds of calls, bcrypt hashes (cost 10) and a defragment on each member: well past the
  // default 60 s on a loaded 2-core CI machine.
  it('answers every endpoint family exactly as etcd 3.4 does', { timeout: 240_000 }, async () => {
    const [want, got] = await Promise.all([transcript(etcd.clientUrl), transcript(cairn.clientUrl)]);
    expect(got.map((e) => e.step)).toEqual(want.map((e) => e.step));
    const differing = want.filter((w, i) => JSON.stringify(w) !== JSON.stringify(got[i])).map((w) => w.step);
    for (let i = 0; i < want.length; i++) expect(got[i], `${want[i].step} (differing steps: ${differing.join("; ")})`).toEqual(want[i]);
  });
});

describe('Maintenance Snapshot over the gateway', () => {
  it('streams {"result": {blob}} lines whose blobs are the snapshot, its sha256 last, framed as etcd frames them', async () => {
    // The snapshot bytes are each implementation's own backend, so the framing is compared, and
    // the content is checked against its own checksum (the last blob, as etcd sends it).
    const answers = await Promise.all(
      [etcd, cairn].map(async (m) => {
        const s = await StreamCall.open(m.clientUrl, '/v3/maintenance/snapshot', '{}');
        const lines = (await s.rest()).split('\n').filter(Boolean);
        const msgs = lines.map((l) => (JSON.parse(l) as { result: { remaining_bytes?: string; blob: string } }).result);
        const blobs = msgs.map((r) => Buffer.from(r.blob, 'base64'));
        const data = Buffer.concat(blobs.slice(0, -1));
        expect(createHash('sha256').update(data).digest().equals(blobs[blobs.length - 1]), `${m.kind} checksum`).toBe(true);
        expect(blobs.length, `${m.kind} blobs`).toBeGreaterThanOrEqual(2);
        // remaining_bytes counts down to the end; the last message's is 0, so omitted.
        const remaining = msgs.map((r) => Number(r.remaining_bytes ?? 0));
        expect(remaining[remaining.length - 1]).toBe(0);
        let sent = 0;
        for (let i = 0; i + 1 < blobs.length; i++) {
          sent += blobs[i].length;
          expect(remaining[i], `${m.kind} remaining_bytes of blob ${i}`).toBe(data.length - sent);
        }
        return { status: s.status, headers: s.headers, fields: [...new Set(msgs.flatMap((r) => Object.keys(r)))].sort() };
      }),
    );
    expect(answers[1]).toEqual(answers[0]);
  });
});

