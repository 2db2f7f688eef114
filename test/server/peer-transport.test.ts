import * as grpc from '@grpc/grpc-js';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { EntryType, MessageType, newMessage, type Message } from '../../raft';
import { ServerMetrics } from '../../server/etcdserver/metrics';
import { senderMetadata } from '../../server/rafthttp/peer-service';
import { PeerTransport, type PeerHandlers } from '../../server/rafthttp/transport';
import { waitFor } from '../support/cluster';
import { freePorts } from '../support/ports';
import { quietPeerHandlers } from '../support/peer-handlers';

/** The peer port: batches of Raft messages between members, and nothing from another cluster. */

const log = pino({ level: 'silent' });
const open: PeerTransport[] = [];
afterEach(() => {
  for (const t of open.splice(0)) t.close();
});

function handlers(received: Message[], unreachable: bigint[], extra: Partial<PeerHandlers> = {}): PeerHandlers {
  return quietPeerHandlers({ onMessages: (m) => received.push(...m), reportUnreachable: (id) => unreachable.push(id), ...extra });
}

interface TransportOptions {
  extra?: Partial<PeerHandlers>;
  dialOverride?: Map<string, string>;
  names?: Map<bigint, string>;
  metrics?: ServerMetrics;
}

async function transport(memberId: bigint, clusterId: bigint, port: number, received: Message[], unreachable: bigint[], o: TransportOptions = {}): Promise<PeerTransport> {
  const names = o.names ?? new Map<bigint, string>();
  const t = new PeerTransport({
    memberId,
    clusterId,
    log,
    dialOverride: o.dialOverride ?? new Map(),
    memberName: (id) => names.get(id),
    handlers: handlers(received, unreachable, o.extra),
    metrics: o.metrics,
  });
  await t.listen([new URL(`http://127.0.0.1:${port}`)]);
  open.push(t);
  return t;
}

const UNTIL_MS = 5_000;
const until = async (what: string, cond: () => boolean): Promise<void> => {
  await waitFor(what, UNTIL_MS, cond);
};

