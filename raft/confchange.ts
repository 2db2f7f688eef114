import { Progress } from './tracker/progress';
import { cloneTrackerConfig, emptyTrackerConfig, type ProgressMap, type ProgressTracker, type TrackerConfig } from './tracker/tracker';
import { ErrConfChangeInvalid, assert } from './errors';
import {
  ConfChangeTransition,
  ConfChangeType,
  EntryType,
  type ConfChange,
  type ConfChangeSingle,
  type ConfChangeV2,
  type ConfState,
  type NodeId,
} from './types';

/**
 * Membership changes (etcd-io/raft confchange/): computes the next configuration and progress map
 * from the current one, on copies, so an invalid change leaves the tracker untouched.
 *
 * Joint consensus (thesis §4.3): enterJoint moves to C_old,new where every decision needs a
 * majority of both halves; leaveJoint moves to C_new. A simple change (at most one voter added or
 * removed) goes directly, since any majority of the old and the new config then overlap.
 */
export class Changer {
  constructor(
    private readonly tracker: ProgressTracker,
    private readonly lastIndex: number,
  ) {}

  enterJoint(autoLeave: boolean, ccs: readonly ConfChangeSingle[]): [TrackerConfig, ProgressMap] {
    const [cfg, prs] = this.checkAndCopy();
    if (cfg.outgoing.size > 0) throw new ErrConfChangeInvalid('config is already joint');
    if (cfg.incoming.size === 0) {
      // Joint consensus with an empty C_old is meaningless; bootstrap with simple changes.
      throw new ErrConfChangeInvalid("can't make a zero-voter config joint");
    }
    cfg.outgoing = new Set(cfg.incoming);
    this.apply(cfg, prs, ccs);
    cfg.autoLeave = autoLeave;
    return this.checkAndReturn(cfg, prs);
  }

  leaveJoint(): [TrackerConfig, ProgressMap] {
    const [cfg, prs] = this.checkAndCopy();
    if (cfg.outgoing.size === 0) throw new ErrConfChangeInvalid("can't leave a non-joint config");
    for (const id of cfg.learnersNext) {
      cfg.learners.add(id);
      const pr = prs.get(id);
      assert(pr, 'leaveJoint: learnerNext without progress');
      pr.isLearner = true;
    }
    cfg.learnersNext = new Set();
    for (const id of cfg.outgoing) {
      const isVoter = cfg.incoming.has(id);
      const isLearner = cfg.learners.has(id);
      if (!isVoter && !isLearner) prs.delete(id);
    }
    cfg.outgoing = new Set();
    cfg.autoLeave = false;
    return this.checkAndReturn(cfg, prs);
  }

  /** A change that alters the voters by at most one member: no joint state needed. */
  simple(ccs: readonly ConfChangeSingle[]): [TrackerConfig, ProgressMap] {
    const [cfg, prs] = this.checkAndCopy();
    if (cfg.outgoing.size > 0) throw new ErrConfChangeInvalid("can't apply simple config change in joint config");
    const before = cfg.incoming;
    this.apply(cfg, prs, ccs);
    let diff = 0;
    for (const id of before) if (!cfg.incoming.has(id)) diff++;
    for (const id of cfg.incoming) if (!before.has(id)) diff++;
    if (diff > 1) throw new ErrConfChangeInvalid('more than one voter changed without entering joint config');
    return this.checkAndReturn(cfg, prs);
  }

  private apply(cfg: TrackerConfig, prs: ProgressMap, ccs: readonly ConfChangeSingle[]): void {
    // apply works on a fresh incoming set so `simple` can compare with the old one.
    cfg.incoming = new Set(cfg.incoming);
    for (const cc of ccs) {
      if (cc.nodeId === 0n) continue; // etcd: a change with no node is a no-op
      switch (cc.type) {
        case ConfChangeType.AddNode:
          this.makeVoter(cfg, prs, cc.nodeId);
          break;
        case ConfChangeType.AddLearnerNode:
          this.makeLearner(cfg, prs, cc.nodeId);
          break;
        case ConfChangeType.RemoveNode:
          this.remove(cfg, prs, cc.nodeId);
          break;
        case ConfChangeType.UpdateNode:
          break;
        default:
          throw new ErrConfChangeInvalid(`unexpected conf change type ${String(cc.type)}`);
      }
    }
    if (cfg.incoming.size === 0) throw new ErrConfChangeInvalid('removed all voters');
  }

