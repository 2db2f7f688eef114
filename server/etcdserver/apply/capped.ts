import type { InternalRaftRequest, ResponseHeader } from '../../../proto/etcd-types';
import { AlarmType } from '../../../proto/etcd-types';
import type { AlarmStore } from '../alarms';
import { ErrNoSpace } from '../errors';
import { txnHasPut, type Applier, type ApplierV3, type ApplyOutcome } from './applier';

/**
 * etcd's applierV3Capped: while the NOSPACE alarm is raised (on any member, through the log), a
 * request that would grow the backend — a Put, a Txn with a Put, a LeaseGrant — is refused with
 * "etcdserver: mvcc: database space exceeded" on every member alike; reads, deletes, lease
 * revokes and compaction still apply, so an operator can free space and disarm the alarm.
 */
export class CappedApplier implements ApplierV3 {
  constructor(
    private readonly inner: Applier,
    private readonly alarms: AlarmStore,
  ) {}

  apply(index: number, req: InternalRaftRequest, header: (rev: number) => ResponseHeader): ApplyOutcome | Promise<ApplyOutcome> {
    if (this.alarms.has(AlarmType.NOSPACE) && (req.put || req.lease_grant || (req.txn && txnHasPut(req.txn)))) {
      // The entry still consumes its index, so the consistent index stays in step with the log.
      this.inner.applyNoop(index, undefined);
      return { err: new ErrNoSpace() };
    }
    return this.inner.apply(index, req, header);
  }
}
