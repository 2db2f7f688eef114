/**
 * The data Raft exchanges with its caller and its peers (etcd-io/raft raftpb). Every type here is
 * plain data — numbers, bigints, strings, Uint8Arrays, arrays — so the server can serialize it
 * with protobuf and the simulator can copy it, with no classes or functions to lose on the wire.
 */

/** A member ID: etcd member IDs are uint64 hashes. 0n means "none". */
export type NodeId = bigint;
export const None: NodeId = 0n;

export enum EntryType {
  Normal = 0,
  /** Data is an encoded ConfChange (one simple change, thesis §4.3). */
  ConfChange = 1,
  /** Data is an encoded ConfChangeV2 (joint consensus, thesis §4.3 / Ongaro's "C_old,new"). */
  ConfChangeV2 = 2,
}

export interface Entry {
  term: number;
  index: number;
  type: EntryType;
  data: Uint8Array;
}

/** Message types, numbered as etcd-io/raft's raftpb.MessageType. */
export enum MessageType {
  MsgHup = 0,
  MsgBeat = 1,
  MsgProp = 2,
  MsgApp = 3,
  MsgAppResp = 4,
  MsgVote = 5,
  MsgVoteResp = 6,
  MsgSnap = 7,
  MsgHeartbeat = 8,
  MsgHeartbeatResp = 9,
  MsgUnreachable = 10,
  MsgSnapStatus = 11,
  MsgCheckQuorum = 12,
  MsgTransferLeader = 13,
  MsgTimeoutNow = 14,
  MsgReadIndex = 15,
  MsgReadIndexResp = 16,
  MsgPreVote = 17,
  MsgPreVoteResp = 18,
}

export interface HardState {
  term: number;
  vote: NodeId;
  commit: number;
}

/** Membership, as etcd's raftpb.ConfState. votersOutgoing is non-empty only in a joint config. */
export interface ConfState {
  voters: NodeId[];
  learners: NodeId[];
  votersOutgoing: NodeId[];
  /** Learners that are still voters in the outgoing half; they become learners on leaving joint. */
  learnersNext: NodeId[];
  autoLeave: boolean;
}

export interface SnapshotMetadata {
  confState: ConfState;
  index: number;
  term: number;
}

export interface Snapshot {
  data: Uint8Array;
  metadata: SnapshotMetadata;
}

export interface Message {
  type: MessageType;
  to: NodeId;
  from: NodeId;
  term: number;
  /** MsgApp: term of the entry at `index` (the entry before `entries`). Reject: term at rejectHint. */
  logTerm: number;
  index: number;
  entries: Entry[];
  commit: number;
  snapshot?: Snapshot;
  reject: boolean;
  rejectHint: number;
  context?: Uint8Array;
}

export enum ConfChangeType {
  AddNode = 0,
  RemoveNode = 1,
  UpdateNode = 2,
  AddLearnerNode = 3,
}

/** A single membership change (etcd raftpb.ConfChange). */
export interface ConfChange {
  type: ConfChangeType;
  nodeId: NodeId;
  context?: Uint8Array;
}

export enum ConfChangeTransition {
  /** Simple change when possible, else joint consensus left automatically by the leader. */
  Auto = 0,
  /** Always joint; the leader leaves it automatically once applied. */
  JointImplicit = 1,
  /** Always joint; the application must propose an empty ConfChangeV2 to leave. */
  JointExplicit = 2,
}

export interface ConfChangeSingle {
  type: ConfChangeType;
  nodeId: NodeId;
}

/** Zero or more changes applied atomically (etcd raftpb.ConfChangeV2). Empty = leave joint config. */
export interface ConfChangeV2 {
  transition: ConfChangeTransition;
  changes: ConfChangeSingle[];
  context?: Uint8Array;
}

export enum StateType {
  Follower = 0,
  Candidate = 1,
  Leader = 2,
  PreCandidate = 3,
}

export interface SoftState {
  lead: NodeId;
  raftState: StateType;
}

/** The answer to a readIndex(ctx) call: the read may be served once applied >= index. */
export interface ReadState {
  index: number;
  requestCtx: Uint8Array;
}

