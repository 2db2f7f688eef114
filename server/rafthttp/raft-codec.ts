import * as protobuf from 'protobufjs';
import type { ConfState, Entry, Message, Snapshot } from '../../raft';
import { protoRoot } from '../../proto';

/**
 * Raft messages on the wire between members (proto/cairn/raft.proto). Node IDs are uint64 and
 * travel as Long/strings; they become bigints again here, so raft/ only ever sees its own types.
 */

interface Longish {
  toString(): string;
}

type U64 = number | string | Longish;

interface WireEntry {
  term: U64;
  index: U64;
  type: number;
  data: Uint8Array;
}

interface WireConfState {
  voters: U64[];
  learners: U64[];
  voters_outgoing: U64[];
  learners_next: U64[];
  auto_leave: boolean;
}

interface WireSnapshot {
  data: Uint8Array;
  metadata: { conf_state: WireConfState; index: U64; term: U64 };
}

export interface WireMessage {
  type: number;
  to: U64;
  from: U64;
  term: U64;
  log_term: U64;
  index: U64;
  entries: WireEntry[];
  commit: U64;
  snapshot?: WireSnapshot | null;
  has_snapshot: boolean;
  reject: boolean;
  reject_hint: U64;
  context: Uint8Array;
}

export interface WireBatch {
  cluster_id: U64;
  from: U64;
  messages: WireMessage[];
}

const num = (v: U64 | undefined | null): number => (v === undefined || v === null ? 0 : typeof v === 'number' ? v : Number(v.toString()));
const big = (v: U64 | undefined | null): bigint => (v === undefined || v === null ? 0n : BigInt(typeof v === 'number' ? v : v.toString()));
const EMPTY = new Uint8Array(0);

function confStateToWire(cs: ConfState): WireConfState {
  return {
    voters: cs.voters.map(String),
    learners: cs.learners.map(String),
    voters_outgoing: cs.votersOutgoing.map(String),
    learners_next: cs.learnersNext.map(String),
    auto_leave: cs.autoLeave,
  };
}

function confStateFromWire(w: WireConfState | undefined | null): ConfState {
  return {
    voters: (w?.voters ?? []).map(big),
    learners: (w?.learners ?? []).map(big),
    votersOutgoing: (w?.voters_outgoing ?? []).map(big),
    learnersNext: (w?.learners_next ?? []).map(big),
    autoLeave: w?.auto_leave ?? false,
  };
}

export function snapshotToWire(s: Snapshot): WireSnapshot {
  return {
    data: s.data,
    metadata: { conf_state: confStateToWire(s.metadata.confState), index: s.metadata.index, term: s.metadata.term },
  };
}

export function snapshotFromWire(w: WireSnapshot): Snapshot {
  return {
    data: w.data ?? EMPTY,
    metadata: { confState: confStateFromWire(w.metadata?.conf_state), index: num(w.metadata?.index), term: num(w.metadata?.term) },
  };
}

export function messageToWire(m: Message): WireMessage {
  return {
    type: m.type,
    to: m.to.toString(),
    from: m.from.toString(),
    term: m.term,
    log_term: m.logTerm,
    index: m.index,
    entries: m.entries.map((e) => ({ term: e.term, index: e.index, type: e.type, data: e.data })),
    commit: m.commit,
    snapshot: m.snapshot ? snapshotToWire(m.snapshot) : null,
    has_snapshot: m.snapshot !== undefined,
    reject: m.reject,
    reject_hint: m.rejectHint,
    context: m.context ?? EMPTY,
  };
}

export function messageFromWire(w: WireMessage): Message {
  const entries: Entry[] = (w.entries ?? []).map((e) => ({ term: num(e.term), index: num(e.index), type: e.type, data: e.data ?? EMPTY }));
  return {
    type: w.type,
    to: big(w.to),
    from: big(w.from),
    term: num(w.term),
    logTerm: num(w.log_term),
    index: num(w.index),
    entries,
    commit: num(w.commit),
    snapshot: w.has_snapshot && w.snapshot ? snapshotFromWire(w.snapshot) : undefined,
    reject: w.reject ?? false,
    rejectHint: num(w.reject_hint),
    context: w.context && w.context.length > 0 ? w.context : undefined,
  };
}

let batchType: protobuf.Type | undefined;

/** Encodes a batch of messages for one peer (one stream write). */
export function encodeBatch(clusterId: bigint, from: bigint, messages: readonly Message[]): Uint8Array {
  batchType ??= protoRoot().lookupType('cairnpb.RaftBatch');
  return batchType.encode({ cluster_id: clusterId.toString(), from: from.toString(), messages: messages.map(messageToWire) }).finish();
}

export function decodeBatch(bytes: Uint8Array): { clusterId: bigint; from: bigint; messages: Message[] } {
  batchType ??= protoRoot().lookupType('cairnpb.RaftBatch');
  const w = batchType.decode(bytes) as unknown as WireBatch;
  return { clusterId: big(w.cluster_id), from: big(w.from), messages: (w.messages ?? []).map(messageFromWire) };
}
