/**
 * The CI smoke run of the verification harness: short runs of real 3-member clusters under each
 * family of faults, which must all pass on cairn, plus the harness's two self-tests, which must
 * FAIL: with reads served from local state (no ReadIndex), isolating the leader makes it serve
 * stale reads, and the linearizability checker has to say so; with writes acknowledged before
 * fsync, a power cut of the whole cluster loses acknowledged writes, and the durability checker has
 * to say so. A run that finds a violation fails CI.
 *
 * Needs a fresh build (`npm run build`; `npm test` builds first). Budget: under 8 minutes on a
 * 2-core machine. Every run leaves its directory (history, verdicts, report, member logs) in the
 * temp dir; the path is in the failure message.
 */
import { describe, expect, it } from 'vitest';
import type { NemesisFamily } from './nemesis';
import { type RunOptions, type RunResult, runOnce } from './run';

/** Seconds of workload per scenario. */
const SCENARIO_S = 30;
/** The stale-read self-test needs less: one isolation of the leader. */
const SELF_TEST_S = 20;
/** Per-test timeout: the run, plus start, heal, final read, stop and checking. */
const timeoutMs = (s: number): number => (s + 90) * 1000;

function explain(r: RunResult): string {
  const v = r.verdicts.map((x) => `${x.checker}=${x.status} (${x.summary})`).join('; ');
  return `run ${r.overall} in ${r.dir}: ${v}${r.errors.length > 0 ? `; harness errors: ${r.errors.join(' | ')}` : ''}`;
}

async function scenario(workload: string, nemeses: NemesisFamily[], timeS: number, seed: number, extra: Partial<RunOptions> = {}): Promise<RunResult> {
  const r = await runOnce({ workload, nemeses, nodes: 3, timeS, seed, ...extra });
  const faults = r.faults;
  expect(faults, `no fault was injected: ${explain(r)}`).toBeGreaterThan(0);
  expect(r.ops.ok, `too few successful operations: ${explain(r)}`).toBeGreaterThan(100);
  return r;
}

describe('cluster-tests smoke run (real 3-member clusters, real faults)', () => {
  it('registers stay linearizable under partitions', { timeout: timeoutMs(SCENARIO_S) }, async () => {
    const r = await scenario('register', ['partition'], SCENARIO_S, 11);
    expect(r.errors, explain(r)).toEqual([]);
    expect(r.overall, explain(r)).toBe('pass');
  });

  it('list-append transactions stay strict serializable and durable when members are killed, one or all at once, losing unsynced writes', { timeout: timeoutMs(SCENARIO_S) }, async () => {
    const r = await scenario('list-append', ['kill', 'crash'], SCENARIO_S, 12, { loseUnsyncedWrites: true });
    expect(r.verdicts.map((v) => v.checker)).toContain('durability');
    expect(r.errors, explain(r)).toEqual([]);
    expect(r.overall, explain(r)).toBe('pass');
  });

  it('Kubernetes-style traffic and watches hold their guarantees when members are paused', { timeout: timeoutMs(SCENARIO_S) }, async () => {
    const r = await scenario('kubernetes', ['pause'], SCENARIO_S, 13);
    expect(r.verdicts.map((v) => v.checker)).toContain('watch');
    expect(r.errors, explain(r)).toEqual([]);
    expect(r.overall, explain(r)).toBe('pass');
  });

  it('registers stay linearizable and durable while members are replaced (remove, wipe, add back)', { timeout: timeoutMs(SCENARIO_S) }, async () => {
    const r = await scenario('register', ['member'], SCENARIO_S, 14);
    expect(r.verdicts.map((v) => v.checker)).toContain('durability');
    expect(r.errors, explain(r)).toEqual([]);
    expect(r.overall, explain(r)).toBe('pass');
  });

  it('self-test: with reads served from local state, an isolated leader serves stale reads and the checker reports them', { timeout: timeoutMs(SELF_TEST_S) }, async () => {
    const r = await runOnce({ workload: 'register', nemeses: ['isolate-leader'], nodes: 3, timeS: SELF_TEST_S, seed: 15, unsafeLocalReads: true });
    expect(r.faults, explain(r)).toBeGreaterThan(0);
    const lin = r.verdicts.find((v) => v.checker === 'linearizability');
    expect(lin?.status, `the harness missed the stale reads it was built to catch: ${explain(r)}`).toBe('fail');
    expect(r.overall).toBe('fail');
  });

  it('self-test: with writes acknowledged before fsync, a power cut of every member loses acknowledged writes and the checkers report them', { timeout: timeoutMs(SELF_TEST_S) }, async () => {
    const r = await runOnce({ workload: 'register', nemeses: ['crash'], nodes: 3, timeS: SELF_TEST_S, seed: 21, loseUnsyncedWrites: true, unsafeNoFsync: true });
    expect(r.faults, explain(r)).toBeGreaterThan(0);
    const durability = r.verdicts.find((v) => v.checker === 'durability');
    expect(durability?.status, `the harness missed the lost writes it was built to catch: ${explain(r)}`).toBe('fail');
    expect(r.overall).toBe('fail');
  });
});
