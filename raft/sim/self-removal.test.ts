import { describe, expect, it } from 'vitest';
import { Harness } from './harness';
import { ConfChangeType, type NodeId } from '../types';

/**
 * Finding 11 (docs/verification.md): after the leader of three removed itself, the two others must
 * elect one of them. With two voters every election needs both members' messages in both
 * directions, so this is where loss hurts most. The random simulator never removes below three
 * voters (conf-changes.ts), so this sweep covers the 3 → 2 case on its own: random tick phases,
 * message loss before and after the removal, the removed leader running on for etcd's
 * stopWithDelay (10 heartbeats) or stopping at once, and the others dropping the removed member's
 * traffic once they applied the removal (as rafthttp does).
 */
const ELECTION_TICK = 10;
const SEEDS = 300;
/**
 * Liveness bounds, in election timeouts. With a clean link the survivors elect at once: on applying
 * the removal they forget the leader (no lease left to make them ignore each other's pre-votes) and
 * the lowest-ID survivor campaigns on its next tick (onLeaderRemoved in raft/conf-switch.ts); over 2,000 seeds the
 * worst case was 0.5, where waiting out the timeout as etcd-io/raft does took up to 5.5. With 10 %
 * loss each two-voter election needs four messages through, and the worst of 2,000 seeds was 13.7.
 */
const BOUND_ELECTION_TIMEOUTS_CLEAN = 1;
const BOUND_ELECTION_TIMEOUTS_LOSSY = 15;

function ticksToNewLeader(seed: number, loss: number, stopDelayTicks: number): number {
  const h = new Harness({ voters: [1, 2, 3], seed, config: { preVote: true, checkQuorum: true, electionTick: ELECTION_TICK, heartbeatTick: 1 } });
  h.elect(1);
  const r = h.rng;
  for (let i = r.int(ELECTION_TICK); i > 0; i--) h.tick(2);
  for (let i = r.int(ELECTION_TICK); i > 0; i--) h.tick(3);
  h.stabilize();
  h.propose(1, 'x');
  const applied = (id: NodeId): boolean => !h.raw(id).raft.trk.confState().voters.includes(1n);
  h.dropIf = (m) => r.chance(loss) || (m.from === 1n && applied(m.to));
  h.raw(1).proposeConfChange({ type: ConfChangeType.RemoveNode, nodeId: 1n });
  h.stabilize();
  for (let i = 0; i < stopDelayTicks; i++) h.tickAll(1);
  h.crash(1);
  let ticks = 0;
  while (!h.leaders().some((l) => l !== 1n) && ticks < 100 * ELECTION_TICK) {
    for (const id of [2, 3]) if (r.chance(0.8)) h.raw(id).tick(); // uneven clocks
    h.stabilize();
    ticks++;
  }
  return ticks;
}

describe('after the leader removes itself from three voters', () => {
  for (const stopDelayTicks of [0, 10]) {
    for (const loss of [0, 0.1]) {
      it(`the other two elect a leader (loss ${loss * 100} %, removed leader runs ${stopDelayTicks} ticks more)`, () => {
        let worst = 0;
        for (let seed = 1; seed <= SEEDS; seed++) worst = Math.max(worst, ticksToNewLeader(seed, loss, stopDelayTicks));
        const bound = loss === 0 ? BOUND_ELECTION_TIMEOUTS_CLEAN : BOUND_ELECTION_TIMEOUTS_LOSSY;
        expect(worst).toBeLessThanOrEqual(bound * ELECTION_TICK);
      });
    }
  }
});
