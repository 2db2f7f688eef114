/**
 * Leases used as locks (the etcd lock recipe: a key on a lease, acquired when it has the lowest
 * create_revision under the lock prefix). Jepsen showed such locks cannot guarantee mutual exclusion
 * in an asynchronous network: a holder paused past its lease TTL still believes it holds the lock
 * (https://github.com/etcd-io/etcd/issues/11457). etcd's answer is fencing: guard every write made
 * under the lock with the lock key's revision.
 *
 * - overlapping-holders (status `warn`, the known unsafety, reported and never hidden): two
 *   processes held the same lock at overlapping times, as far as the clients could tell;
 * - fencing-token-not-increasing (status `fail`): a holder that acquired after another released got
 *   a revision (fencing token) not above the earlier holder's. That would break fencing itself.
 *
 * A hold runs from the acquire's completion to the release's invoke (or the end of the history if
 * never released, or released with an unknown outcome).
 */
import { type History, type PairedOp, pairOperations } from '../history';
import { AnomalySink, type Verdict, nowMs } from './verdict';

interface Hold {
  readonly acquire: PairedOp;
  readonly lockName: string;
  readonly token: number | undefined;
  readonly fromNs: number;
  toNs: number;
  release?: PairedOp;
}

export function checkLocks(history: History): Verdict {
  const t0 = nowMs();
  const unsafe = new AnomalySink();
  const broken = new AnomalySink();
  const ops = pairOperations(history);
  const endNs = history.reduce((m, e) => Math.max(m, e.timeNs), 0);
  const holds: Hold[] = [];
  const open = new Map<string, Hold>();
  for (const op of ops) {
    const inv = op.invoke;
    if (inv.f !== 'lock-acquire' && inv.f !== 'lock-release') continue;
    const slot = `${op.process}\u0000${inv.lockName}`;
    if (inv.f === 'lock-acquire') {
      if (op.outcome !== 'ok') continue;
      const h: Hold = { acquire: op, lockName: inv.lockName, token: op.complete?.revision, fromNs: op.completeNs, toNs: endNs };
      holds.push(h);
      open.set(slot, h);
    } else {
      const h = open.get(slot);
      if (h === undefined) continue;
      h.toNs = op.invokeNs;
      h.release = op;
      open.delete(slot);
    }
  }
  const byLock = new Map<string, Hold[]>();
  for (const h of holds) (byLock.get(h.lockName) ?? byLock.set(h.lockName, []).get(h.lockName)!).push(h);
  for (const [name, hs] of byLock) {
    hs.sort((a, b) => a.fromNs - b.fromNs);
    for (let i = 0; i < hs.length; i++) {
      for (let j = i + 1; j < hs.length && hs[j].fromNs < hs[i].toNs; j++) {
        unsafe.add({
          type: 'overlapping-holders',
          message: `lock ${name}: #${hs[i].acquire.id} (process ${hs[i].acquire.process}) and #${hs[j].acquire.id} (process ${hs[j].acquire.process}) held it at the same time — leases are not locks; writes must be fenced by revision`,
          ops: [hs[i].acquire.id, hs[j].acquire.id],
        });
      }
      for (let j = i + 1; j < hs.length; j++) {
        const a = hs[i];
        const b = hs[j];
        if (a.release !== undefined && a.release.outcome === 'ok' && a.release.completeNs < b.acquire.invokeNs && a.token !== undefined && b.token !== undefined && b.token <= a.token) {
          broken.add({
            type: 'fencing-token-not-increasing',
            message: `lock ${name}: #${b.acquire.id} acquired after #${a.acquire.id} released, with fencing revision ${b.token} <= ${a.token}`,
            ops: [b.acquire.id, a.acquire.id],
          });
        }
      }
    }
  }
  const status = broken.count > 0 ? 'fail' : unsafe.count > 0 ? 'warn' : 'pass';
  return {
    checker: 'lock',
    status,
    summary:
      status === 'pass'
        ? `${holds.length} lock holds: no overlap, fencing revisions increase`
        : `${broken.count} fencing violations; ${unsafe.count} overlapping holds (known unsafety of leases as locks)`,
    stats: { holds: holds.length, overlapping: unsafe.count, fencingViolations: broken.count, anomalies: broken.count + unsafe.count },
    anomalies: [...broken.list, ...unsafe.list],
    durationMs: nowMs() - t0,
  };
}
