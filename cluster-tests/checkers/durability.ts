/**
 * Durability: every acknowledged write is present at the end, and nothing is present that was
 * never written. Checked against the `final-read` operation the harness runs after healing every
 * fault (the last one, if several).
 *
 * Registers (final `kvs`): for each key, the final value must come from a put that was ok or info
 * (never from a failed one, never from nowhere). An ok write W is lost if the final state cannot be
 * explained by a later write: the final mod_revision is below W's revision, or the final value's
 * writer completed before W began, or the key is absent and no delete could have followed W.
 * List-append (final `lists`): every ok append is in its key's final list; every element there was
 * appended by an ok or info transaction.
 */
import { type FinalReadOp, type History, type KeyValueString, type PairedOp, pairOperations } from '../history';
import { AnomalySink, type Verdict, nowMs } from './verdict';

interface KeyWrite {
  readonly op: PairedOp;
  readonly value: KeyValueString;
  readonly revision?: number;
}

export function checkDurability(history: History): Verdict {
  const t0 = nowMs();
  const sink = new AnomalySink();
  const ops = pairOperations(history);
  const finals = ops.filter((o) => o.f === 'final-read' && o.outcome === 'ok' && o.complete !== undefined);
  const final = finals[finals.length - 1];
  if (final === undefined) {
    return { checker: 'durability', status: 'unknown', summary: 'no successful final-read in the history', stats: {}, anomalies: [], durationMs: nowMs() - t0 };
  }
  const read = final.complete as FinalReadOp;
  let checked = 0;
  if (read.kvs !== undefined) checked += checkRegisters(ops, final, read, sink);
  if (read.lists !== undefined) checked += checkLists(ops, final, read, sink);
  const status = sink.count > 0 ? 'fail' : 'pass';
  return {
    checker: 'durability',
    status,
    summary: status === 'pass' ? `${checked} acknowledged writes present at the end` : `${sink.count} violations: ${sink.typesSummary()}`,
    stats: { acknowledgedWrites: checked, anomalies: sink.count },
    anomalies: sink.list,
    durationMs: nowMs() - t0,
  };
}

function checkRegisters(ops: readonly PairedOp[], final: PairedOp, read: FinalReadOp, sink: AnomalySink): number {
  const writes = new Map<string, KeyWrite[]>();
  for (const op of ops) {
    const inv = op.invoke;
    if (inv.f !== 'write' && inv.f !== 'cas') continue;
    const revision = op.outcome === 'ok' ? op.complete?.revision : undefined;
    (writes.get(inv.key) ?? writes.set(inv.key, []).get(inv.key)!).push({ op, value: inv.value, revision });
  }
  const finalByKey = new Map<string, { value: string; modRevision: number }>();
  for (const kv of read.kvs ?? []) finalByKey.set(kv.key, kv);
  let checked = 0;
  for (const [key, f] of finalByKey) {
    const ws = (writes.get(key) ?? []).filter((w) => w.value === f.value);
    if (ws.length === 0) {
      sink.add({ type: 'phantom-value', message: `final read has ${key}=${JSON.stringify(f.value)}, which no operation wrote`, ops: [final.id], keys: [key] });
    } else if (ws.every((w) => w.op.outcome === 'fail')) {
      sink.add({ type: 'failed-write-visible', message: `final read has ${key}=${JSON.stringify(f.value)}, written only by #${ws[0].op.id}, which failed`, ops: [final.id, ws[0].op.id], keys: [key] });
    }
  }
  for (const [key, ws] of writes) {
    const f = finalByKey.get(key);
    const finalWriter = f === undefined ? undefined : ws.find((w) => w.value === f.value && w.op.outcome !== 'fail');
    for (const w of ws) {
      if (w.op.outcome !== 'ok') continue;
      // A cas completes ok only when its compare held, so it did write.
      checked++;
      // An acknowledged delete (value null) is present when the key is absent at the end.
      if (f === undefined ? w.value === null : w.value === f.value) continue;
      const others = ws.filter((x) => x !== w && x.op.outcome !== 'fail');
      let reason: string | undefined;
      if (f !== undefined && w.revision !== undefined && w.value !== null && f.modRevision < w.revision) {
        reason = `the final ${key} is at mod_revision ${f.modRevision}, below the write's revision ${w.revision}`;
      } else if (finalWriter !== undefined && finalWriter.op.completeNs < w.op.invokeNs) {
        reason = `the final value was written by #${finalWriter.op.id}, which completed before this write began`;
      } else if (f === undefined && w.value !== null && !others.some((x) => x.value === null && x.op.completeNs > w.op.invokeNs)) {
        reason = `${key} is absent at the end and no delete could have followed the write`;
      } else if (!others.some((x) => x.op.completeNs > w.op.invokeNs)) {
        reason = `no other write to ${key} could have followed it`;
      }
      if (reason !== undefined) {
        sink.add({
          type: 'lost-write',
          message: `acknowledged write #${w.op.id} (${key}=${w.value === null ? 'delete' : JSON.stringify(w.value)}) is lost: ${reason}`,
          ops: [w.op.id, final.id, ...(finalWriter !== undefined ? [finalWriter.op.id] : [])],
          keys: [key],
          evidence: { final: f === undefined ? null : { value: f.value, modRevision: f.modRevision } },
        });
      }
    }
  }
  return checked;
}

function checkLists(ops: readonly PairedOp[], final: PairedOp, read: FinalReadOp, sink: AnomalySink): number {
  const finalLists = new Map<string, Set<number>>();
  for (const l of read.lists ?? []) finalLists.set(l.key, new Set(l.value));
  const appendedBy = new Map<string, Map<number, PairedOp>>();
  let checked = 0;
  for (const op of ops) {
    const inv = op.invoke;
    if (inv.f !== 'txn') continue;
    for (const m of inv.value) {
      if (m.f !== 'append') continue;
      (appendedBy.get(m.key) ?? appendedBy.set(m.key, new Map()).get(m.key)!).set(m.value, op);
      if (op.outcome !== 'ok') continue;
      checked++;
      if (finalLists.get(m.key)?.has(m.value) !== true) {
        sink.add({ type: 'lost-append', message: `acknowledged append of ${m.value} to ${m.key} (#${op.id}) is missing from the final read`, ops: [op.id, final.id], keys: [m.key] });
      }
    }
  }
  for (const [key, els] of finalLists) {
    for (const e of els) {
      const by = appendedBy.get(key)?.get(e);
      if (by === undefined) sink.add({ type: 'phantom-value', message: `final ${key} contains ${e}, which nobody appended`, ops: [final.id], keys: [key] });
      else if (by.outcome === 'fail') sink.add({ type: 'failed-write-visible', message: `final ${key} contains ${e}, appended by #${by.id}, which failed`, ops: [final.id, by.id], keys: [key] });
    }
  }
  return checked;
}
