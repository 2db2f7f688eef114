import * as grpc from '@grpc/grpc-js';
import type { Message } from '../../raft';
import { messageCodec } from '../../proto';
import { messageToWire, type WireMessage } from './raft-codec';

/**
 * The leader's side of a snapshot transfer (etcd's rafthttp/snapshot_sender.go): the MsgSnap, then
 * the backend's entries as the store iterates them, over one client stream of SnapshotChunk
 * messages (proto/cairn/raft.proto). Memory is bounded by one chunk: the store yields small
 * chunks (LevelDB's iterator stops at 16 KiB), a chunk is sent once it reaches SNAPSHOT_CHUNK_BYTES
 * or SNAPSHOT_CHUNK_ENTRIES, and the next one is read only when the stream has drained (HTTP/2
 * flow control paces the leader to the follower's disk).
 */

/** Backend entries per snapshot chunk, at most. */
export const SNAPSHOT_CHUNK_ENTRIES = 1024;
/**
 * Key and value bytes per snapshot chunk: a chunk is sent once it holds this many (a single larger
 * entry goes alone). etcd streams its db file through 32 KiB copies; a larger chunk costs fewer
 * protobuf messages; a follower buffers at most 16 of them (grpc-js reads ahead that many).
 */
export const SNAPSHOT_CHUNK_BYTES = 256 * 1024;

export interface SnapshotChunkMsg {
  cluster_id: string;
  from: string;
  /** The MsgSnap, in the first chunk only. */
  message: WireMessage | null;
  keys: Buffer[];
  values: Buffer[];
  last: boolean;
}
export const snapshotChunkCodec = messageCodec<SnapshotChunkMsg>('cairnpb.SnapshotChunk');

export type SnapshotEntries = AsyncIterable<[Buffer, Buffer][]>;

const identity = (b: Buffer): Buffer => b;

export const SEND_SNAPSHOT_PATH = '/cairnpb.Peer/SendSnapshot';

/** Sends `m` and `entries` to the peer behind `client`; resolves once the peer has it saved and stepped. */
export async function sendSnapshot(client: grpc.Client, self: { clusterId: bigint; memberId: bigint }, m: Message, entries: SnapshotEntries): Promise<void> {
  const call = client.makeClientStreamRequest<Buffer, Buffer>(SEND_SNAPSHOT_PATH, identity, identity, new grpc.Metadata(), {}, () => undefined);
  const done = new Promise<void>((resolve, reject) => {
    call.on('status', (s: grpc.StatusObject) => (s.code === grpc.status.OK ? resolve() : reject(new Error(s.details))));
    call.on('error', reject);
  });
  // The stream can fail while chunks are still being written, before `done` is awaited below;
  // the rejection is observed there, so do not let it count as unhandled meanwhile.
  done.catch(() => undefined);
  // A write waits for the stream to drain, or for the call to end (the peer answered early or the
  // stream failed): a stream that is gone never drains.
  const write = (buf: Buffer): Promise<void> =>
    call.write(buf)
      ? Promise.resolve()
      : Promise.race([
          new Promise<void>((resolve) => call.once('drain', () => resolve())),
          done.then(() => {
            throw new Error('snapshot stream ended before the snapshot was sent');
          }),
        ]);
  const base = { cluster_id: self.clusterId.toString(), from: self.memberId.toString() };
  const send = (keys: Buffer[], values: Buffer[], last: boolean): Promise<void> => write(Buffer.from(snapshotChunkCodec.encode({ ...base, message: null, keys, values, last })));
  try {
    await write(Buffer.from(snapshotChunkCodec.encode({ ...base, message: messageToWire(m), keys: [], values: [], last: false })));
    let keys: Buffer[] = [];
    let values: Buffer[] = [];
    let bytes = 0;
    for await (const chunk of entries) {
      for (const [k, v] of chunk) {
        keys.push(k);
        values.push(v);
        bytes += k.length + v.length;
        if (keys.length >= SNAPSHOT_CHUNK_ENTRIES || bytes >= SNAPSHOT_CHUNK_BYTES) {
          await send(keys, values, false);
          keys = [];
          values = [];
          bytes = 0;
        }
      }
    }
    await send(keys, values, true);
    call.end();
  } catch (e) {
    call.cancel();
    throw e;
  }
  await done;
}
