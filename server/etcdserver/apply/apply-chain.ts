import type { Logger } from 'pino';
import { ConfChangeType, EntryType, decodeConfChange, type ConfChange, type ConfChangeV2, type ConfState, type Entry } from '../../../raft';
import type { KvStore } from '../../../mvcc/kv-store';
import type { Lessor } from '../../../mvcc/lessor';
import type { InternalRaftRequest, ResponseHeader } from '../../../proto/etcd-types';
import { AlarmStore } from '../alarms';
import { decodeConfChangeContext, memberFromContext } from '../membership/conf-change-context';
import type { Membership } from '../membership/membership';
import type { ServerMetrics } from '../metrics';
import type { Proposer } from '../proposals';
import type { AppliedIndexWait } from '../wait';
import { applyAlarm } from './alarm';
import type { ApplierV3, ApplyOutcome, ApplyResult } from './applier';

/** etcd's warnApplyDuration: an apply taking longer counts in etcd_server_slow_apply_total. */
export const WARN_APPLY_DURATION_MS = 100;

/** The peers the transport dials, kept in step with the member list. */
export interface PeerSet {
  addPeer(id: bigint, peerUrls: string[]): void;
  removePeer(id: bigint): void;
}

export interface ApplyChainDeps {
  memberId: bigint;
  electionTimeoutMs: number;
  store: KvStore;
  lessor: Lessor;
  membership: Membership;
  alarms: AlarmStore;
  /** The request applier with its decorators (capped now; auth later). */
  applier: ApplierV3;
  proposals: Proposer;
  appliedWait: AppliedIndexWait;
  metrics: ServerMetrics;
  log: Logger;
  header(revision: number): ResponseHeader;
  raft(): { applyConfChange(cc: ConfChange | ConfChangeV2): ConfState; readonly isLeader: boolean };
  peers(): PeerSet | undefined;
  /** Raft's configuration after a conf change (recorded in the next log snapshot). */
  onConfState(cs: ConfState): void;
  /** This member's own removal was applied. */
  onSelfRemoved(): void;
}

/**
 * The one apply chain (etcd's applyAll / applyEntries / applyEntryNormal / applyConfChange): every
 * committed entry, of every kind, goes through `applyEntries` in log order. Entries the backend
 * already holds (a replay after restart, or a snapshot newer than its index) are skipped, except
 * that Raft's configuration, which lives outside the backend, follows every conf change.
 */
export class ApplyChain {
  private readonly histograms = new Map<string, ReturnType<ServerMetrics['applySeconds']['labels']>>();

  constructor(private readonly d: ApplyChainDeps) {}

