import type { Message, NodeId } from './types';
import { assert } from './errors';

export type ReadOnlyOption = 'safe' | 'lease-based';

/** Bound on ReadIndex requests waiting for their heartbeat round; beyond it requests are refused. */
export const MAX_PENDING_READ_INDEX = 4096;

export interface ReadIndexStatus {
  req: Message;
  index: number;
  acks: Set<NodeId>;
}

/** Request contexts are bytes; Map keys must be strings. */
export function ctxKey(ctx: Uint8Array): string {
  return Buffer.from(ctx.buffer, ctx.byteOffset, ctx.byteLength).toString('latin1');
}

/**
 * ReadIndex (thesis §6.4, etcd-io/raft read_only.go): the leader records its commit index when a
 * read arrives, then confirms it is still leader with a heartbeat round carrying the request's
 * context; once a quorum acknowledges, every request queued up to that one is answered.
 */
export class ReadOnly {
  private readonly pending = new Map<string, ReadIndexStatus>();
  private queue: string[] = [];

  constructor(readonly option: ReadOnlyOption) {}

  get size(): number {
    return this.queue.length;
  }

  addRequest(index: number, m: Message): void {
    const key = ctxKey(m.entries[0].data);
    if (this.pending.has(key)) return; // a duplicate context rides on the earlier round
    this.pending.set(key, { req: m, index, acks: new Set() });
    this.queue.push(key);
  }

  /** Records a heartbeat acknowledgement for ctx; returns who has acknowledged it so far. */
  recvAck(id: NodeId, ctx: Uint8Array): ReadonlySet<NodeId> | undefined {
    const rs = this.pending.get(ctxKey(ctx));
    if (!rs) return undefined;
    rs.acks.add(id);
    return rs.acks;
  }

  /**
   * The round for ctx reached a quorum: dequeue and return it and every request queued before it
   * (an acknowledgement of a later heartbeat also confirms leadership for the earlier reads).
   */
  advance(ctx: Uint8Array): ReadIndexStatus[] {
    const key = ctxKey(ctx);
    const at = this.queue.indexOf(key);
    if (at < 0) return [];
    const done = this.queue.slice(0, at + 1);
    this.queue = this.queue.slice(at + 1);
    const out: ReadIndexStatus[] = [];
    for (const k of done) {
      const rs = this.pending.get(k);
      assert(rs, 'readOnly.advance: queued request without status');
      this.pending.delete(k);
      out.push(rs);
    }
    return out;
  }

  lastPendingRequestCtx(): Uint8Array | undefined {
    if (this.queue.length === 0) return undefined;
    const rs = this.pending.get(this.queue[this.queue.length - 1]);
    return rs?.req.entries[0].data;
  }
}
