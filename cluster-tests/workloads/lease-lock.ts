/**
 * Leases and locks. Each client, in a loop: grant a short lease, take a lock with etcd's lock
 * recipe (v3lockpb.Lock: a key on the lease, held once it has the lowest create_revision under the
 * lock's prefix), keep the lease alive while holding it, write the protected resource *fenced* by
 * the lock key's create_revision (`If(create_revision(lockKey) == token) Then(put resource)`), read
 * it back, unlock, revoke.
 *
 * Leases expire during faults (a paused or partitioned holder cannot renew): etcd locks are not
 * mutual exclusion in an asynchronous network (Jepsen, etcd 3.4.3; etcd-io/etcd#11457). The lock
 * checker reports overlapping holders as a `warn` — the known unsafety, shown and never hidden —
 * while fenced writes to the resource must stay linearizable (fencing is what makes the lock safe).
 */
import { type Msg, headerRevision, outcomeOf } from '../client';
import { sleep } from '../cluster';
import { type ClientSlot, type Outcome, type Workload, type WorkloadContext, OP_TIMEOUT_MS, finalReadPrefix, runClientLoops } from './common';
import { UniqueValues } from './keys';

export const LOCK_NAMES = ['/jepsen/locks/a', '/jepsen/locks/b'];
export const RESOURCE_PREFIX = '/jepsen/lockres/';
/** Lease TTL: short, so pauses and partitions outlast it. */
export const LOCK_LEASE_TTL_S = 3;
/** How long a client waits for the lock. */
export const LOCK_ACQUIRE_TIMEOUT_MS = 5_000;
/** How long a holder keeps the lock, and how often it renews its lease meanwhile. */
export const HOLD_MS_RANGE: readonly [number, number] = [200, 1_500];
export const KEEPALIVE_EVERY_MS = 1_000;
/** Fenced writes per hold. */
export const WRITES_PER_HOLD = 2;

const EQUAL = 0;
const T_CREATE = 1;

export class LeaseLockWorkload implements Workload {
  readonly name = 'lease-lock';
  private readonly values = new UniqueValues();

  run(ctx: WorkloadContext): Promise<void> {
    return runClientLoops(ctx, 'lease-lock', (slot) => this.cycle(ctx, slot));
  }

  async finalRead(ctx: WorkloadContext): Promise<void> {
    await finalReadPrefix(ctx, RESOURCE_PREFIX, (kvs) => ({ kvs }));
  }

  /** One grant–lock–work–unlock cycle. Its outcome decides the client's process id going forward. */
  private async cycle(ctx: WorkloadContext, slot: ClientSlot): Promise<Outcome> {
    const grant = await slot.client.leaseGrant(LOCK_LEASE_TTL_S, OP_TIMEOUT_MS);
    if (grant.err) return 'ok'; // not recorded: a lease nobody uses changes nothing the checkers see
    const leaseId = String(grant.ok.ID);
    const lockName = slot.rand.pick(LOCK_NAMES);
    const resource = RESOURCE_PREFIX + lockName.slice(lockName.lastIndexOf('/') + 1);
    try {
      // Acquire.
      const process = slot.process;
      ctx.rec.op({ f: 'lock-acquire', process, type: 'invoke', lockName, leaseId });
      const lock = await slot.client.lock(lockName, leaseId, LOCK_ACQUIRE_TIMEOUT_MS);
      if (lock.err) {
        const type = outcomeOf(lock.err);
        ctx.rec.op({ f: 'lock-acquire', process, type, lockName, leaseId, error: lock.err.details });
        return type;
      }
      const lockKey: Buffer = lock.ok.key;
      // The fencing token is the lock key's create_revision (the Lock response's header is that of the
      // recipe's last read, not of the key's creation).
      const own = await slot.client.range({ key: lockKey }, OP_TIMEOUT_MS);
      const token = own.ok?.kvs?.[0] ? Number(own.ok.kvs[0].create_revision) : undefined;
      ctx.rec.op({ f: 'lock-acquire', process, type: 'ok', lockName, leaseId, ...(token !== undefined ? { revision: token } : {}) });
      // Hold: renew the lease and write the resource, fenced by the token.
      const holdUntil = Date.now() + slot.rand.int(HOLD_MS_RANGE[0], HOLD_MS_RANGE[1]);
      let lastRenew = Date.now();
      let outcome: Outcome = 'ok';
      for (let i = 0; i < WRITES_PER_HOLD && token !== undefined; i++) {
        const o = await this.fencedWrite(ctx, slot, resource, lockKey, token);
        if (o === 'info') {
          // The write may still take effect: continue (release) as a new process.
          slot.process = ctx.rec.newProcess();
          outcome = 'info';
          break;
        }
        if (Date.now() - lastRenew > KEEPALIVE_EVERY_MS) {
          await slot.client.keepAliveOnce(leaseId, OP_TIMEOUT_MS);
          lastRenew = Date.now();
        }
      }
      while (outcome === 'ok' && Date.now() < holdUntil && !ctx.stopped()) {
        await sleep(Math.min(KEEPALIVE_EVERY_MS, holdUntil - Date.now()));
        await slot.client.keepAliveOnce(leaseId, OP_TIMEOUT_MS);
      }
      // Release (the process id was renewed after any unknown outcome above).
      const rp = slot.process;
      ctx.rec.op({ f: 'lock-release', process: rp, type: 'invoke', lockName, leaseId });
      const un = await slot.client.unlock(lockKey, OP_TIMEOUT_MS);
      if (un.err) {
        const type = outcomeOf(un.err);
        ctx.rec.op({ f: 'lock-release', process: rp, type, lockName, leaseId, error: un.err.details });
        return type;
      }
      ctx.rec.op({ f: 'lock-release', process: rp, type: 'ok', lockName, leaseId, revision: headerRevision(un.ok) });
      return 'ok';
    } finally {
      await slot.client.leaseRevoke(leaseId, OP_TIMEOUT_MS);
    }
  }

  /** Put a unique value into the resource only while the lock key still has our create_revision. */
  private async fencedWrite(ctx: WorkloadContext, slot: ClientSlot, resource: string, lockKey: Buffer, token: number): Promise<Outcome> {
    const process = slot.process;
    const value = this.values.next();
    const key = Buffer.from(resource);
    ctx.rec.op({ f: 'write', process, type: 'invoke', key: resource, value });
    const r = await slot.client.txn(
      { compare: [{ result: EQUAL, target: T_CREATE, key: lockKey, create_revision: String(token) } as Msg], success: [{ request_put: { key, value: Buffer.from(value) } }], failure: [] },
      OP_TIMEOUT_MS,
    );
    if (r.err) {
      const type = outcomeOf(r.err);
      ctx.rec.op({ f: 'write', process, type, key: resource, value, error: r.err.details });
      return type;
    }
    if (!r.ok.succeeded) {
      ctx.rec.op({ f: 'write', process, type: 'fail', key: resource, value, error: 'fenced out: the lock key is gone or was re-created (lease expired)' });
      return 'fail';
    }
    ctx.rec.op({ f: 'write', process, type: 'ok', key: resource, value, revision: headerRevision(r.ok) });
    return 'ok';
  }
}
