import { describe, expect, it } from 'vitest';
import type { Event } from '../../mvcc/kv';
import type { WatchResponse } from '../../mvcc/watch-stream';
import { messageCodec } from '../../proto';
import { WatchEncoder } from '../../server/v3rpc/watch';

/** The hand-written WatchResponse encoder must produce what protobufjs decodes per rpc.proto. */
const codec = messageCodec<Record<string, any>>('etcdserverpb.WatchResponse');
const header = (rev: number) => ({ cluster_id: '14841639068965178418', member_id: '10276657743932975437', revision: rev, raft_term: 7 });
const enc = new WatchEncoder({ header });

function resp(fields: Partial<WatchResponse>): WatchResponse {
  return { watchId: 0, revision: 5, events: [], created: false, canceled: false, compactRevision: 0, cancelReason: '', fragment: false, ...fields };
}

const kv = (key: string, value: string, mod: number, lease = 0n) => ({
  key: Buffer.from(key),
  value: Buffer.from(value),
  createRevision: 2,
  modRevision: mod,
  version: mod - 1,
  lease,
});

describe('watch response encoding', () => {
  it('encodes header, negative watch IDs, flags, reasons and compact revisions as protobufjs decodes them', () => {
    const r = resp({ watchId: -1, revision: 123456789012, created: true, canceled: true, cancelReason: 'mvcc: watcher range is empty', compactRevision: 42 });
    const [bytes] = enc.encode(r, 1 << 30);
    const d = codec.decode(bytes);
    expect(d).toMatchObject({
      header: { cluster_id: '14841639068965178418', member_id: '10276657743932975437', revision: '123456789012', raft_term: '7' },
      watch_id: '-1',
      created: true,
      canceled: true,
      compact_revision: '42',
      cancel_reason: 'mvcc: watcher range is empty',
      fragment: false,
      events: [],
    });
  });

  it('encodes PUT and DELETE events with kv, prev_kv and 64-bit leases', () => {
    const events: Event[] = [
      { type: 'PUT', kv: kv('a', 'v2', 3, (1n << 63n) - 5n), prevKv: kv('a', 'v1', 2) },
      { type: 'DELETE', kv: { key: Buffer.from('b'), value: Buffer.alloc(0), createRevision: 0, modRevision: 3, version: 0, lease: 0n } },
    ];
    const d = codec.decode(enc.encode(resp({ events }), 1 << 30)[0]);
    expect(d.events).toHaveLength(2);
    expect(d.events[0]).toMatchObject({ type: 0, kv: { key: Buffer.from('a'), value: Buffer.from('v2'), mod_revision: '3', create_revision: '2', version: '2', lease: String((1n << 63n) - 5n) }, prev_kv: { value: Buffer.from('v1') } });
    expect(d.events[1]).toMatchObject({ type: 1, kv: { key: Buffer.from('b'), mod_revision: '3', create_revision: '0', version: '0' }, prev_kv: null });
  });

  it('fragments like etcd: only when asked, over the limit and with >1 event; every piece but the last has fragment=true', () => {
    const events: Event[] = Array.from({ length: 10 }, (_, i) => ({ type: 'PUT' as const, kv: kv(`k${i}`, 'x'.repeat(100), 3 + i) }));
    const whole = enc.encode(resp({ events }), 1 << 30);
    expect(whole).toHaveLength(1);
    expect(enc.encode(resp({ events }), 300)).toHaveLength(1); // fragment not requested
    const pieces = enc.encode(resp({ events, fragment: true }), 300);
    expect(pieces.length).toBeGreaterThan(1);
    const decoded = pieces.map((p) => codec.decode(p));
    expect(decoded.map((d) => d.fragment)).toEqual(decoded.map((_, i) => i < decoded.length - 1));
    expect(decoded.flatMap((d) => d.events.map((e: any) => e.kv.key.toString()))).toEqual(events.map((e) => e.kv.key.toString()));
    for (const p of pieces.slice(0, -1)) expect(p.length).toBeLessThan(300);
    const one = enc.encode(resp({ events: events.slice(0, 1), fragment: true }), 10);
    expect(one).toHaveLength(1);
  });
});
