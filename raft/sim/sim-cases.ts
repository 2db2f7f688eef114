import { runSeed, reproduceCommand, type SimResult } from './simulator';

/**
 * Runs seeds [start, start+count) with `members` voters and returns the failures, each with the
 * command that replays it. Shared by the vitest suites so they stay one-liners.
 */
export function runSeeds(start: number, count: number, members: number): { failures: string[]; results: SimResult[] } {
  const failures: string[] = [];
  const results: SimResult[] = [];
  for (let s = start; s < start + count; s++) {
    const r = runSeed({ seed: s, members });
    results.push(r);
    if (!r.ok) failures.push(`seed ${s}: ${r.error ?? ''}\n  reproduce: ${reproduceCommand(s, members)}`);
  }
  return { failures, results };
}
