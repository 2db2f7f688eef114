import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { MessageType, newMessage, type Message } from '../../raft';
import { PeerTransport, type PeerHandlers } from '../../server/peer-transport';
import { freePorts } from '../support/ports';

/** The peer port: batches of Raft messages between members, and nothing from another cluster. */

const log = pino({ level: 'silent' });
const open: PeerTransport[] = [];
afterEach(() => {
  for (const t of open.splice(0)) t.close();
});

function handlers(received: Message[], unreachable: bigint[]): PeerHandlers {
  return {
    onMessages: (m) => received.push(...m),
    onSnapshot: () => undefined,
    snapshotEntries: async function* () {},
    reportUnreachable: (id) => unreachable.push(id),
    reportSnapshot: () => undefined,
    leaseRenew: async () => ({ ttl: 0, notFound: true }),
    leaseTimeToLive: async () => ({ found: false, ttl: -1, grantedTtl: 0, keys: [] }),
    members: () => [],
  };
}

async function transport(memberId: bigint, clusterId: bigint, port: number, received: Message[], unreachable: bigint[]): Promise<PeerTransport> {
  const t = new PeerTransport({ memberId, clusterId, log, dialOverride: new Map(), handlers: handlers(received, unreachable) });
  await t.listen([new URL(`http://127.0.0.1:${port}`)]);
  open.push(t);
  return t;
}

const until = async (what: string, cond: () => boolean): Promise<void> => {
  for (let i = 0; i < 100 && !cond(); i++) await new Promise((r) => setTimeout(r, 50));
  if (!cond()) throw new Error(`timed out waiting for ${what}`);
};

describe('peer transport', () => {
  it('delivers every message of a batch, in order, between members of one cluster', async () => {
    const [pa, pb] = await freePorts(2);
    const atB: Message[] = [];
    const a = await transport(1n, 77n, pa, [], []);
    await transport(2n, 77n, pb, atB, []);
    a.addPeer(2n, [`http://127.0.0.1:${pb}`]);
    const sent = Array.from({ length: 50 }, (_, i) => ({ ...newMessage(MessageType.MsgHeartbeat, 2n, 1n, 3), commit: i }));
    a.send(sent);
    await until('50 messages at b', () => atB.length === 50);
    expect(atB.map((m) => m.commit)).toEqual(sent.map((m) => m.commit));
    expect(atB[0]).toMatchObject({ type: MessageType.MsgHeartbeat, from: 1n, to: 2n, term: 3 });
  });

  it('refuses traffic from a member of another cluster, and the sender sees it as unreachable', async () => {
    const [pa, pb] = await freePorts(2);
    const atB: Message[] = [];
    const unreachable: bigint[] = [];
    const stranger = await transport(1n, 1111n, pa, [], unreachable);
    await transport(2n, 2222n, pb, atB, []);
    stranger.addPeer(2n, [`http://127.0.0.1:${pb}`]);
    stranger.send([newMessage(MessageType.MsgHeartbeat, 2n, 1n, 5)]);
    await until('the refusal', () => unreachable.includes(2n));
    expect(atB).toEqual([]);
  });
});