/**
 * What the caller must do next, in this order (the persistence contract, see docs/raft.md):
 *   1. persist `snapshot`, `entries` and `hardState` (fsync when `mustSync`);
 *   2. send `messages` (votes and append acks in here promise state persisted in step 1);
 *   3. apply `committedEntries` (and `applyConfChange` for configuration entries);
 *   4. call `advance(rd)`.
 */
export interface Ready {
  softState?: SoftState;
  hardState?: HardState;
  readStates: ReadState[];
  entries: Entry[];
  snapshot?: Snapshot;
  committedEntries: Entry[];
  messages: Message[];
  mustSync: boolean;
}

export const EMPTY_BYTES: Uint8Array = new Uint8Array(0);

/** Approximate encoded size of an entry: payload plus protobuf framing (term, index, type). */
export const ENTRY_OVERHEAD_BYTES = 16;

export function entrySizeBytes(e: Entry): number {
  return e.data.byteLength + ENTRY_OVERHEAD_BYTES;
}

/** What counts against maxUncommittedEntriesSize: payload only, as etcd's payloadSize. */
export function payloadSizeBytes(entries: readonly Entry[]): number {
  let s = 0;
  for (let i = 0; i < entries.length; i++) s += entries[i].data.byteLength;
  return s;
}

export function emptyConfState(): ConfState {
  return { voters: [], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false };
}

export function emptySnapshot(): Snapshot {
  return { data: EMPTY_BYTES, metadata: { index: 0, term: 0, confState: emptyConfState() } };
}

export function isEmptySnapshot(s: Snapshot | undefined): boolean {
  return s === undefined || s.metadata.index === 0;
}

export function isEmptyHardState(hs: HardState): boolean {
  return hs.term === 0 && hs.vote === None && hs.commit === 0;
}

export function hardStateEqual(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}

function sortedIds(ids: readonly NodeId[]): NodeId[] {
  return [...ids].sort(compareIds);
}

export function compareIds(a: NodeId, b: NodeId): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export function confStateEqual(a: ConfState, b: ConfState): boolean {
  const eq = (x: readonly NodeId[], y: readonly NodeId[]): boolean => {
    if (x.length !== y.length) return false;
    const sx = sortedIds(x);
    const sy = sortedIds(y);
    return sx.every((v, i) => v === sy[i]);
  };
  return (
    eq(a.voters, b.voters) &&
    eq(a.learners, b.learners) &&
    eq(a.votersOutgoing, b.votersOutgoing) &&
    eq(a.learnersNext, b.learnersNext) &&
    a.autoLeave === b.autoLeave
  );
}

/** Builds a message with every field present, so V8 sees one object shape on the hot path. */
export function newMessage(type: MessageType, to: NodeId, from: NodeId, term: number): Message {
  return {
    type,
    to,
    from,
    term,
    logTerm: 0,
    index: 0,
    entries: [],
    commit: 0,
    snapshot: undefined,
    reject: false,
    rejectHint: 0,
    context: undefined,
  };
}

export function isLocalMsg(t: MessageType): boolean {
  return (
    t === MessageType.MsgHup ||
    t === MessageType.MsgBeat ||
    t === MessageType.MsgUnreachable ||
    t === MessageType.MsgSnapStatus ||
    t === MessageType.MsgCheckQuorum
  );
}

export function isResponseMsg(t: MessageType): boolean {
  return (
    t === MessageType.MsgAppResp ||
    t === MessageType.MsgVoteResp ||
    t === MessageType.MsgHeartbeatResp ||
    t === MessageType.MsgUnreachable ||
    t === MessageType.MsgPreVoteResp
  );
}

/** The response type to a (pre-)vote request. */
export function voteRespMsgType(t: MessageType): MessageType {
  if (t === MessageType.MsgVote) return MessageType.MsgVoteResp;
  if (t === MessageType.MsgPreVote) return MessageType.MsgPreVoteResp;
  throw new Error(`not a vote message: ${MessageType[t]}`);
}