  private makeVoter(cfg: TrackerConfig, prs: ProgressMap, id: NodeId): void {
    const pr = prs.get(id);
    if (!pr) {
      this.initProgress(cfg, prs, id, false);
      return;
    }
    pr.isLearner = false;
    cfg.learners.delete(id);
    cfg.learnersNext.delete(id);
    cfg.incoming.add(id);
  }

  /**
   * Makes id a learner. A voter of the outgoing config cannot become a learner until the joint
   * config is left (it still votes there), so it goes to learnersNext.
   */
  private makeLearner(cfg: TrackerConfig, prs: ProgressMap, id: NodeId): void {
    const pr = prs.get(id);
    if (!pr) {
      this.initProgress(cfg, prs, id, true);
      return;
    }
    if (pr.isLearner) return;
    this.remove(cfg, prs, id);
    prs.set(id, pr); // remove() may have dropped it; keep the progress
    if (cfg.outgoing.has(id)) {
      cfg.learnersNext.add(id);
    } else {
      pr.isLearner = true;
      cfg.learners.add(id);
    }
  }

  private remove(cfg: TrackerConfig, prs: ProgressMap, id: NodeId): void {
    if (!prs.has(id)) return;
    cfg.incoming.delete(id);
    cfg.learners.delete(id);
    cfg.learnersNext.delete(id);
    // Still a voter in the outgoing half: keep replicating to it until the joint config is left.
    if (!cfg.outgoing.has(id)) prs.delete(id);
  }

  private initProgress(cfg: TrackerConfig, prs: ProgressMap, id: NodeId, isLearner: boolean): void {
    if (isLearner) cfg.learners.add(id);
    else cfg.incoming.add(id);
    // A new member starts probing at our last index; it is considered active so that check-quorum
    // does not depose the leader before the newcomer had a chance to answer.
    prs.set(id, new Progress(0, Math.max(this.lastIndex, 1), this.tracker.newInflights(), isLearner, true));
  }

  private checkAndCopy(): [TrackerConfig, ProgressMap] {
    const cfg = cloneTrackerConfig(this.tracker.config);
    const prs: ProgressMap = new Map();
    for (const [id, pr] of this.tracker.progress) prs.set(id, pr.clone());
    checkInvariants(cfg, prs);
    return [cfg, prs];
  }

  private checkAndReturn(cfg: TrackerConfig, prs: ProgressMap): [TrackerConfig, ProgressMap] {
    checkInvariants(cfg, prs);
    return [cfg, prs];
  }
}

/** The invariants of a configuration (etcd confchange.checkInvariants). */
function checkInvariants(cfg: TrackerConfig, prs: ProgressMap): void {
  for (const s of [cfg.incoming, cfg.outgoing, cfg.learners, cfg.learnersNext]) {
    for (const id of s) assert(prs.has(id), 'confchange: member without progress');
  }
  for (const id of cfg.learnersNext) {
    assert(cfg.outgoing.has(id), 'confchange: learnerNext not in outgoing');
    assert(!prs.get(id)?.isLearner, 'confchange: learnerNext marked learner');
  }
  for (const id of cfg.learners) {
    assert(!cfg.outgoing.has(id) && !cfg.incoming.has(id), 'confchange: learner is also a voter');
    assert(prs.get(id)?.isLearner, 'confchange: learner not marked learner');
  }
  if (cfg.outgoing.size === 0) {
    assert(cfg.learnersNext.size === 0, 'confchange: learnersNext outside joint');
    assert(!cfg.autoLeave, 'confchange: autoLeave outside joint');
  }
}

/**
 * Rebuilds the configuration described by a ConfState (from a snapshot or storage) by replaying it
 * as changes from an empty config (etcd confchange.Restore).
 */
