import * as protobuf from 'protobufjs';
import type { ConfState, Entry, Message, Snapshot } from '../../raft';
import { protoRoot } from '../../proto';
import { WireReader } from '../../proto/wire-reader';
import { WIRE_BYTES, WIRE_VARINT, bytesFieldSize, messageSize, tag, varintFieldSize, writeBytesField, writeVarint, writeVarintField } from '../../proto/wire-writer';

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

/*
 * The batch a peer stream carries, encoded and decoded by hand: protobufjs's path (message objects
 * with member IDs as decimal strings, parsed back through Long on both ends, and a writer that
 * allocates per field) was ~5% of each member's main thread at 100 clients putting on 3 members
 * (BENCHMARKS.md). The hand encoder writes one buffer of the exact size; the decoder reads the
 * fields as raft-codec's messageFromWire maps protobufjs's objects, and hands a snapshot (only ever
 * in a rare MsgSnap) to protobufjs. test/server/raft-codec.test.ts checks both against protobufjs.
 *
 *   cairnpb.RaftBatch    cluster_id=1 uint64, from=2 uint64, messages=3 RaftMessage
 *   cairnpb.RaftMessage  type=1 uint32, to=2, from=3, term=4, log_term=5, index=6 uint64,
 *                        entries=7 RaftEntry, commit=8 uint64, snapshot=9 RaftSnapshot, reject=10 bool,
 *                        reject_hint=11 uint64, context=12 bytes, has_snapshot=13 bool
 *   cairnpb.RaftEntry    type=1 uint32, term=2, index=3 uint64, data=4 bytes
 */
let snapshotType: protobuf.Type | undefined;

function snapshotCodec(): protobuf.Type {
  return (snapshotType ??= protoRoot().lookupType('cairnpb.RaftSnapshot'));
}

function entrySize(e: Entry): number {
  return varintFieldSize(e.type) + varintFieldSize(e.term) + varintFieldSize(e.index) + bytesFieldSize(e.data.length);
}

function messageBodySize(m: Message, snapshot: Uint8Array | undefined): number {
  let n = varintFieldSize(m.type) + varintFieldSize(m.to) + varintFieldSize(m.from) + varintFieldSize(m.term) + varintFieldSize(m.logTerm) + varintFieldSize(m.index);
  for (const e of m.entries) n += messageSize(entrySize(e));
  n += varintFieldSize(m.commit);
  if (snapshot) n += messageSize(snapshot.length) + 2;
  if (m.reject) n += 2;
  n += varintFieldSize(m.rejectHint) + bytesFieldSize(m.context?.length ?? 0);
  return n;
}

function writeMessage(buf: Buffer, off: number, m: Message, snapshot: Uint8Array | undefined): number {
  off = writeVarintField(buf, off, 1, m.type);
  off = writeVarintField(buf, off, 2, m.to);
  off = writeVarintField(buf, off, 3, m.from);
  off = writeVarintField(buf, off, 4, m.term);
  off = writeVarintField(buf, off, 5, m.logTerm);
  off = writeVarintField(buf, off, 6, m.index);
  for (const e of m.entries) {
    buf[off++] = tag(7, WIRE_BYTES);
    off = writeVarint(buf, off, entrySize(e));
    off = writeVarintField(buf, off, 1, e.type);
    off = writeVarintField(buf, off, 2, e.term);
    off = writeVarintField(buf, off, 3, e.index);
    off = writeBytesField(buf, off, 4, e.data);
  }
  off = writeVarintField(buf, off, 8, m.commit);
  if (snapshot) {
    buf[off++] = tag(9, WIRE_BYTES);
    off = writeVarint(buf, off, snapshot.length);
    buf.set(snapshot, off);
    off += snapshot.length;
  }
  if (m.reject) off = writeVarintField(buf, off, 10, 1);
  off = writeVarintField(buf, off, 11, m.rejectHint);
  if (m.context) off = writeBytesField(buf, off, 12, m.context);
  if (snapshot) off = writeVarintField(buf, off, 13, 1);
  return off;
}

