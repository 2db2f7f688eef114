import { afterEach, describe, expect, it } from 'vitest';
import { FAST_ELECTION_MS, FAST_HEARTBEAT_MS, startCluster, waitFor, type Cluster } from '../support/cluster';
import { etcdctl, etcdctlReconfig, UNHEALTHY_CLUSTER } from '../support/etcdctl';
import { freePorts } from '../support/ports';

/**
 * etcd's reconfiguration checks, side by side with Debian's etcd 3.4: --strict-reconfig-check
 * (default true) refuses a voter whose addition leaves too few started members for a quorum, and
 * MemberPromote is checked for the learner's readiness by the leader even when it arrives at a
 * follower. Each scenario runs against a fresh 3-member cluster of each kind; the answers must match.
 */

type Kind = 'etcd' | 'cairn';
const KINDS: Kind[] = ['etcd', 'cairn'];

let clusters: Cluster[] = [];
afterEach(async () => {
  for (const c of clusters) await c.cleanup();
  clusters = [];
});

async function fresh(kind: Kind, extraArgs: string[] = []): Promise<Cluster> {
  const c = await startCluster({ kind, heartbeatIntervalMs: FAST_HEARTBEAT_MS, electionTimeoutMs: FAST_ELECTION_MS, extraArgs });
  clusters.push(c);
  return c;
}

/** The error line etcdctl prints, without its timestamp prefix. */
function errorLine(stderr: string): string {
  const line = stderr.split('\n').find((l) => l.includes('Error:')) ?? stderr;
  return line.slice(line.indexOf('Error:')).trim();
}

/**
 * Runs a membership command on `endpoint` as soon as the member stops answering "unhealthy
 * cluster": right after start, etcd (and cairn) refuse reconfiguration until every peer has been
 * connected for HealthInterval (5 s).
 */
async function whenHealthy(endpoint: string, args: string[]): Promise<{ code: number | null; stdout: string; error: string }> {
  const r = await etcdctlReconfig(endpoint, args);
  const error = r.code === 0 ? '' : errorLine(r.stderr);
  expect(error, `etcdctl ${args.join(' ')} still unhealthy`).not.toContain(UNHEALTHY_CLUSTER);
  return { code: r.code, stdout: r.stdout, error };
}

/** Adds three voters that never start; returns what etcdctl printed for each. */
async function addUnstartedVoters(c: Cluster): Promise<{ code: number | null; error: string }[]> {
  const leader = await c.leader();
  const ports = await freePorts(3);
  const first = await whenHealthy(leader.endpoint, ['member', 'add', 'never0', `--peer-urls=http://127.0.0.1:${ports[0]}`]);
  const out: { code: number | null; error: string }[] = [{ code: first.code, error: first.error }];
  for (const [i, port] of ports.slice(1).entries()) {
    const r = await etcdctl(leader.endpoint, ['member', 'add', `never${i + 1}`, `--peer-urls=http://127.0.0.1:${port}`]);
    out.push({ code: r.code, error: r.code === 0 ? '' : errorLine(r.stderr) });
  }
  return out;
}