/** A peer that accepts the Send stream and never reads it: the sender's writes back up. */
async function stalledReceiver(port: number): Promise<grpc.Server> {
  const raw = (b: Buffer): Buffer => b;
  const server = new grpc.Server();
  server.addService(
    { Send: { path: '/cairnpb.Peer/Send', requestStream: true, responseStream: false, requestSerialize: raw, requestDeserialize: raw, responseSerialize: raw, responseDeserialize: raw, originalName: 'Send' } },
    { Send: (call: grpc.ServerReadableStream<Buffer, Buffer>) => call.pause() },
  );
  await new Promise<void>((resolve, reject) => server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (e) => (e ? reject(e) : resolve())));
  return server;
}

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

  it('refuses traffic from a removed member, and tells it so (etcd: permanently removed)', async () => {
    const [pa, pb] = await freePorts(2);
    const atB: Message[] = [];
    let told = 0;
    const removed = await transport(1n, 77n, pa, [], [], { extra: { onRemovedFromCluster: () => told++ } });
    await transport(2n, 77n, pb, atB, [], { extra: { isRemoved: (id) => id === 1n } });
    removed.addPeer(2n, [`http://127.0.0.1:${pb}`]);
    removed.send([newMessage(MessageType.MsgHeartbeat, 2n, 1n, 5)]);
    await until('the removed member to be told', () => told > 0);
    expect(atB).toEqual([]);
  });

  it('dials through --peer-dial-override by peer URL, and by name once the name becomes known', async () => {
    const [pa, pb, unused] = await freePorts(3);
    const atB: Message[] = [];
    const advertised = `http://127.0.0.1:${unused}`; // nothing listens there: only the override reaches b
    const byUrl = await transport(1n, 77n, pa, [], [], { dialOverride: new Map([[advertised, `127.0.0.1:${pb}`]]) });
    await transport(2n, 77n, pb, atB, []);
    byUrl.addPeer(2n, [advertised]);
    byUrl.send([newMessage(MessageType.MsgHeartbeat, 2n, 1n, 1)]);
    await until('a message through the URL override', () => atB.length === 1);

    // Keyed by name: a member added later has no name until it publishes it through the log.
    const [pc] = await freePorts(1);
    const names = new Map<bigint, string>();
    const unreachableByName: bigint[] = [];
    const byName = await transport(3n, 77n, pc, [], unreachableByName, { dialOverride: new Map([['b', `127.0.0.1:${pb}`]]), names });
    byName.addPeer(2n, [advertised]);
    byName.send([newMessage(MessageType.MsgHeartbeat, 2n, 3n, 1)]);
    // The send has failed: it dialled the advertised URL, and nobody is there.
    await until('the send to the advertised URL to fail', () => unreachableByName.includes(2n));
    expect(atB).toHaveLength(1);
    names.set(2n, 'b');
    byName.addPeer(2n, [advertised]); // what the server does when the member's name is applied
    await until('a message through the name override', () => {
      byName.send([newMessage(MessageType.MsgHeartbeat, 2n, 3n, 1)]);
      return atB.some((m) => m.from === 3n);
    });
  });

  it('recovers a link whose send queue filled up while flow control held the stream, once the stream dies', async () => {
    const [pa, pb] = await freePorts(2);
    const stalled = await stalledReceiver(pb);
    const unreachable: bigint[] = [];
    const a = await transport(1n, 77n, pa, [], unreachable);
    a.addPeer(2n, [`http://127.0.0.1:${pb}`]);
    const big = new Uint8Array(256 * 1024);
    for (let i = 0; i < 40; i++) {
      a.send([{ ...newMessage(MessageType.MsgApp, 2n, 1n, 1), entries: [{ term: 1, index: i + 1, type: EntryType.Normal, data: big }] }]);
      await new Promise((r) => setImmediate(r));
    }
    // Heartbeats pile up behind the blocked stream until the queue is full and sends are dropped
    // (reported unreachable): only then does the stream die.
    for (let i = 0; i < 2 * 4096 && !unreachable.includes(2n); i++) {
      a.send([newMessage(MessageType.MsgHeartbeat, 2n, 1n, 1)]);
      await new Promise((r) => setImmediate(r));
    }
    expect(unreachable, 'the send queue to fill up').toContain(2n);
    stalled.forceShutdown();

    const atB: Message[] = [];
    await transport(2n, 77n, pb, atB, []);
    await until('a heartbeat over the re-established link', () => {
      a.send([newMessage(MessageType.MsgHeartbeat, 2n, 1n, 1)]);
      return atB.some((m) => m.type === MessageType.MsgHeartbeat);
    });
  });

  it('recovers a link whose stream died while flow control held it (it used to stay silent for good)', async () => {
    const [pa, pb] = await freePorts(2);
    const stalled = await stalledReceiver(pb);
    const a = await transport(1n, 77n, pa, [], []);
    a.addPeer(2n, [`http://127.0.0.1:${pb}`]);
    // 10 MiB to a receiver that reads nothing: far beyond every HTTP/2 window and socket buffer,
    // so the stream is held by flow control (not merely still draining) whenever it dies.
    const big = new Uint8Array(256 * 1024);
    for (let i = 0; i < 40; i++) {
      a.send([{ ...newMessage(MessageType.MsgApp, 2n, 1n, 1), entries: [{ term: 1, index: i + 1, type: EntryType.Normal, data: big }] }]);
      await new Promise((r) => setImmediate(r));
    }
    stalled.forceShutdown(); // the connection drops with the stream still backed up

    const atB: Message[] = [];
    await transport(2n, 77n, pb, atB, []);
    await until('a heartbeat over the re-established link', () => {
      a.send([newMessage(MessageType.MsgHeartbeat, 2n, 1n, 1)]);
      return atB.some((m) => m.type === MessageType.MsgHeartbeat);
    });
  });

  it('counts an undecodable batch in etcd_network_peer_received_failures_total under the sending member, else its address', async () => {
    const [pb] = await freePorts(1);
    const metrics = new ServerMetrics();
    const atB: Message[] = [];
    await transport(2n, 77n, pb, atB, [], { metrics });
    const raw = (b: Buffer): Buffer => b;
    const sendGarbage = (md: grpc.Metadata): Promise<grpc.ServiceError | null> => {
      const client = new grpc.Client(`127.0.0.1:${pb}`, grpc.credentials.createInsecure());
      return new Promise((resolve) => {
        const call = client.makeClientStreamRequest<Buffer, Buffer>('/cairnpb.Peer/Send', raw, raw, md, {}, (err) => {
          client.close();
          resolve(err);
        });
        // A length-delimited field whose length runs past the end: not a batch.
        call.write(Buffer.from([0x0a, 0x05, 0x01]));
        call.end();
      });
    };
    const failures = async (): Promise<Record<string, number>> => {
      const m = await metrics.peerReceivedFailures.get();
      return Object.fromEntries(m.values.map((v) => [String(v.labels.From), v.value]));
    };

    const e1 = await sendGarbage(senderMetadata(0xabcn));
    expect(e1?.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(await failures()).toEqual({ abc: 1 });

    // A stream that does not say who it is from is labelled by its remote address, as etcd labels a
    // pipeline request it could not read (r.RemoteAddr).
    const e2 = await sendGarbage(new grpc.Metadata());
    expect(e2?.code).toBe(grpc.status.INVALID_ARGUMENT);
    const f = await failures();
    expect(f.abc).toBe(1);
    const other = Object.keys(f).filter((k) => k !== 'abc');
    expect(other).toHaveLength(1);
    expect(other[0]).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(atB).toHaveLength(0);
  });
});
