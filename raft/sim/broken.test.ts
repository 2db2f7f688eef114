import { describe, expect, it } from 'vitest';
import { runSeed, reproduceCommand, Simulation } from './simulator';
import type { TestingBugs } from '../config';

/**
 * The simulator must be able to fail: each deliberately broken variant (behind a test-only
 * switch) has to be caught within a few hundred seeds.
 */
function firstFailure(bugs: TestingBugs, maxSeeds: number): { seed: number; error: string } | undefined {
  for (let seed = 1; seed <= maxSeeds; seed++) {
    const r = runSeed({ seed, bugs });
    if (!r.ok) return { seed, error: r.error ?? '' };
  }
  return undefined;
}

describe('the simulator catches deliberately broken Raft', () => {
  it('counting votes from the wrong term elects two leaders in one term', () => {
    const f = firstFailure({ countVotesFromWrongTerm: true }, 300);
    expect(f, 'bug not found within 300 seeds').toBeDefined();
    expect(f?.error).toMatch(/two leaders in term|leader .* lacks|state machine safety|log matching/);
  }, 60_000);

  it('granting votes without the log up-to-date check loses committed entries', () => {
    const f = firstFailure({ grantVoteWithoutLogCheck: true }, 300);
    expect(f, 'bug not found within 300 seeds').toBeDefined();
  }, 60_000);

  it('committing entries of earlier terms by replica count (Figure 8) is caught', () => {
    // The rarest of the three: it needs a Figure 8 schedule (leader changes with partial
    // replication). The deterministic Figure 8 scenario in raft.test.ts catches it directly.
    const f = firstFailure({ commitPriorTermByCount: true }, 600);
    expect(f, 'bug not found within 600 seeds').toBeDefined();
    expect(f?.error).toMatch(/lacks committed entry|committed index|state machine safety|log matching|assertion/);
  }, 90_000);

  it('a failing seed reports a one-line replay command, and replays identically', () => {
    const bugs: TestingBugs = { grantVoteWithoutLogCheck: true };
    const f = firstFailure(bugs, 300);
    expect(f).toBeDefined();
    const seed = f!.seed;
    expect(reproduceCommand(seed)).toBe(`npm run sim -- --seeds 1 --start ${seed} --trace`);
    const a = new Simulation({ seed, bugs, trace: true }).run();
    const b = new Simulation({ seed, bugs, trace: true }).run();
    expect(a.ok).toBe(false);
    expect(a.error).toBe(b.error);
    expect(a.trace).toEqual(b.trace);
    expect(a.trace.length).toBeGreaterThan(10);
    expect(a.trace[a.trace.length - 1]).toMatch(/FAILED/);
  }, 60_000);
});
