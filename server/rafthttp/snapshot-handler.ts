import * as grpc from '@grpc/grpc-js';
import type { Message } from '../../raft';
import { messageFromWire } from './raft-codec';
import { hexId, snapshotTransfer, type PeerMetrics } from './peer-metrics';
import { snapshotChunkCodec, type SnapshotChunkMsg, type SnapshotEntries } from './snapshot-sender';

/**
 * The follower's side of a snapshot transfer (etcd's rafthttp/http.go snapshotHandler): the first
 * chunk carries the MsgSnap; the handler gets it with the backend entries as an async iterable that
 * reads the stream as it is consumed. The handler saves them to disk (etcd's SaveDBFrom) and steps
 * the message; the sender is answered only then. Backpressure: a chunk is read from the gRPC stream
 * only when the handler asks for the next entries (grpc-js pauses the HTTP/2 stream meanwhile), so
 * the leader is paced by this member's disk and memory holds a few chunks, whatever the snapshot's
 * size.
 */

export interface SnapshotReceiver {
  /** The cluster ID now (a joining member learns it after the transport starts). */
  clusterId(): bigint;
  metrics: PeerMetrics | undefined;
  /** Saves the entries (consuming them) and steps the message; resolves when both are done. */
  onSnapshot(message: Message, entries: SnapshotEntries): Promise<void>;
}

class ChunkError extends Error {
  constructor(
    readonly code: grpc.status,
    message: string,
  ) {
    super(message);
  }
}

export function handleSnapshot(call: grpc.ServerReadableStream<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>, r: SnapshotReceiver): void {
  // A cancelled call neither ends nor fails the readable side: fail it, so the reader stops.
  call.on('cancelled', () => call.destroy(new Error('snapshot stream cancelled by the sender')));
  let received: ((ok: boolean) => void) | undefined;
  receive(call, r, (from) => {
    if (r.metrics) received = snapshotTransfer(r.metrics, 'receive', from);
  }).then(
    () => {
      received?.(true);
      callback(null, Buffer.alloc(0));
    },
    (e: unknown) => {
      received?.(false);
      const code = e instanceof ChunkError ? e.code : grpc.status.UNAVAILABLE;
      callback({ code, details: e instanceof Error ? e.message : String(e) });
    },
  );
}

async function receive(call: grpc.ServerReadableStream<Buffer, Buffer>, r: SnapshotReceiver, started: (from: bigint) => void): Promise<void> {
  // The iterator is never returned early: that would destroy the call before it is answered.
  const stream = (call as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
  const nextChunk = async (): Promise<SnapshotChunkMsg> => {
    const next = await stream.next();
    if (next.done === true) throw new ChunkError(grpc.status.INVALID_ARGUMENT, 'snapshot stream ended before its last chunk');
    const buf = next.value;
    const c = snapshotChunkCodec.decode(buf);
    r.metrics?.peerReceivedBytes.inc({ From: hexId(BigInt(c.from)) }, buf.length);
    if (BigInt(c.cluster_id) !== r.clusterId()) throw new ChunkError(grpc.status.FAILED_PRECONDITION, 'cluster ID mismatch');
    return c;
  };
  const first = await nextChunk();
  started(BigInt(first.from));
  if (!first.message) throw new ChunkError(grpc.status.INVALID_ARGUMENT, 'snapshot without its message');
  const message = messageFromWire(first.message);
  async function* entries(): AsyncGenerator<[Buffer, Buffer][]> {
    for (let c = first; ; c = await nextChunk()) {
      if (c.keys.length !== c.values.length) throw new ChunkError(grpc.status.INVALID_ARGUMENT, 'snapshot chunk with unpaired keys and values');
      if (c.keys.length > 0) yield c.keys.map((k, i): [Buffer, Buffer] => [k, c.values[i]]);
      if (c.last) return;
    }
  }
  // A handler that does not want the data (a stopping member) may leave it unread: the sender is
  // answered all the same, as etcd's handler answers once Process returns.
  await r.onSnapshot(message, entries());
}
