import type { KvStore } from '../../mvcc/kv-store';
import type {
  CompactionRequest,
  DeleteRangeRequest,
  InternalRaftRequest,
  LeaseGrantRequest,
  PutRequest,
  RangeRequest,
  RangeResponse,
  ResponseHeader,
  TxnRequest,
} from '../../proto/etcd-types';
import type { Components } from './components';
import { ErrStopped } from './errors';
import type { AuthInfo } from './interfaces';
import { LEASE_COST_BYTES, txnCost } from './quota';
import { testingSwitches } from './testing-switches';
import { isTxnReadOnly, isTxnSerializable } from './txn-kind';

/** What the request paths work over (built by server.ts from its components). */
export interface V3ServerDeps {
  store: KvStore;
  parts: Pick<Components, 'auth' | 'applier' | 'quota' | 'readIndexer' | 'ids' | 'leases'>;
  header(revision: number): ResponseHeader;
  /** Set once the member stops: linearizable reads are refused from then on. */
  stopped(): boolean;
}

/**
 * The KV and lease requests of one member, etcd's v3_server.go (RaftKV and the Lessor half of
 * EtcdServer): writes are checked against the backend quota, proposed with the caller's auth info
 * and answered once applied; reads are served from local state after a ReadIndex round, or at once
 * when serializable, and their permissions are checked here since reads are never applied. A module
 * of its own so that server.ts keeps the member's lifecycle and this file the request paths.
 */
export class V3Server {
  constructor(private readonly d: V3ServerDeps) {}

  async range(r: RangeRequest, ai?: AuthInfo): Promise<RangeResponse> {
    const { auth, applier } = this.d.parts;
    if (!r.serializable) await this.linearizableReadNotify();
    // Reads are served here, not applied, so they are checked here (etcd's doSerialize).
    return auth.serialize(ai, (who) => auth.store.isRangePermitted(who, r.key, r.range_end), () => applier.range(r, this.d.header));
  }

  put(r: PutRequest, ai?: AuthInfo) {
    this.d.parts.quota.check(r.key.length + r.value.length);
    return this.proposeFor({ put: r }, ai);
  }

  deleteRange(r: DeleteRangeRequest, ai?: AuthInfo) {
    return this.proposeFor({ delete_range: r }, ai);
  }

  async txn(r: TxnRequest, ai?: AuthInfo) {
    const { auth, applier, quota } = this.d.parts;
    if (isTxnReadOnly(r)) {
      if (!isTxnSerializable(r)) await this.linearizableReadNotify();
      return auth.serialize(ai, (who) => auth.checkTxn(who, r), () => applier.readOnlyTxn(r, this.d.header));
    }
    quota.check(txnCost(r));
    return this.proposeFor({ txn: r }, ai);
  }

  async compact(r: CompactionRequest, ai?: AuthInfo) {
    const result = await this.d.parts.auth.raftRequest({ compaction: r }, ai);
    if (result.physicalDone) {
      // physical=true: reply only once superseded revisions are gone and that is on disk.
      await result.physicalDone;
      await this.d.store.backend.forceCommit({ sync: true });
    }
    return result.response;
  }

  async linearizableReadNotify(): Promise<void> {
    if (this.d.stopped()) throw new ErrStopped();
    // Test-only fault (cluster-tests proves it catches it): serve "linearizable" reads from local
    // state without ReadIndex, i.e. possibly stale. Never set outside the harness's own scenario.
    if (testingSwitches.unsafeLocalReads) return;
    await this.d.parts.readIndexer.linearizableRead();
  }

  leaseGrant(r: LeaseGrantRequest, ai?: AuthInfo) {
    let id = BigInt(r.ID);
    // etcd picks a positive ID from the member-scoped generator when the client leaves it 0.
    if (id === 0n) id = this.d.parts.ids.nextId() & ((1n << 63n) - 1n);
    this.d.parts.quota.check(LEASE_COST_BYTES);
    return this.proposeFor({ lease_grant: { ID: id.toString(), TTL: r.TTL } }, ai);
  }

  leaseRevoke(id: bigint, ai?: AuthInfo) {
    return this.proposeFor({ lease_revoke: { ID: id.toString() } }, ai);
  }

  leaseRenew(id: bigint): Promise<{ ttl: number; notFound: boolean }> {
    return this.d.parts.leases.renew(id);
  }

  leaseTimeToLive(id: bigint, keys: boolean): Promise<{ found: boolean; ttl: number; grantedTtl: number; keys: Buffer[] }> {
    return this.d.parts.leases.timeToLive(id, keys);
  }

  /** Into the log through auth-server.ts raftRequest (which stamps the caller), answered once applied. */
  private async proposeFor(req: InternalRaftRequest, ai?: AuthInfo) {
    return (await this.d.parts.auth.raftRequest(req, ai)).response;
  }
}
