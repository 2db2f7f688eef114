import * as grpc from '@grpc/grpc-js';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { EntryType, MessageType, type Message } from '../../raft';
import { computeClusterId, computeMemberId } from '../../server/etcdserver/membership/member-id';
import { encodeBatch } from '../../server/rafthttp/raft-codec';
import { freePorts } from '../support/ports';
import { fatalLines, killIfRunning, spawnCairn, tail, waitExit, waitFor, type Proc } from './process';

/**
 * A peer's message that breaks a Raft invariant stops the member (etcd-io/raft panics, taking etcd
 * down): one fatal line 'raft invariant violated', exit non-zero. The test plays the second member
 * of a two-member cluster on cairn's own peer wire protocol (the /cairnpb.Peer/Send client stream
 * of RaftBatch frames), with the IDs cairn derives from --initial-cluster, and sends a MsgApp that
 * rewrites an entry the follower has committed. With one of two voters absent the real member
 * never becomes leader, so no entry of its own gets in the way.
 *
 * The entry: every member of a new cluster starts from a snapshot at index 1, term 1, with commit
 * 1 (server.ts bootstrap). The MsgApp claims index 1 / log term 1 (which matches) and carries entry
 * 1 at a higher term: a conflict at index 1 <= commit, which etcd-io/raft's raftLog.maybeAppend
 * panics on ("entry %d conflict with committed entry [committed(%d)]").
 */

const TOKEN = 'failstop-raft-invariant';
/** Far above any term the lone member reaches by campaigning during the test. */
const LEADER_TERM = 1_000;
const READY_TIMEOUT_MS = 20_000;
/** The brief's bound is a second; the slack covers a loaded 2-core CI machine. */
const EXIT_TIMEOUT_MS = 5_000;
const SEND_TIMEOUT_MS = 5_000;
/** A commit index no member of a fresh cluster has reached. */
const HEARTBEAT_COMMIT_BEYOND_LOG = 1_000_000;

let proc: Proc | undefined;
let tmp: string | undefined;
afterAll(async () => {
  await killIfRunning(proc);
  if (tmp && process.env.CAIRN_TEST_KEEP_TMP !== '1') fs.rmSync(tmp, { recursive: true, force: true });
});

const identity = (b: Buffer): Buffer => b;

/** Writes one RaftBatch on a fresh Send stream and ends it; resolves once written. */
function sendBatch(peerAddress: string, frame: Uint8Array): Promise<void> {
  const client = new grpc.Client(peerAddress, grpc.credentials.createInsecure());
  return new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`could not send to ${peerAddress} within ${SEND_TIMEOUT_MS} ms`)), SEND_TIMEOUT_MS);
    // The callback fires when the server answers or the stream dies (the member exiting): either
    // way the frame was handed over or the exit check below decides.
    const stream = client.makeClientStreamRequest<Buffer, Buffer>('/cairnpb.Peer/Send', identity, identity, new grpc.Metadata(), {}, () => undefined);
    stream.on('error', () => undefined);
    stream.write(Buffer.from(frame), () => {
      clearTimeout(timer);
      resolve();
    });
  }).finally(() => setTimeout(() => client.close(), SEND_TIMEOUT_MS).unref());
}

/** An empty message from the fake member m2, claiming leadership in LEADER_TERM. */
function fromLeader(selfId: bigint, fakeId: bigint, type: MessageType): Message {
  return { type, to: selfId, from: fakeId, term: LEADER_TERM, logTerm: 0, index: 0, entries: [], commit: 0, reject: false, rejectHint: 0 };
}

/** Starts a member, sends it the message `build` makes as member m2, and expects a fail-stop whose line matches `expected`. */
async function provoke(build: (selfId: bigint, fakeId: bigint) => Message, expected: RegExp): Promise<void> {
    await killIfRunning(proc);
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-failstop-raft-'));
    const [clientPort, peerPort, fakePeerPort] = await freePorts(3);
    const selfUrl = `http://127.0.0.1:${peerPort}`;
    const fakeUrl = `http://127.0.0.1:${fakePeerPort}`;
    const clientUrl = `http://127.0.0.1:${clientPort}`;
    proc = spawnCairn(
      [
        '--name', 'm1',
        '--data-dir', path.join(tmp, 'data'),
        '--listen-client-urls', clientUrl,
        '--advertise-client-urls', clientUrl,
        '--listen-peer-urls', selfUrl,
        '--initial-advertise-peer-urls', selfUrl,
        '--initial-cluster', `m1=${selfUrl},m2=${fakeUrl}`,
        '--initial-cluster-token', TOKEN,
      ],
      path.join(tmp, 'member.log'),
      tmp,
    );
    const p = proc;
    await waitFor(() => !p.running || p.log().includes('ready to serve client requests'), READY_TIMEOUT_MS, () => `member not ready; log:\n${tail(p.log())}`);
    expect(p.running, `member exited during start:\n${tail(p.log())}`).toBe(true);

    // IDs exactly as the member computes them (etcd's membership.NewMember / cluster ID).
    const selfId = computeMemberId([selfUrl], TOKEN);
    const fakeId = computeMemberId([fakeUrl], TOKEN);
    const clusterId = computeClusterId([selfId, fakeId]);
    await sendBatch(`127.0.0.1:${peerPort}`, encodeBatch(clusterId, fakeId, [build(selfId, fakeId)]));

    const { code, signal } = await waitExit(p, EXIT_TIMEOUT_MS);
    const log = p.log();
    expect(signal, tail(log)).toBeNull();
    expect(code, tail(log)).toBe(1);
    const fatal = fatalLines(log);
    expect(fatal, `fatal lines:\n${tail(log)}`).toHaveLength(1);
    expect(fatal[0].cause).toBe('raft invariant violated');
    expect(fatal[0].msg).toMatch(expected);
}

describe('a Raft invariant broken by a peer message', () => {
  it('a MsgApp rewriting a committed entry stops the member with one fatal line "raft invariant violated"', async () => {
    await provoke(
      (selfId, fakeId) => ({
        ...fromLeader(selfId, fakeId, MessageType.MsgApp),
        logTerm: 1,
        index: 1,
        entries: [{ term: LEADER_TERM, index: 1, type: EntryType.Normal, data: new Uint8Array() }],
        commit: 1,
      }),
      /^raft invariant violated: .*conflict with a committed entry/,
    );
  });

  it('a heartbeat committing beyond the last index stops the member (etcd-io/raft panics in commitTo)', async () => {
    await provoke(
      (selfId, fakeId) => ({ ...fromLeader(selfId, fakeId, MessageType.MsgHeartbeat), commit: HEARTBEAT_COMMIT_BEYOND_LOG }),
      /^raft invariant violated: .*commitTo: beyond lastIndex/,
    );
  });
});
