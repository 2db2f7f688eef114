import { Raft } from './raft';
import type { Status } from './status';
import type { Config } from './config';
import { encodeConfChange } from './confchange';
import { ErrProposalDropped, ErrStepLocalMsg, assert } from './errors';
import {
  EntryType,
  MessageType,
  None,
  hardStateEqual,
  isLocalMsg,
  isResponseMsg,
  newMessage,
  payloadSizeBytes,
  type ConfChange,
  type ConfChangeV2,
  type ConfState,
  type Entry,
  type HardState,
  type Message,
  type NodeId,
  type Ready,
  type SoftState,
} from './types';

/**
 * The thin driver around Raft (etcd-io/raft rawnode.go): the caller feeds ticks and messages in and
 * takes Readys out. Everything is synchronous; the caller owns time, disk and network.
 *
 * Protocol: `if (hasReady()) { rd = ready(); persist(rd); send(rd.messages); apply(rd); advance(rd) }`.
 * ready() may not be called again until the previous Ready was advanced.
 */
export class RawNode {
  readonly raft: Raft;
  private prevSoftState: SoftState;
  private prevHardState: HardState;
  /** Self-addressed messages (our own vote) to step once the outstanding Ready is persisted. */
  private stepsOnAdvance: Message[] = [];
  private outstanding: Ready | undefined = undefined;

  constructor(config: Config) {
    this.raft = new Raft(config);
    this.prevSoftState = this.raft.softState();
    this.prevHardState = this.raft.hardState();
  }

  tick(): void {
    this.raft.tick();
  }

  /** Campaign now (skipping the election timeout); a single voter becomes leader without peers. */
  campaign(): void {
    this.raft.step(newMessage(MessageType.MsgHup, None, this.raft.id, 0));
  }

  /** Proposes one entry. Throws ErrProposalDropped if it cannot be accepted now. */
  propose(data: Uint8Array): void {
    const m = newMessage(MessageType.MsgProp, None, this.raft.id, 0);
    m.entries = [{ term: 0, index: 0, type: EntryType.Normal, data }];
    this.raft.step(m);
  }

  /** Proposes many entries in one message (one append, one MsgApp). */
  proposeBatch(datas: readonly Uint8Array[]): void {
    if (datas.length === 0) return;
    const m = newMessage(MessageType.MsgProp, None, this.raft.id, 0);
    const entries: Entry[] = new Array<Entry>(datas.length);
    for (let i = 0; i < datas.length; i++) entries[i] = { term: 0, index: 0, type: EntryType.Normal, data: datas[i] };
    m.entries = entries;
    this.raft.step(m);
  }

  /** Proposes a membership change (ConfChange: one change; ConfChangeV2: joint consensus). */
  proposeConfChange(cc: ConfChange | ConfChangeV2): void {
    const { type, data } = encodeConfChange(cc);
    const m = newMessage(MessageType.MsgProp, None, this.raft.id, 0);
    m.entries = [{ term: 0, index: 0, type, data }];
    this.raft.step(m);
  }

  /** Applies a committed change; call it for every configuration entry in committedEntries, in order. */
  applyConfChange(cc: ConfChange | ConfChangeV2): ConfState {
    return this.raft.applyConfChange(cc);
  }

  /**
   * Steps a message from a peer. Local message types are refused; responses from unknown members
   * and proposals the leader cannot take are dropped silently (the sender retries or times out).
   */
  step(m: Message): void {
    if (isLocalMsg(m.type)) throw new ErrStepLocalMsg();
    if (isResponseMsg(m.type) && !this.raft.trk.progress.has(m.from)) return;
    try {
      this.raft.step(m);
    } catch (e) {
      if (e instanceof ErrProposalDropped) return;
      throw e;
    }
  }

  /** Asks for a linearizable read; the answer arrives as a ReadState with the same ctx. */
  readIndex(ctx: Uint8Array): void {
    const m = newMessage(MessageType.MsgReadIndex, None, None, 0);
    m.entries = [{ term: 0, index: 0, type: EntryType.Normal, data: ctx }];
    this.raft.step(m);
  }

  /** Starts transferring leadership to `to` (on the leader; forwarded by followers). */
  transferLeader(to: NodeId): void {
    this.raft.step(newMessage(MessageType.MsgTransferLeader, None, to, 0));
  }