export function restoreConfState(tracker: ProgressTracker, lastIndex: number, cs: ConfState): [TrackerConfig, ProgressMap] {
  const add = (ids: readonly NodeId[], type: ConfChangeType): ConfChangeSingle[] => ids.map((nodeId) => ({ type, nodeId }));
  // Outgoing first (as simple changes, one voter at a time), then enter joint towards incoming.
  const outgoing = add(cs.votersOutgoing, ConfChangeType.AddNode);
  const incoming: ConfChangeSingle[] = [];
  if (outgoing.length === 0) {
    incoming.push(...add(cs.voters, ConfChangeType.AddNode), ...add(cs.learners, ConfChangeType.AddLearnerNode));
  } else {
    // Entering joint: C_old is votersOutgoing; the changes build C_new. learnersNext must be added
    // as learners while they are still outgoing voters, which makes them learnersNext.
    incoming.push(
      ...cs.votersOutgoing.map((nodeId) => ({ type: ConfChangeType.RemoveNode, nodeId })),
      ...add(cs.voters, ConfChangeType.AddNode),
      ...add(cs.learners, ConfChangeType.AddLearnerNode),
      ...add(cs.learnersNext, ConfChangeType.AddLearnerNode),
    );
  }
  tracker.install(emptyTrackerConfig(), new Map());
  let cfg: TrackerConfig = tracker.config;
  let prs: ProgressMap = tracker.progress;
  const step = (f: (c: Changer) => [TrackerConfig, ProgressMap]): void => {
    [cfg, prs] = f(new Changer(tracker, lastIndex));
    tracker.install(cfg, prs);
  };
  if (outgoing.length === 0) {
    for (const cc of incoming) step((c) => c.simple([cc]));
  } else {
    for (const cc of outgoing) step((c) => c.simple([cc]));
    step((c) => c.enterJoint(cs.autoLeave, incoming));
  }
  return [cfg, prs];
}

/** V1 changes are one-element V2 changes with the Auto transition. */
export function confChangeToV2(cc: ConfChange | ConfChangeV2): ConfChangeV2 {
  if ('changes' in cc) return cc;
  return { transition: ConfChangeTransition.Auto, changes: [{ type: cc.type, nodeId: cc.nodeId }], context: cc.context };
}

/** Returns [autoLeave, true] if the change must go through a joint configuration. */
export function enterJoint(cc: ConfChangeV2): [boolean, boolean] {
  if (cc.transition !== ConfChangeTransition.Auto || cc.changes.length > 1) {
    const autoLeave = cc.transition === ConfChangeTransition.Auto || cc.transition === ConfChangeTransition.JointImplicit;
    return [autoLeave, true];
  }
  return [false, false];
}

/** An empty ConfChangeV2 means "leave the joint configuration". */
export function leaveJoint(cc: ConfChangeV2): boolean {
  return cc.transition === ConfChangeTransition.Auto && cc.changes.length === 0;
}

// ---- encoding: configuration changes travel inside entries as bytes ----

interface WireChange {
  t: number;
  n: string;
}

/** Encodes a change for an entry's data (JSON, IDs as decimal strings: stable and debuggable). */
export function encodeConfChange(cc: ConfChange | ConfChangeV2): { type: EntryType; data: Uint8Array } {
  if ('changes' in cc) {
    if (leaveJoint(cc) && cc.context === undefined) return { type: EntryType.ConfChangeV2, data: new Uint8Array(0) };
    const wire = {
      tr: cc.transition,
      c: cc.changes.map((c): WireChange => ({ t: c.type, n: c.nodeId.toString() })),
      x: cc.context ? Buffer.from(cc.context).toString('base64') : undefined,
    };
    return { type: EntryType.ConfChangeV2, data: new Uint8Array(Buffer.from(JSON.stringify(wire))) };
  }
  const wire = { t: cc.type, n: cc.nodeId.toString(), x: cc.context ? Buffer.from(cc.context).toString('base64') : undefined };
  return { type: EntryType.ConfChange, data: new Uint8Array(Buffer.from(JSON.stringify(wire))) };
}

/** Decodes the change carried by a ConfChange or ConfChangeV2 entry. */
export function decodeConfChange(type: EntryType, data: Uint8Array): ConfChange | ConfChangeV2 {
  if (type === EntryType.ConfChangeV2) {
    if (data.byteLength === 0) return { transition: ConfChangeTransition.Auto, changes: [] };
    const w = JSON.parse(Buffer.from(data).toString()) as { tr: number; c: WireChange[]; x?: string };
    return {
      transition: w.tr as ConfChangeTransition,
      changes: w.c.map((c) => ({ type: c.t as ConfChangeType, nodeId: BigInt(c.n) })),
      context: w.x !== undefined ? new Uint8Array(Buffer.from(w.x, 'base64')) : undefined,
    };
  }
  assert(type === EntryType.ConfChange, 'decodeConfChange: not a configuration entry');
  const w = JSON.parse(Buffer.from(data).toString()) as { t: number; n: string; x?: string };
  return {
    type: w.t as ConfChangeType,
    nodeId: BigInt(w.n),
    context: w.x !== undefined ? new Uint8Array(Buffer.from(w.x, 'base64')) : undefined,
  };
}
