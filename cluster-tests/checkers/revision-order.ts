/**
 * Revision order: etcd's revision is a global logical clock, and strict serializability means it
 * follows real time. This checker needs only the response header revisions the KV history already
 * has, so it covers the Kubernetes-style workload (creates, guarded updates and deletes, pinned
 * lists) where values carry revisions, and every other workload that records them.
 *
 * - revision-went-back: an operation that began after another completed saw an older revision;
 * - write-revision-not-increasing: a write committed at a revision not above every revision
 *   observed before it began;
 * - duplicate-write-revision: two distinct single-key writes committed at the same revision;
 * - value-mismatch-at-revision: a read or list showed a key at mod_revision m with a value other
 *   than the one the acknowledged write at m put;
 * - future-mod-revision: a read showed a mod_revision above its own header (or pinned) revision;
 * - stale-list: a list pinned at R showed a key at m although an acknowledged put of that key
 *   committed in (m, R].
 */
import { type History, type KvSnapshot, type PairedOp, pairOperations } from '../history';
import { AnomalySink, type Verdict, nowMs } from './verdict';

interface Revisioned {
  readonly op: PairedOp;
  readonly revision: number;
  readonly isWrite: boolean;
}

export function checkRevisionOrder(history: History): Verdict {
  const t0 = nowMs();
  const sink = new AnomalySink();
  const ops = pairOperations(history);
  const rev: Revisioned[] = [];
  for (const op of ops) {
    const c = op.complete;
    if (c === undefined || c.revision === undefined || op.outcome === 'info') continue;
    if (op.outcome === 'fail' && !(c.f === 'cas' && c.observed !== undefined)) continue;
    const isWrite = op.outcome === 'ok' && (c.f === 'write' || c.f === 'cas');
    // An ok delete of an absent key does not create a revision; only puts and guarded writes surely do.
    const surelyNew = isWrite && (c.f === 'cas' || (c.f === 'write' && c.value !== null));
    rev.push({ op, revision: c.revision, isWrite: surelyNew });
  }
  checkRealTime(rev, sink);
  const writes = checkUniqueWriteRevisions(rev, sink);
  checkReadsAgainstWrites(ops, writes, sink);
  const status = sink.count > 0 ? 'fail' : 'pass';
  return {
    checker: 'revision-order',
    status,
    summary: status === 'pass' ? `${rev.length} ops with revisions follow real time` : `${sink.count} violations: ${sink.typesSummary()}`,
    stats: { ops: rev.length, writes: writes.size, anomalies: sink.count },
    anomalies: sink.list,
    durationMs: nowMs() - t0,
  };
}

/** Sweep in time: at each invoke, the highest revision of every op completed before it. */
function checkRealTime(rev: readonly Revisioned[], sink: AnomalySink): void {
  const byInvoke = rev.slice().sort((a, b) => a.op.invokeNs - b.op.invokeNs);
  const byComplete = rev.slice().sort((a, b) => a.op.completeNs - b.op.completeNs);
  let j = 0;
  let max: Revisioned | undefined;
  for (const b of byInvoke) {
    while (j < byComplete.length && byComplete[j].op.completeNs < b.op.invokeNs) {
      if (max === undefined || byComplete[j].revision > max.revision) max = byComplete[j];
      j++;
    }
    if (max === undefined) continue;
    if (b.revision < max.revision) {
      sink.add({
        type: 'revision-went-back',
        message: `op #${b.op.id} (${b.op.f}) saw revision ${b.revision}, but #${max.op.id} had already completed at revision ${max.revision} before it began`,
        ops: [b.op.id, max.op.id],
        evidence: { revision: b.revision, before: max.revision },
      });
    } else if (b.isWrite && b.revision === max.revision && max.op.id !== b.op.id) {
      sink.add({
        type: 'write-revision-not-increasing',
        message: `write #${b.op.id} committed at revision ${b.revision}, which #${max.op.id} had already observed before the write began`,
        ops: [b.op.id, max.op.id],
      });
    }
  }
}

/** revision → the ok put committed there (key, value). */
function checkUniqueWriteRevisions(rev: readonly Revisioned[], sink: AnomalySink): Map<number, { op: PairedOp; key: string; value: string | null }> {
  const out = new Map<number, { op: PairedOp; key: string; value: string | null }>();
  for (const r of rev) {
    if (!r.isWrite) continue;
    const inv = r.op.invoke;
    if (inv.f !== 'write' && inv.f !== 'cas') continue;
    const prev = out.get(r.revision);
    if (prev !== undefined) {
      sink.add({ type: 'duplicate-write-revision', message: `writes #${prev.op.id} and #${r.op.id} both committed at revision ${r.revision}`, ops: [r.op.id, prev.op.id] });
      continue;
    }
    out.set(r.revision, { op: r.op, key: inv.key, value: inv.value });
  }
  return out;
}

function checkReadsAgainstWrites(ops: readonly PairedOp[], writes: Map<number, { op: PairedOp; key: string; value: string | null }>, sink: AnomalySink): void {
  // Per key, the revisions of acknowledged puts, sorted.
  const putRevs = new Map<string, number[]>();
  for (const [r, w] of writes) if (w.value !== null) (putRevs.get(w.key) ?? putRevs.set(w.key, []).get(w.key)!).push(r);
  for (const l of putRevs.values()) l.sort((a, b) => a - b);
  const checkKv = (op: PairedOp, kv: KvSnapshot, ceiling: number | undefined, pinned: number | undefined): void => {
    const w = writes.get(kv.modRevision);
    if (w !== undefined && (w.key !== kv.key || w.value !== kv.value)) {
      sink.add({
        type: 'value-mismatch-at-revision',
        message: `op #${op.id} saw ${kv.key}=${JSON.stringify(kv.value)} at mod_revision ${kv.modRevision}, but #${w.op.id} wrote ${w.key}=${JSON.stringify(w.value)} there`,
        ops: [op.id, w.op.id],
        keys: [kv.key],
      });
    }
    if (ceiling !== undefined && kv.modRevision > ceiling) {
      sink.add({ type: 'future-mod-revision', message: `op #${op.id} saw ${kv.key} at mod_revision ${kv.modRevision}, above its revision ${ceiling}`, ops: [op.id], keys: [kv.key] });
    }
    if (pinned !== undefined) {
      const later = (putRevs.get(kv.key) ?? []).find((r) => r > kv.modRevision && r <= pinned);
      if (later !== undefined) {
        sink.add({
          type: 'stale-list',
          message: `list #${op.id} at revision ${pinned} showed ${kv.key}@${kv.modRevision}, but #${writes.get(later)!.op.id} put it at ${later}`,
          ops: [op.id, writes.get(later)!.op.id],
          keys: [kv.key],
        });
      }
    }
  };
  for (const op of ops) {
    const c = op.complete;
    if (c === undefined) continue;
    if (op.outcome === 'ok' && c.f === 'read' && c.value !== undefined && c.value !== null && c.modRevision !== undefined) {
      checkKv(op, { key: c.key, value: c.value, modRevision: c.modRevision }, c.revision, undefined);
    } else if (op.outcome === 'fail' && c.f === 'cas' && c.observed !== undefined && c.observed.value !== null) {
      checkKv(op, { key: c.key, value: c.observed.value, modRevision: c.observed.modRevision }, c.revision, undefined);
    } else if (op.outcome === 'ok' && c.f === 'list' && c.value !== undefined) {
      const pinned = c.atRevision !== undefined && c.atRevision > 0 ? c.atRevision : c.revision;
      for (const kv of c.value) checkKv(op, kv, pinned, pinned);
    }
  }
}
