import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FAST_ELECTION_MS, FAST_HEARTBEAT_MS, startCluster, waitFor, type Cluster, type ClusterMember } from '../support/cluster';

/**
 * /health with and without a leader, side by side with the real etcd 3.4: a 3-member cluster of
 * each, probed while it has a leader, then with two members stopped so the survivor has none.
 * Observed on etcd 3.4.23: 3.4's checkHealth has no serializable mode, so ?serializable=true does
 * not skip the leader check; healthy is 200 `{"health":"true"}` (text/plain, sniffed by Go),
 * unhealthy is http.Error's 503 `{"health":"false"}\n` with nosniff.
 */

/** How long the survivor may take to notice it lost its leader (a few election timeouts). */
const NO_LEADER_TIMEOUT_MS = 20 * FAST_ELECTION_MS;

const PROBES = ['/health', '/health?serializable=true', '/health?serializable=false'];

interface Answer {
  probe: string;
  status: number;
  contentType: string | null;
  nosniff: string | null;
  body: string;
}

async function probe(m: ClusterMember, path: string, method = 'GET'): Promise<Answer> {
  const r = await fetch(`${m.clientUrl}${path}`, { method });
  return {
    probe: `${method} ${path}`,
    status: r.status,
    contentType: r.headers.get('content-type'),
    nosniff: r.headers.get('x-content-type-options'),
    body: await r.text(),
  };
}

let etcd: Cluster;
let cairn: Cluster;

beforeAll(async () => {
  const opts = { size: 3, heartbeatIntervalMs: FAST_HEARTBEAT_MS, electionTimeoutMs: FAST_ELECTION_MS };
  [etcd, cairn] = await Promise.all([startCluster({ kind: 'etcd', ...opts }), startCluster({ kind: 'cairn', ...opts })]);
}, 120_000);
afterAll(async () => {
  await Promise.all([etcd?.cleanup(), cairn?.cleanup()]);
});

describe('/health like etcd 3.4, with and without a leader', () => {
  it('with a leader: every probe is 200 {"health":"true"}; other methods are refused alike', async () => {
    const [e, c] = await Promise.all(
      [etcd, cairn].map(async (cl) => {
        const m = await cl.leader();
        const follower = cl.members.find((x) => x !== m)!;
        const out: Answer[] = [];
        for (const p of PROBES) out.push(await probe(m, p), await probe(follower, p));
        out.push(await probe(m, '/health', 'POST'), await probe(m, '/health', 'HEAD'));
        return out;
      }),
    );
    expect(c).toEqual(e);
    expect(e[0]).toMatchObject({ status: 200, body: '{"health":"true"}' });
  });

  it('without a leader: every probe, ?serializable=true included, is 503 {"health":"false"}', async () => {
    const [e, c] = await Promise.all(
      [etcd, cairn].map(async (cl) => {
        const [survivor, ...rest] = cl.members;
        await Promise.all(rest.map((m) => m.stop()));
        await waitFor(`${cl.kind} survivor to lose its leader`, NO_LEADER_TIMEOUT_MS, async () => (await survivor.status())?.leader === '0');
        const out: Answer[] = [];
        for (const p of PROBES) out.push(await probe(survivor, p));
        return out;
      }),
    );
    expect(c).toEqual(e);
    for (const a of e) expect(a).toMatchObject({ status: 503, body: '{"health":"false"}\n', nosniff: 'nosniff' });
  });
});
