import type { Logger } from 'pino';
import { RaftError, type Message } from '../../raft';
import type { PeerTransport } from '../rafthttp/transport';
import { ErrNoLeader } from './errors';
import { failStop } from './fatal';
import type { RaftNode } from './raft-node';
import type { Snapshotter } from './snapshot';

/** What the peer side works over; the Raft node and the transport exist only after the server's start(). */
export interface PeerTrafficDeps {
  raft(): RaftNode | undefined;
  transport(): PeerTransport | undefined;
  /** Set once the member stops: traffic from then on is dropped. */
  stopped(): boolean;
  snapshots: Pick<Snapshotter, 'keepReceived'>;
  log: Logger;
}

/**
 * The member as its peers reach it: etcd's EtcdServer implements rafthttp.Raft (server.go Process,
 * ReportUnreachable, ReportSnapshot) so the transport can hand it Raft messages and delivery
 * reports, and forwards requests only the leader can answer. A module of its own so that server.ts
 * keeps the member's lifecycle, and what may be dropped or must fail-stop while stepping a peer's
 * message is decided in one place.
 */
export class PeerTraffic {
  constructor(private readonly d: PeerTrafficDeps) {}

  reportUnreachable(id: bigint): void {
    this.d.raft()?.reportUnreachable(id);
  }

  reportSnapshot(id: bigint, ok: boolean): void {
    this.d.raft()?.reportSnapshot(id, ok);
  }

  /** Incoming traffic from the peer transport. */
  stepMessages(messages: Message[]): void {
    const raft = this.d.raft();
    // Peers may dial before start() has created the Raft node (or after stop): Raft retransmits.
    if (!raft || this.d.stopped()) return;
    for (const m of messages) {
      try {
        raft.step(m);
      } catch (e) {
        // etcd-io/raft's Step returns an error only for messages it may ignore (a local message
        // type, a response from a peer it no longer tracks); anything else thrown while stepping
        // is a broken invariant ("conflict with a committed entry", "commitTo beyond lastIndex"),
        // on which etcd-io/raft panics: this member's log can no longer be trusted.
        if (e instanceof RaftError) {
          this.d.log.debug({ err: e.message, type: m.type, from: m.from.toString(16) }, 'dropped raft message');
          continue;
        }
        failStop('raft invariant violated', e);
      }
    }
  }

  /**
   * A MsgSnap with the leader's backend: saved to a file and kept by index until Raft accepts that
   * snapshot. Raft sees the message only once the file is on disk, and not if the member began
   * stopping meanwhile.
   */
  async receiveSnapshot(m: Message, entries: AsyncIterable<[Buffer, Buffer][]>): Promise<void> {
    if (!m.snapshot || !this.d.raft() || this.d.stopped()) return;
    await this.d.snapshots.keepReceived(m.snapshot.metadata.index, entries);
    if (!this.d.stopped()) this.stepMessages([m]);
  }

  /** A request only the leader answers (LearnerReady), sent over the peer transport. */
  forwardToLeader(path: string, body: Uint8Array): Promise<Buffer> {
    const leader = this.d.raft()?.leader ?? 0n;
    const transport = this.d.transport();
    if (leader === 0n || !transport) throw new ErrNoLeader();
    return transport.forward(leader, path, body);
  }
}