  reportUnreachable(id: NodeId): void {
    this.raft.step(newMessage(MessageType.MsgUnreachable, None, id, 0));
  }

  reportSnapshot(id: NodeId, ok: boolean): void {
    const m = newMessage(MessageType.MsgSnapStatus, None, id, 0);
    m.reject = !ok;
    this.raft.step(m);
  }

  hasReady(): boolean {
    const r = this.raft;
    if (this.outstanding) return false;
    if (r.appendPending) return true;
    // Field by field, not via softState()/hardState(): the Ready loop asks this after every event.
    const pss = this.prevSoftState;
    if (r.lead !== pss.lead || r.state !== pss.raftState) return true;
    const phs = this.prevHardState;
    if (r.term !== phs.term || r.vote !== phs.vote || r.raftLog.committed !== phs.commit) return true;
    if (r.raftLog.hasNextUnstableSnapshot()) return true;
    if (r.msgs.length > 0 || r.msgsAfterAppend.length > 0) return true;
    if (r.raftLog.hasNextUnstableEnts() || r.raftLog.hasNextCommittedEnts(true)) return true;
    return r.readStates.length > 0;
  }

  ready(): Ready {
    assert(this.outstanding === undefined, 'ready() called before the previous Ready was advanced');
    const r = this.raft;
    // Proposals since the last Ready go out now, batched into as few MsgApps as the limits allow.
    if (r.appendPending) r.bcastAppend();
    const rd: Ready = {
      softState: undefined,
      hardState: undefined,
      readStates: r.readStates,
      entries: r.raftLog.nextUnstableEnts(),
      snapshot: r.raftLog.nextUnstableSnapshot(),
      committedEntries: r.raftLog.nextCommittedEnts(true),
      messages: r.msgs,
      mustSync: false,
    };
    const ss = r.softState();
    if (ss.lead !== this.prevSoftState.lead || ss.raftState !== this.prevSoftState.raftState) {
      rd.softState = ss;
      this.prevSoftState = ss;
    }
    const hs = r.hardState();
    if (!hardStateEqual(hs, this.prevHardState)) {
      rd.hardState = hs;
      // Term and vote changes must be fsynced before votes leave; a commit index change need not
      // (it can be recomputed from a quorum), exactly as etcd's MustSync.
      rd.mustSync = hs.term !== this.prevHardState.term || hs.vote !== this.prevHardState.vote;
      this.prevHardState = hs;
    }
    if (rd.entries.length > 0) rd.mustSync = true;
    // Accept: everything in this Ready is now in progress.
    r.readStates = [];
    r.msgs = [];
    this.stepsOnAdvance = r.msgsAfterAppend;
    r.msgsAfterAppend = [];
    r.raftLog.acceptUnstable();
    if (rd.committedEntries.length > 0) {
      r.raftLog.acceptApplying(rd.committedEntries[rd.committedEntries.length - 1].index);
    }
    this.outstanding = rd;
    return rd;
  }

  /**
   * The caller persisted, sent and applied `rd`. Marks its entries stable, counts our own durable
   * log (leader) and our own durable vote (candidate), and records what was applied.
   */
  advance(rd: Ready): void {
    assert(this.outstanding === rd, 'advance() with a Ready that is not the outstanding one');
    this.outstanding = undefined;
    const r = this.raft;
    const log = r.raftLog;
    if (rd.snapshot) {
      log.stableSnapTo(rd.snapshot.metadata.index);
      log.appliedTo(rd.snapshot.metadata.index);
    }
    if (rd.entries.length > 0) {
      const last = rd.entries[rd.entries.length - 1];
      log.stableTo(last.index, last.term);
    }
    if (rd.committedEntries.length > 0) {
      const last = rd.committedEntries[rd.committedEntries.length - 1];
      log.appliedTo(last.index);
      r.reduceUncommittedSize(payloadSizeBytes(rd.committedEntries));
    }
    r.onPersisted();
    const steps = this.stepsOnAdvance;
    this.stepsOnAdvance = [];
    for (const m of steps) r.step(m);
    if (rd.committedEntries.length > 0) r.onApplied(log.applied);
  }

  status(): Status {
    return this.raft.status();
  }
}
