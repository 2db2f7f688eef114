import { describe, expect, it } from 'vitest';
import * as crypto from 'node:crypto';
import type * as protobuf from 'protobufjs';
import { protoRoot } from '../../proto';
import { MessageType, type Entry, type Message } from '../../raft';
import { decodeBatch, encodeBatch, messageFromWire, messageToWire, type WireBatch } from '../../server/rafthttp/raft-codec';

/**
 * Peer batches are encoded and decoded by hand; a member must read what protobufjs writes (and a
 * peer reading with protobufjs must get what the hand encoder wrote), field for field, with member
 * IDs across the whole uint64 range, empty and large entries, rejects, contexts and snapshots.
 */
const batchType: protobuf.Type = protoRoot().lookupType('cairnpb.RaftBatch');

function protobufjsEncode(clusterId: bigint, from: bigint, messages: Message[]): Uint8Array {
  return batchType.encode({ cluster_id: clusterId.toString(), from: from.toString(), messages: messages.map(messageToWire) }).finish();
}

function protobufjsDecode(bytes: Uint8Array): { clusterId: bigint; from: bigint; messages: Message[] } {
  const w = batchType.decode(bytes) as unknown as WireBatch;
  return { clusterId: BigInt(w.cluster_id.toString()), from: BigInt(w.from.toString()), messages: w.messages.map(messageFromWire) };
}

/** Views and copies compare as bytes; an absent snapshot is undefined on both sides. */
function plain(b: { clusterId: bigint; from: bigint; messages: Message[] }): unknown {
  return {
    clusterId: b.clusterId,
    from: b.from,
    messages: b.messages.map((m) => ({
      ...m,
      snapshot: m.snapshot ? { ...m.snapshot, data: Buffer.from(m.snapshot.data) } : undefined,
      context: m.context ? Buffer.from(m.context) : undefined,
      entries: m.entries.map((e) => ({ ...e, data: Buffer.from(e.data) })),
    })),
  };
}

function id(r: Buffer): bigint {
  return r.readBigUInt64BE(0) >> BigInt(r[8] % 64);
}

function randomMessage(i: number): Message {
  const r = crypto.randomBytes(24);
  const entries: Entry[] = [];
  for (let k = 0; k < r[10] % 5; k++) entries.push({ term: r[11] + k, index: r.readUInt32BE(12) * 1024 + k, type: k % 3, data: crypto.randomBytes((r[16] * (k + 1)) % 300) });
  const m: Message = {
    type: (r[17] % 20) as MessageType,
    to: id(r),
    from: id(r.subarray(4)),
    term: r.readUInt16BE(18),
    logTerm: r.readUInt16BE(20) * (i % 2),
    index: r.readUInt32BE(12) * 2 ** (r[22] % 21),
    entries,
    commit: r.readUInt32BE(2),
    reject: (r[23] & 1) === 1,
    rejectHint: (r[23] & 1) === 1 ? r.readUInt32BE(6) : 0,
    context: (r[23] & 2) === 2 ? crypto.randomBytes(8) : undefined,
  };
  if (i % 17 === 0) {
    m.type = MessageType.MsgSnap;
    m.snapshot = { data: crypto.randomBytes(64), metadata: { index: 100 + i, term: 3, confState: { voters: [id(r), 2n ** 64n - 1n], learners: [5n], votersOutgoing: [], learnersNext: [], autoLeave: i % 2 === 0 } } };
  }
  return m;
}

describe('raft batch codec', () => {
  it('round-trips random batches, and agrees with protobufjs both ways', () => {
    for (let i = 0; i < 200; i++) {
      const messages = Array.from({ length: 1 + (i % 6) }, (_, k) => randomMessage(i * 7 + k));
      const clusterId = id(crypto.randomBytes(9));
      const from = i === 0 ? 2n ** 64n - 1n : id(crypto.randomBytes(9));
      const want = plain({ clusterId, from, messages });
      const hand = encodeBatch(clusterId, from, messages);
      expect(plain(decodeBatch(hand))).toStrictEqual(want);
      expect(plain(protobufjsDecode(hand))).toStrictEqual(want);
      expect(plain(decodeBatch(protobufjsEncode(clusterId, from, messages)))).toStrictEqual(want);
    }
  });

  it('an empty batch, and a heartbeat of zeros', () => {
    const zero: Message = { type: MessageType.MsgHeartbeat, to: 0n, from: 0n, term: 0, logTerm: 0, index: 0, entries: [], commit: 0, reject: false, rejectHint: 0 };
    expect(plain(decodeBatch(encodeBatch(1n, 2n, [])))).toStrictEqual({ clusterId: 1n, from: 2n, messages: [] });
    expect(plain(decodeBatch(encodeBatch(0n, 0n, [zero])))).toStrictEqual(plain({ clusterId: 0n, from: 0n, messages: [zero] }));
  });

  it('gives entry data as views into the received buffer', () => {
    const m = randomMessage(1);
    m.entries = [{ term: 1, index: 2, type: 0, data: Buffer.from('payload') }];
    const bytes = encodeBatch(1n, 2n, [m]);
    expect(decodeBatch(bytes).messages[0].entries[0].data.buffer).toBe(bytes.buffer);
  });

  it('throws on a truncated batch', () => {
    const bytes = encodeBatch(12345678901234567n, 2n, [randomMessage(3), randomMessage(4)]);
    for (const cut of [3, 20, bytes.length - 1]) expect(() => decodeBatch(bytes.subarray(0, cut))).toThrow();
  });
});
