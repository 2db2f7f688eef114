import { ConfChangeTransition, ConfChangeType, type ConfChange, type ConfChangeV2, type ConfState, type NodeId } from '../types';
import type { Rng } from './rng';

/** Smallest voter count a removal may leave (so 3- and 5-voter runs keep a fault-tolerant quorum). */
export const MIN_VOTERS_AFTER_REMOVAL = 3;
/** Largest voter count a promotion may reach. */
export const MAX_VOTERS = 5;

/**
 * The membership change to propose under load, given the leader's configuration: add a learner,
 * promote, remove a voter or learner, joint swaps and demotions, or leave a joint config that does
 * not leave itself. Undefined when the drawn change does not apply.
 */
export function pickConfChange(rng: Rng, cs: ConfState, ids: readonly NodeId[]): ConfChange | ConfChangeV2 | undefined {
  let cc: ConfChange | ConfChangeV2 | undefined;
  if (cs.votersOutgoing.length > 0) {
    if (!cs.autoLeave) cc = { transition: ConfChangeTransition.Auto, changes: [] };
  } else {
    const inConfig = new Set([...cs.voters, ...cs.learners]);
    const outside = ids.filter((id) => !inConfig.has(id));
    const op = rng.int(6);
    if (op === 0 && outside.length > 0) {
      cc = { type: ConfChangeType.AddLearnerNode, nodeId: rng.pick(outside) };
    } else if (op === 1 && cs.learners.length > 0 && cs.voters.length < MAX_VOTERS) {
      cc = { type: ConfChangeType.AddNode, nodeId: rng.pick(cs.learners) };
    } else if (op === 2 && cs.voters.length > MIN_VOTERS_AFTER_REMOVAL) {
      cc = { type: ConfChangeType.RemoveNode, nodeId: rng.pick(cs.voters) };
    } else if (op === 3 && cs.learners.length > 0) {
      cc = { type: ConfChangeType.RemoveNode, nodeId: rng.pick(cs.learners) };
    } else if (op === 4 && cs.learners.length > 0) {
      // Joint consensus: swap a voter for a learner in one step.
      cc = {
        transition: rng.pick([ConfChangeTransition.Auto, ConfChangeTransition.JointImplicit, ConfChangeTransition.JointExplicit]),
        changes: [
          { type: ConfChangeType.AddNode, nodeId: rng.pick(cs.learners) },
          { type: ConfChangeType.RemoveNode, nodeId: rng.pick(cs.voters) },
        ],
      };
    } else if (op === 5 && cs.learners.length > 0) {
      // Joint consensus: demote a voter to learner (it goes through learnersNext) and promote a learner.
      cc = {
        transition: rng.pick([ConfChangeTransition.JointImplicit, ConfChangeTransition.JointExplicit]),
        changes: [
          { type: ConfChangeType.AddLearnerNode, nodeId: rng.pick(cs.voters) },
          { type: ConfChangeType.AddNode, nodeId: rng.pick(cs.learners) },
        ],
      };
    }
  }
  return cc;
}