/** etcd_network_active_peers{Local=leader, Remote=peer} as the leader's /metrics reports it. */
async function activePeerGauge(clientUrl: string, local: string, remote: string): Promise<number | undefined> {
  const text = await (await fetch(`${clientUrl}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith('etcd_network_active_peers{') && l.includes(`Local="${local}"`) && l.includes(`Remote="${remote}"`));
  return line === undefined ? undefined : Number(line.split(' ').pop());
}

describe('reconfiguration checks match etcd (process level)', () => {
  it('--strict-reconfig-check refuses a voter while a voting member is not connected', async () => {
    const results: Record<Kind, { code: number | null; error: string }[]> = { etcd: [], cairn: [] };
    for (const kind of KINDS) results[kind] = await addUnstartedVoters(await fresh(kind));
    // The first unstarted voter gets in (3 started of 4 is a quorum); after it, the cluster is not
    // fully connected, so every further voter is refused.
    expect(results.etcd.map((r) => r.code === 0)).toEqual([true, false, false]);
    expect(results.etcd[1].error).toContain('etcdserver: unhealthy cluster');
    expect(results.cairn).toEqual(results.etcd);
  });

  it('--strict-reconfig-check refuses to remove a live voter when that breaks the active quorum; a dead one may go', async () => {
    const answers: Record<Kind, string[]> = { etcd: [], cairn: [] };
    for (const kind of KINDS) {
      const c = await fresh(kind);
      const leader = await c.leader();
      const [down, alive] = c.members.filter((m) => m !== leader);
      const ids = Object.fromEntries(await Promise.all(c.members.map(async (m) => [m.name, (await m.status())!.id] as const)));
      // Past the start-up window first: a healthy cluster accepts a learner (removed again at once).
      const [port] = await freePorts(1);
      const healthy = await whenHealthy(leader.endpoint, ['member', 'add', 'probe', `--peer-urls=http://127.0.0.1:${port}`, '--learner']);
      expect(healthy.code, healthy.error).toBe(0);
      const probeId = /Member\s+(\w+) added to cluster/.exec(healthy.stdout)?.[1];
      expect((await etcdctl(leader.endpoint, ['member', 'remove', probeId!])).code).toBe(0);
      await down.kill();
      // etcd marks a peer inactive when its stream breaks; wait until the leader reports it so.
      await waitFor(`${kind} leader to see ${down.name} inactive`, 10_000, async () => (await activePeerGauge(leader.clientUrl, ids[leader.name], ids[down.name])) === 0 || undefined);
      const rmAlive = await etcdctl(leader.endpoint, ['member', 'remove', ids[alive.name]]);
      answers[kind].push(rmAlive.code === 0 ? 'removed' : errorLine(rmAlive.stderr));
      const rmDown = await etcdctl(leader.endpoint, ['member', 'remove', ids[down.name]]);
      answers[kind].push(rmDown.code === 0 ? 'removed' : errorLine(rmDown.stderr));
    }
    expect(answers.etcd[0]).toContain('etcdserver: unhealthy cluster');
    expect(answers.etcd[1]).toBe('removed');
    expect(answers.cairn).toEqual(answers.etcd);
  });

  it('--strict-reconfig-check=false lets the same voter in, as etcd does', async () => {
    const results: Record<Kind, boolean[]> = { etcd: [], cairn: [] };
    for (const kind of KINDS) results[kind] = (await addUnstartedVoters(await fresh(kind, ['--strict-reconfig-check=false']))).map((r) => r.code === 0);
    expect(results.etcd).toEqual([true, true, true]);
    expect(results.cairn).toEqual(results.etcd);
  });

  it('a follower counts the other follower as connected: reconfiguration through it works', async () => {
    const answers: Record<Kind, string> = { etcd: '', cairn: '' };
    for (const kind of KINDS) {
      const c = await fresh(kind);
      const leader = await c.leader();
      const follower = c.members.find((m) => m !== leader)!;
      const [port] = await freePorts(1);
      // Raft sends nothing between two followers, but etcd keeps every pair connected.
      const add = await whenHealthy(follower.endpoint, ['member', 'add', 'via-follower', `--peer-urls=http://127.0.0.1:${port}`, '--learner']);
      answers[kind] = add.code === 0 ? 'added' : add.error;
    }
    expect(answers.etcd).toBe('added');
    expect(answers.cairn).toBe(answers.etcd);
  });

  it('MemberPromote sent to a follower is refused while the learner has not caught up', async () => {
    const answers: Record<Kind, string> = { etcd: '', cairn: '' };
    for (const kind of KINDS) {
      const c = await fresh(kind);
      const leader = await c.leader();
      const follower = c.members.find((m) => m !== leader)!;
      const [port] = await freePorts(1);
      const add = await whenHealthy(leader.endpoint, ['member', 'add', 'learner', `--peer-urls=http://127.0.0.1:${port}`, '--learner']);
      expect(add.code, add.error).toBe(0);
      const id = /Member\s+(\w+) added to cluster/.exec(add.stdout)?.[1];
      expect(id).toBeTruthy();
      // The follower must have applied the MemberAdd before it can be asked to promote.
      await waitFor('the follower to list the learner', 10_000, async () => (await etcdctl(follower.endpoint, ['member', 'list'])).stdout.includes(`http://127.0.0.1:${port}`) || undefined);
      const promote = await etcdctl(follower.endpoint, ['member', 'promote', id!]);
      expect(promote.code, `${kind}: promoting a learner that never started must fail`).not.toBe(0);
      answers[kind] = errorLine(promote.stderr);
      // Still an unstarted learner.
      const list = await etcdctl(leader.endpoint, ['member', 'list']);
      expect(list.stdout).toMatch(new RegExp(`${id}, unstarted, , http://127.0.0.1:${port}, , true`));
    }
    expect(answers.etcd).toContain('etcdserver: can only promote a learner member which is in sync with leader');
    expect(answers.cairn).toBe(answers.etcd);
  });
});