/** Encodes a batch of messages for one peer (one stream write). */
export function encodeBatch(clusterId: bigint, from: bigint, messages: readonly Message[]): Buffer {
  const snapshots = messages.map((m) => (m.snapshot ? snapshotCodec().encode(snapshotToWire(m.snapshot)).finish() : undefined));
  const sizes = messages.map((m, i) => messageBodySize(m, snapshots[i]));
  let size = varintFieldSize(clusterId) + varintFieldSize(from);
  for (const s of sizes) size += messageSize(s);
  const buf = Buffer.allocUnsafe(size);
  let off = writeVarintField(buf, 0, 1, clusterId);
  off = writeVarintField(buf, off, 2, from);
  for (let i = 0; i < messages.length; i++) {
    buf[off++] = tag(3, WIRE_BYTES);
    off = writeVarint(buf, off, sizes[i]);
    off = writeMessage(buf, off, messages[i], snapshots[i]);
  }
  if (off !== size) throw new Error(`raft batch encoder wrote ${off} bytes of ${size}`);
  return buf;
}

function bigOf(v: number | bigint): bigint {
  return typeof v === 'bigint' ? v : BigInt(v);
}

function decodeEntry(r: WireReader): Entry {
  const e: Entry = { term: 0, index: 0, type: 0, data: EMPTY };
  while (!r.done) {
    const t = r.uint32();
    switch (t) {
      case tag(1, WIRE_VARINT):
        e.type = r.uint32();
        break;
      case tag(2, WIRE_VARINT):
        e.term = Number(r.uint64());
        break;
      case tag(3, WIRE_VARINT):
        e.index = Number(r.uint64());
        break;
      case tag(4, WIRE_BYTES):
        e.data = r.bytes();
        break;
      default:
        r.skip(t & 7);
    }
  }
  return e;
}

function decodeMessage(r: WireReader): Message {
  const m: Message = { type: 0, to: 0n, from: 0n, term: 0, logTerm: 0, index: 0, entries: [], commit: 0, snapshot: undefined, reject: false, rejectHint: 0, context: undefined };
  let snapshot: Snapshot | undefined;
  let hasSnapshot = false;
  while (!r.done) {
    const t = r.uint32();
    switch (t) {
      case tag(1, WIRE_VARINT):
        m.type = r.uint32();
        break;
      case tag(2, WIRE_VARINT):
        m.to = bigOf(r.uint64());
        break;
      case tag(3, WIRE_VARINT):
        m.from = bigOf(r.uint64());
        break;
      case tag(4, WIRE_VARINT):
        m.term = Number(r.uint64());
        break;
      case tag(5, WIRE_VARINT):
        m.logTerm = Number(r.uint64());
        break;
      case tag(6, WIRE_VARINT):
        m.index = Number(r.uint64());
        break;
      case tag(7, WIRE_BYTES): {
        const { start, end } = r.delimited();
        m.entries.push(decodeEntry(new WireReader(r.buf, start, end)));
        break;
      }
      case tag(8, WIRE_VARINT):
        m.commit = Number(r.uint64());
        break;
      case tag(9, WIRE_BYTES): {
        const { start, end } = r.delimited();
        snapshot = snapshotFromWire(snapshotCodec().decode(r.buf.subarray(start, end)) as unknown as WireSnapshot);
        break;
      }
      case tag(10, WIRE_VARINT):
        m.reject = r.bool();
        break;
      case tag(11, WIRE_VARINT):
        m.rejectHint = Number(r.uint64());
        break;
      case tag(12, WIRE_BYTES): {
        const context = r.bytes();
        m.context = context.length > 0 ? context : undefined;
        break;
      }
      case tag(13, WIRE_VARINT):
        hasSnapshot = r.bool();
        break;
      default:
        r.skip(t & 7);
    }
  }
  if (hasSnapshot && snapshot) m.snapshot = snapshot;
  return m;
}

export function decodeBatch(bytes: Uint8Array): { clusterId: bigint; from: bigint; messages: Message[] } {
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const r = new WireReader(buf);
  let clusterId = 0n;
  let from = 0n;
  const messages: Message[] = [];
  while (!r.done) {
    const t = r.uint32();
    switch (t) {
      case tag(1, WIRE_VARINT):
        clusterId = bigOf(r.uint64());
        break;
      case tag(2, WIRE_VARINT):
        from = bigOf(r.uint64());
        break;
      case tag(3, WIRE_BYTES): {
        const { start, end } = r.delimited();
        messages.push(decodeMessage(new WireReader(buf, start, end)));
        break;
      }
      default:
        r.skip(t & 7);
    }
  }
  return { clusterId, from, messages };
}