  /** Applies committed entries in order; resolves once all are applied (a txn reading past revisions yields once). */
  applyEntries(entries: Entry[]): void | Promise<void> {
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i];
      if (e.index <= this.d.store.consistentIndex) {
        if (e.type !== EntryType.Normal) this.applyConfChange(e);
        this.d.appliedWait.advance(e.index);
        continue;
      }
      const pending = this.applyEntry(e);
      if (pending) return pending.then(() => this.applyEntries(entries.slice(i + 1)));
    }
  }

  private applyEntry(e: Entry): Promise<void> | undefined {
    if (e.type !== EntryType.Normal) {
      this.applyConfChange(e);
      this.finish(e.index);
      return undefined;
    }
    if (e.data.length === 0) {
      // The empty entry a new leader commits in its term: from now on it owns lease expiry.
      this.d.store.write().end({ consistentIndex: e.index });
      if (this.d.raft().isLeader) this.d.lessor.promote(this.d.electionTimeoutMs);
      this.finish(e.index);
      return undefined;
    }
    const req = this.d.proposals.request(e);
    if (req.alarm) {
      const alarms = applyAlarm(this.d.alarms, req.alarm, this.d.log);
      this.d.store.write().end({ consistentIndex: e.index });
      this.d.proposals.trigger(req.header?.ID, { ok: { response: { header: this.d.header(this.d.store.rev), alarms: alarms.map(AlarmStore.toMsg) } } });
      this.finish(e.index);
      return undefined;
    }
    if (req.member_attributes) {
      this.applyMemberAttributes(req);
      this.d.store.write().end({ consistentIndex: e.index });
      this.d.proposals.trigger(req.header?.ID, { ok: { response: undefined } });
      this.finish(e.index);
      return undefined;
    }
    const started = performance.now();
    const outcome = this.d.applier.apply(e.index, req, this.d.header);
    const complete = (o: ApplyOutcome): void => {
      const seconds = (performance.now() - started) / 1000;
      this.histogram(opName(req), 'ok' in o).observe(seconds);
      // etcd's warnOfExpensiveRequest: an apply over warnApplyDuration (100 ms) is a slow apply.
      if (seconds * 1000 > WARN_APPLY_DURATION_MS) this.d.metrics.slowApplies.inc();
      if ('ok' in o) this.countLease(req, o.ok);
      this.d.proposals.trigger(req.header?.ID, o);
      this.finish(e.index);
    };
    if (outcome instanceof Promise) return outcome.then(complete);
    complete(outcome);
    return undefined;
  }

  /** etcd's publish: a member's name and client URLs, announced through the log. */
  private applyMemberAttributes(req: InternalRaftRequest): void {
    const a = req.member_attributes;
    if (!a) return;
    const m = this.d.membership.get(BigInt(a.ID));
    if (!m) return;
    this.d.membership.add({ ...m, name: a.name, clientUrls: a.clientURLs });
    // A dial override keyed by name resolves only now, for a member added after this one started.
    if (m.id !== this.d.memberId) this.d.peers()?.addPeer(m.id, m.peerUrls);
  }

  private finish(index: number): void {
    this.d.appliedWait.advance(index);
    this.d.metrics.proposalsApplied.set(index);
  }

  /**
   * A committed membership change: Raft's configuration always follows the log (even for entries
   * the backend already holds after a snapshot), the member list only for entries not yet applied.
   */
  private applyConfChange(e: Entry): void {
    const cc = decodeConfChange(e.type, e.data);
    this.d.onConfState(this.d.raft().applyConfChange(cc));
    const ctx = decodeConfChangeContext(cc.context);
    const answer = (): void => this.d.proposals.trigger(ctx?.requestId, { ok: { response: this.d.membership.list() } });
    if (e.index <= this.d.store.consistentIndex) {
      // Already in the backend (a snapshot covered it): the member list is current; answer the proposer.
      answer();
      return;
    }
    const single = 'nodeId' in cc ? (cc as ConfChange) : undefined;
    if (single) this.applyMemberChange(single, ctx ? memberFromContext(ctx) : undefined);
    this.d.store.write().end({ consistentIndex: e.index });
    answer();
  }

  private applyMemberChange(cc: ConfChange, member: ReturnType<typeof memberFromContext>): void {
    const { membership } = this.d;
    const peers = this.d.peers();
    const id = cc.nodeId;
    switch (cc.type) {
      case ConfChangeType.AddNode:
      case ConfChangeType.AddLearnerNode: {
        const existing = membership.get(id);
        const isLearner = cc.type === ConfChangeType.AddLearnerNode;
        if (existing) membership.add({ ...existing, isLearner });
        else if (member) membership.add(member);
        const m = membership.get(id);
        if (m && id !== this.d.memberId) peers?.addPeer(id, m.peerUrls);
        break;
      }
      case ConfChangeType.RemoveNode:
        membership.remove(id);
        peers?.removePeer(id);
        if (id === this.d.memberId) this.d.onSelfRemoved();
        break;
      case ConfChangeType.UpdateNode: {
        const existing = membership.get(id);
        if (existing && member) {
          membership.add({ ...existing, peerUrls: member.peerUrls });
          peers?.removePeer(id);
          if (id !== this.d.memberId) peers?.addPeer(id, member.peerUrls);
        }
        break;
      }
    }
  }

  /** etcd's lessor counts every lease granted (with its TTL) and revoked, on every member. */
  private countLease(req: InternalRaftRequest, r: ApplyResult): void {
    if (req.lease_grant) {
      this.d.metrics.leaseGranted.inc();
      this.d.metrics.leaseTtl.observe(Number((r.response as { TTL?: number | string }).TTL ?? 0));
    } else if (req.lease_revoke) {
      this.d.metrics.leaseRevoked.inc();
    }
  }

  private histogram(op: string, success: boolean): ReturnType<ServerMetrics['applySeconds']['labels']> {
    const key = `${op}:${success}`;
    let h = this.histograms.get(key);
    if (!h) {
      h = this.d.metrics.applySeconds.labels({ version: 'v3', op, success: String(success) });
      this.histograms.set(key, h);
    }
    return h;
  }
}

function opName(req: InternalRaftRequest): string {
  if (req.put) return 'Put';
  if (req.delete_range) return 'DeleteRange';
  if (req.txn) return 'Txn';
  if (req.compaction) return 'Compaction';
  if (req.lease_grant) return 'LeaseGrant';
  if (req.lease_revoke) return 'LeaseRevoke';
  return 'Other';
}
