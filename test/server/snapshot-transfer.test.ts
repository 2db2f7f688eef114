import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { MessageType, newMessage, type Message } from '../../raft';
import { PeerTransport, type PeerHandlers, type SnapshotEntries } from '../../server/rafthttp/transport';
import { waitFor } from '../support/cluster';
import { freePorts } from '../support/ports';
import { quietPeerHandlers } from '../support/peer-handlers';

/**
 * A MsgSnap and its backend entries between two peer transports on loopback (snapshot-sender.ts,
 * snapshot-handler.ts): in order and complete, the sender told the outcome, another cluster refused.
 */

const log = pino({ level: 'silent' });
const open: PeerTransport[] = [];
afterEach(() => {
  for (const t of open.splice(0)) t.close();
});

function handlers(extra: Partial<PeerHandlers>): PeerHandlers {
  return quietPeerHandlers(extra);
}

async function transport(memberId: bigint, clusterId: bigint, port: number, extra: Partial<PeerHandlers>): Promise<PeerTransport> {
  const t = new PeerTransport({ memberId, clusterId, log, dialOverride: new Map(), memberName: () => undefined, handlers: handlers(extra) });
  await t.listen([new URL(`http://127.0.0.1:${port}`)]);
  open.push(t);
  return t;
}

/** 3000 entries of 1 KiB..3 KiB in chunks of 100, as the store yields them. */
async function* backend(): AsyncGenerator<[Buffer, Buffer][]> {
  for (let c = 0; c < 30; c++) {
    yield Array.from({ length: 100 }, (_, i): [Buffer, Buffer] => {
      const n = c * 100 + i;
      return [Buffer.from(`key/${String(n).padStart(5, '0')}`), Buffer.alloc(1024 + (n % 2048), n % 251)];
    });
  }
}

function msgSnap(index: number): Message {
  return { ...newMessage(MessageType.MsgSnap, 2n, 1n, 4), snapshot: { data: new Uint8Array(), metadata: { index, term: 4, confState: { voters: [1n, 2n], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false } } } };
}

describe('snapshot transfer between peers', () => {
  it('delivers the MsgSnap and every entry in order; the sender is told it succeeded once the receiver is done', async () => {
    const [pa, pb] = await freePorts(2);
    const reports: boolean[] = [];
    const got: { message?: Message; keys: string[]; values: Buffer[]; done: boolean } = { keys: [], values: [], done: false };
    const onSnapshot = async (m: Message, entries: SnapshotEntries): Promise<void> => {
      got.message = m;
      for await (const chunk of entries) {
        for (const [k, v] of chunk) {
          got.keys.push(k.toString());
          got.values.push(v);
        }
      }
      got.done = true;
    };
    const leader = await transport(1n, 9n, pa, { snapshotEntries: backend, reportSnapshot: (_id, ok) => reports.push(ok) });
    await transport(2n, 9n, pb, { onSnapshot });
    leader.addPeer(2n, [`http://127.0.0.1:${pb}`]);
    leader.send([msgSnap(1234)]);
    await waitFor('the snapshot report', 10_000, () => reports.length > 0);
    expect(reports).toEqual([true]);
    expect(got.done).toBe(true);
    expect(got.message?.snapshot?.metadata.index).toBe(1234);
    expect(got.keys).toHaveLength(3000);
    expect(got.keys[0]).toBe('key/00000');
    expect(got.keys[2999]).toBe('key/02999');
    expect(got.values[2999].equals(Buffer.alloc(1024 + (2999 % 2048), 2999 % 251))).toBe(true);
  });

  it('a receiver that fails to save it fails the transfer for the sender', async () => {
    const [pa, pb] = await freePorts(2);
    const reports: boolean[] = [];
    const onSnapshot = async (_m: Message, entries: SnapshotEntries): Promise<void> => {
      for await (const _ of entries) throw new Error('no space left on device');
    };
    const leader = await transport(1n, 9n, pa, { snapshotEntries: backend, reportSnapshot: (_id, ok) => reports.push(ok) });
    await transport(2n, 9n, pb, { onSnapshot });
    leader.addPeer(2n, [`http://127.0.0.1:${pb}`]);
    leader.send([msgSnap(7)]);
    await waitFor('the snapshot report', 10_000, () => reports.length > 0);
    expect(reports).toEqual([false]);
  });

  it('refuses a snapshot from a member of another cluster', async () => {
    const [pa, pb] = await freePorts(2);
    const reports: boolean[] = [];
    let called = false;
    const stranger = await transport(1n, 1111n, pa, { snapshotEntries: backend, reportSnapshot: (_id, ok) => reports.push(ok) });
    await transport(2n, 2222n, pb, { onSnapshot: async () => void (called = true) });
    stranger.addPeer(2n, [`http://127.0.0.1:${pb}`]);
    stranger.send([msgSnap(7)]);
    await waitFor('the snapshot report', 10_000, () => reports.length > 0);
    expect(reports).toEqual([false]);
    expect(called).toBe(false);
  });
});
