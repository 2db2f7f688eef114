/**
 * Watch guarantees, as etcd's robustness tests define them (`tests/robustness/validate/watch.go`,
 * https://etcd.io/docs/v3.6/learning/api_guarantees/#watch-apis):
 *
 * - ordered: event revisions never decrease along a stream;
 * - unique: no (revision, key) is delivered twice on a stream;
 * - atomic: a revision's events are never split across responses, nor delivered in part;
 * - bookmarkable: a progress notification at R comes after every event <= R and before every event > R;
 * - reliable: no event of the watched range is missing between the first delivered event and the
 *   last delivered revision (compared with the ground truth, below);
 * - resumable: a watch from revision R starts with the first event of its range at or after R;
 * - prev_kv: equals the key's state at revision - 1;
 * - agreement: all watchers that deliver a (revision, key) deliver the same event.
 * Plus: a cancel with compact_revision C is allowed only if the stream still needed a revision
 * below C, and C is a compaction someone requested.
 *
 * The ground truth is the union of every watcher's events (checked for agreement) and every
 * acknowledged put with its revision from the KV history. A write no watcher saw and no client was
 * told about cannot be known, so reliability is checked only against what is known.
 */
import { type History, type Indexed, type KvSnapshot, type WatchEvent, type WatchOpen, type WatchResponseEntry, inRange, pairOperations } from '../history';
import { AnomalySink, type Anomaly, type JsonValue, type Verdict, nowMs } from './verdict';

interface Stream {
  readonly open: Indexed<WatchOpen>;
  readonly responses: Indexed<WatchResponseEntry>[];
}

interface TruthEvent {
  readonly event: WatchEvent;
  /** Where it was first seen: a watch response (entry index) or an op (invoke index). */
  readonly source: { readonly watcher: string; readonly entryIndex: number } | { readonly op: number };
}

export function checkWatches(history: History): Verdict {
  const t0 = nowMs();
  const sink = new AnomalySink();
  const streams = collectStreams(history, sink);
  const truth = new Map<number, Map<string, TruthEvent>>();

  for (const s of streams.values()) checkStream(s, sink);
  for (const s of streams.values()) mergeIntoTruth(s, truth, sink);
  mergeWrites(history, truth, sink);
  const revisions = [...truth.keys()].sort((a, b) => a - b);
  const byKey = truthByKey(truth);
  const requestedCompactions = compactRevisions(history);
  let delivered = 0;
  for (const s of streams.values()) {
    delivered += s.responses.reduce((n, r) => n + r.events.length, 0);
    checkAgainstTruth(s, truth, revisions, sink);
    if (s.open.prevKv) checkPrevKv(s, byKey, requestedCompactions, sink);
    checkCancel(s, requestedCompactions, sink);
  }
  const status = sink.count > 0 ? 'fail' : 'pass';
  return {
    checker: 'watch',
    status,
    summary: status === 'pass' ? `${streams.size} watch streams, ${delivered} events, ${revisions.length} revisions: all guarantees hold` : `${sink.count} violations: ${sink.typesSummary()}`,
    stats: { streams: streams.size, eventsDelivered: delivered, truthRevisions: revisions.length, anomalies: sink.count },
    anomalies: sink.list,
    durationMs: nowMs() - t0,
  };
}

function collectStreams(history: History, sink: AnomalySink): Map<string, Stream> {
  const streams = new Map<string, Stream>();
  for (const e of history) {
    if (e.kind === 'watch-open') {
      if (streams.has(e.watcher)) sink.add({ type: 'bad-history', message: `watcher ${e.watcher} opened twice; watcher ids must be unique per stream`, ops: [], watches: [{ watcher: e.watcher, entryIndex: e.index }] });
      else streams.set(e.watcher, { open: e, responses: [] });
    } else if (e.kind === 'watch-response') {
      const s = streams.get(e.watcher);
      if (s === undefined) sink.add({ type: 'bad-history', message: `response for watcher ${e.watcher} before its watch-open`, ops: [], watches: [{ watcher: e.watcher, entryIndex: e.index }] });
      else s.responses.push(e);
    }
  }
  return streams;
}

/** The first revision the stream must deliver: the start revision, or created header + 1 for "now". */
function firstRevision(s: Stream): number | undefined {
  if (s.open.startRevision > 0) return s.open.startRevision;
  const created = s.responses.find((r) => r.created === true);
  return created === undefined ? undefined : created.revision + 1;
}

function ref(s: Stream, r: Indexed<WatchResponseEntry>): { watcher: string; entryIndex: number } {
  return { watcher: s.open.watcher, entryIndex: r.index };
}

function describeEvent(e: WatchEvent): string {
  return `${e.type} ${e.key}${e.type === 'PUT' ? `=${JSON.stringify(e.value)}` : ''} @${e.modRevision}`;
}

/** Checks that need only the stream itself: ordered, unique, atomic (split), bookmarkable, range, headers. */
function checkStream(s: Stream, sink: AnomalySink): void {
  const w = s.open.watcher;
  const seen = new Map<string, Indexed<WatchResponseEntry>>();
  let last: { rev: number; resp: Indexed<WatchResponseEntry> } | undefined;
  let bookmark: { rev: number; resp: Indexed<WatchResponseEntry> } | undefined;
  let prevLastRev: number | undefined;
  let canceled: Indexed<WatchResponseEntry> | undefined;
  /** Progress notifications already reported as overtaken (one report per notification). */
  const overtaken = new Set<number>();
  const start = firstRevision(s);
  for (const r of s.responses) {
    if (canceled !== undefined && r.events.length > 0) {
      sink.add({ type: 'events-after-cancel', message: `watcher ${w} got events after its cancel (entry ${canceled.index})`, ops: [], watches: [ref(s, canceled), ref(s, r)] });
    }
    if (r.canceled === true) canceled = r;
    if (r.events.length > 0 && prevLastRev !== undefined && r.events[0].modRevision === prevLastRev) {
      sink.add({ type: 'watch-not-atomic', message: `watcher ${w}: revision ${prevLastRev} is split across two responses`, ops: [], watches: [ref(s, r)], evidence: { revision: prevLastRev } });
    }
    for (const e of r.events) {
      if (e.modRevision > r.revision) {
        sink.add({ type: 'header-behind-event', message: `watcher ${w}: event ${describeEvent(e)} in a response with header revision ${r.revision}`, ops: [], watches: [ref(s, r)] });
      }
      if (!inRange(e.key, s.open.key, s.open.rangeEnd)) {
        sink.add({ type: 'event-outside-range', message: `watcher ${w} on ${rangeDesc(s.open)} got ${describeEvent(e)}`, ops: [], watches: [ref(s, r)], keys: [e.key] });
      }
      if (start !== undefined && e.modRevision < start) {
        sink.add({ type: 'event-before-start', message: `watcher ${w} from revision ${start} got older event ${describeEvent(e)}`, ops: [], watches: [ref(s, r)], keys: [e.key] });
      }
      if (last !== undefined && e.modRevision < last.rev) {
        sink.add({
          type: 'watch-went-back-in-time',
          message: `watcher ${w}: event ${describeEvent(e)} after an event at revision ${last.rev} (ordered)`,
          ops: [],
          watches: [ref(s, last.resp), ref(s, r)],
          keys: [e.key],
          evidence: { previousRevision: last.rev, revision: e.modRevision },
        });
      }
      const id = `${e.modRevision}\u0000${e.key}`;
      const dup = seen.get(id);
      if (dup !== undefined) {
        sink.add({ type: 'duplicate-watch-event', message: `watcher ${w}: ${describeEvent(e)} delivered twice (unique)`, ops: [], watches: [ref(s, dup), ref(s, r)], keys: [e.key] });
      } else seen.set(id, r);
      if (bookmark !== undefined && e.modRevision <= bookmark.rev && !overtaken.has(bookmark.resp.index)) {
        overtaken.add(bookmark.resp.index);
        sink.add({
          type: 'bookmark-overtook-event',
          message: `watcher ${w}: progress notification at revision ${bookmark.rev} came before event ${describeEvent(e)} (bookmarkable)`,
          ops: [],
          watches: [ref(s, bookmark.resp), ref(s, r)],
          keys: [e.key],
        });
      }
      if (last === undefined || e.modRevision >= last.rev) last = { rev: e.modRevision, resp: r };
    }
    if (r.events.length > 0) prevLastRev = r.events[r.events.length - 1].modRevision;
    if (r.progressNotify === true) {
      if (last !== undefined && r.revision < last.rev) {
        sink.add({ type: 'bookmark-behind-event', message: `watcher ${w}: progress notification at revision ${r.revision} after an event at ${last.rev}`, ops: [], watches: [ref(s, last.resp), ref(s, r)] });
      }
      if (bookmark === undefined || r.revision > bookmark.rev) bookmark = { rev: r.revision, resp: r };
    }
  }
}

function rangeDesc(o: WatchOpen): string {
  return o.rangeEnd === undefined ? JSON.stringify(o.key) : `[${JSON.stringify(o.key)}, ${o.rangeEnd === '\0' ? '∞' : JSON.stringify(o.rangeEnd)})`;
}

function sameEvent(a: WatchEvent, b: WatchEvent): string | undefined {
  if (a.type !== b.type) return 'type';
  if (a.type === 'PUT' && a.value !== b.value) return 'value';
  if (a.createRevision !== undefined && b.createRevision !== undefined && a.createRevision !== b.createRevision) return 'create_revision';
  if (a.version !== undefined && b.version !== undefined && a.version !== b.version) return 'version';
  return undefined;
}

function mergeIntoTruth(s: Stream, truth: Map<number, Map<string, TruthEvent>>, sink: AnomalySink): void {
  for (const r of s.responses) {
    for (const e of r.events) {
      const perRev = truth.get(e.modRevision) ?? truth.set(e.modRevision, new Map()).get(e.modRevision)!;
      const known = perRev.get(e.key);
      if (known === undefined) {
        perRev.set(e.key, { event: e, source: { watcher: s.open.watcher, entryIndex: r.index } });
        continue;
      }
      const diff = sameEvent(known.event, e);
      if (diff !== undefined && 'watcher' in known.source) {
        sink.add({
          type: 'watchers-disagree',
          message: `watchers ${known.source.watcher} and ${s.open.watcher} disagree on ${e.key} at revision ${e.modRevision} (${diff}): ${describeEvent(known.event)} vs ${describeEvent(e)}`,
          ops: [],
          watches: [known.source, ref(s, r)],
          keys: [e.key],
        });
      }
    }
  }
}

/** Acknowledged puts (write, or cas that succeeded) with a revision are part of the truth. */
function mergeWrites(history: History, truth: Map<number, Map<string, TruthEvent>>, sink: AnomalySink): void {
  for (const op of pairOperations(history)) {
    if (op.outcome !== 'ok' || op.complete === undefined) continue;
    const c = op.complete;
    if ((c.f !== 'write' && c.f !== 'cas') || c.value === null || c.revision === undefined) continue;
    const ev: WatchEvent = { type: 'PUT', key: c.key, value: c.value, modRevision: c.revision };
    const perRev = truth.get(c.revision) ?? truth.set(c.revision, new Map()).get(c.revision)!;
    const known = perRev.get(c.key);
    if (known === undefined) {
      perRev.set(c.key, { event: ev, source: { op: op.id } });
      continue;
    }
    const diff = sameEvent(known.event, ev);
    if (diff !== undefined) {
      const watches = 'watcher' in known.source ? [known.source] : [];
      sink.add({
        type: 'watch-disagrees-with-write',
        message: `op #${op.id} put ${c.key}=${JSON.stringify(c.value)} at revision ${c.revision}, but a watcher saw ${describeEvent(known.event)}`,
        ops: [op.id],
        watches,
        keys: [c.key],
      });
    }
  }
}

function truthByKey(truth: Map<number, Map<string, TruthEvent>>): Map<string, TruthEvent[]> {
  const out = new Map<string, TruthEvent[]>();
  for (const perRev of truth.values()) for (const t of perRev.values()) (out.get(t.event.key) ?? out.set(t.event.key, []).get(t.event.key)!).push(t);
  for (const list of out.values()) list.sort((a, b) => a.event.modRevision - b.event.modRevision);
  return out;
}

/** Revisions some compaction was requested at (and did not certainly fail); empty = unknown. */
function compactRevisions(history: History): Set<number> {
  const out = new Set<number>();
  for (const op of pairOperations(history)) if (op.f === 'compact' && op.outcome !== 'fail') out.add((op.invoke as { atRevision: number }).atRevision);
  return out;
}

/** The revision the stream had certainly delivered up to: last event or progress notification. */
function deliveredUpTo(s: Stream): { lastEventRev: number | undefined; upTo: number | undefined } {
  let lastEventRev: number | undefined;
  let upTo: number | undefined;
  for (const r of s.responses) {
    for (const e of r.events) lastEventRev = Math.max(lastEventRev ?? 0, e.modRevision);
    if (r.progressNotify === true) upTo = Math.max(upTo ?? 0, r.revision);
  }
  if (lastEventRev !== undefined) upTo = Math.max(upTo ?? 0, lastEventRev);
  return { lastEventRev, upTo };
}

/** Reliable, resumable and atomic (partial revision) against the truth. */
function checkAgainstTruth(s: Stream, truth: Map<number, Map<string, TruthEvent>>, revisions: readonly number[], sink: AnomalySink): void {
  const w = s.open.watcher;
  const start = firstRevision(s);
  const { upTo } = deliveredUpTo(s);
  if (start === undefined || upTo === undefined) return;
  const got = new Map<number, Set<string>>();
  let firstEvent: { e: WatchEvent; r: Indexed<WatchResponseEntry> } | undefined;
  for (const r of s.responses) {
    for (const e of r.events) {
      (got.get(e.modRevision) ?? got.set(e.modRevision, new Set()).get(e.modRevision)!).add(e.key);
      if (firstEvent === undefined) firstEvent = { e, r };
    }
  }
  let reportedResume = false;
  for (const rev of revisions) {
    if (rev < start) continue;
    if (rev > upTo) break;
    for (const [key, t] of truth.get(rev)!) {
      if (!inRange(key, s.open.key, s.open.rangeEnd)) continue;
      if (got.get(rev)?.has(key) === true) continue;
      const beforeFirst = firstEvent === undefined || rev < firstEvent.e.modRevision;
      const partial = got.has(rev);
      const type = beforeFirst ? 'watch-not-resumable' : partial ? 'watch-partial-revision' : 'watch-gap';
      if (type === 'watch-not-resumable') {
        if (reportedResume) continue;
        reportedResume = true;
      }
      const seenAt = 'watcher' in t.source ? [t.source] : [];
      const message =
        type === 'watch-not-resumable'
          ? `watcher ${w} from revision ${start} should start with ${describeEvent(t.event)}, but its first event is ${firstEvent === undefined ? 'none' : describeEvent(firstEvent.e)} (resumable)`
          : type === 'watch-partial-revision'
            ? `watcher ${w} delivered revision ${rev} without ${describeEvent(t.event)} (atomic)`
            : `watcher ${w} missed ${describeEvent(t.event)} between its first event and revision ${upTo} (reliable)`;
      const a: Anomaly = {
        type,
        message,
        ops: 'op' in t.source ? [t.source.op] : [],
        watches: [{ watcher: w, entryIndex: s.open.index }, ...seenAt],
        keys: [key],
        evidence: { revision: rev, key, start, deliveredUpTo: upTo },
      };
      sink.add(a);
    }
  }
}

function kvJson(kv: KvSnapshot | undefined): JsonValue {
  return kv === undefined ? null : { key: kv.key, value: kv.value, modRevision: kv.modRevision };
}

/**
 * prev_kv must be the key's state at revision - 1. The truth's last event for the key before the
 * revision is that state if it lies inside this stream's own span (the stream was checked to miss
 * nothing there); before the span, only contradictions with known events are flagged.
 */
function checkPrevKv(s: Stream, byKey: Map<string, TruthEvent[]>, compactions: Set<number>, sink: AnomalySink): void {
  const w = s.open.watcher;
  const start = firstRevision(s) ?? Infinity;
  for (const r of s.responses) {
    for (const e of r.events) {
      const hist = byKey.get(e.key) ?? [];
      const before = lastBefore(hist, e.modRevision);
      const p = e.prevKv;
      const bad = (why: string, expected: JsonValue): void =>
        sink.add({
          type: 'wrong-prev-kv',
          message: `watcher ${w}: ${describeEvent(e)} has prev_kv ${p === undefined ? 'absent' : `${JSON.stringify(p.value)}@${p.modRevision}`}; ${why}`,
          ops: [],
          watches: [ref(s, r)],
          keys: [e.key],
          evidence: { event: describeEvent(e), prevKv: kvJson(p), expected },
        });
      if (p !== undefined && p.modRevision >= e.modRevision) {
        bad('it is not older than the event', null);
        continue;
      }
      if (p !== undefined) {
        const at = hist.find((t) => t.event.modRevision === p.modRevision);
        if (at !== undefined && (at.event.type !== 'PUT' || at.event.value !== p.value)) {
          bad(`the key was ${describeEvent(at.event)} at that revision`, describeEvent(at.event));
          continue;
        }
        const between = hist.find((t) => t.event.modRevision > p.modRevision && t.event.modRevision < e.modRevision);
        if (between !== undefined) {
          bad(`but ${describeEvent(between.event)} came in between`, describeEvent(between.event));
          continue;
        }
      }
      if (before === undefined || before.event.modRevision < start) continue;
      // etcd reads prev_kv at revision - 1 when it sends the event and omits it if that revision is
      // compacted by then (a watcher catching up late), so absence is fine once a compaction at or
      // past the event's revision was requested.
      if (p === undefined && [...compactions].some((c) => c >= e.modRevision)) continue;
      // Inside the stream's span: prev_kv must be exactly the last known state.
      if (before.event.type === 'DELETE' && p !== undefined) bad(`but the key was deleted at ${before.event.modRevision}`, null);
      else if (before.event.type === 'PUT' && (p === undefined || p.value !== before.event.value || p.modRevision !== before.event.modRevision)) {
        bad(`but the state at ${e.modRevision - 1} was ${describeEvent(before.event)}`, describeEvent(before.event));
      }
    }
  }
}

function lastBefore(hist: readonly TruthEvent[], rev: number): TruthEvent | undefined {
  let lo = 0;
  let hi = hist.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (hist[mid].event.modRevision < rev) lo = mid + 1;
    else hi = mid;
  }
  return lo === 0 ? undefined : hist[lo - 1];
}

/** A compaction cancel is legitimate only if the stream still needed a revision below it (etcd: minRev < compactRev). */
function checkCancel(s: Stream, requested: ReadonlySet<number>, sink: AnomalySink): void {
  const w = s.open.watcher;
  let next = firstRevision(s) ?? s.open.startRevision;
  for (const r of s.responses) {
    for (const e of r.events) next = Math.max(next, e.modRevision + 1);
    if (r.progressNotify === true) next = Math.max(next, r.revision + 1);
    if (r.canceled !== true || r.compactRevision === undefined || r.compactRevision === 0) continue;
    const c = r.compactRevision;
    if (!(next < c)) {
      sink.add({
        type: 'bad-compaction-cancel',
        message: `watcher ${w} was canceled as compacted at ${c}, but it only needed revisions from ${next} on, which were not compacted`,
        ops: [],
        watches: [ref(s, r)],
        evidence: { compactRevision: c, nextNeeded: next },
      });
    }
    if (requested.size > 0 && !requested.has(c)) {
      sink.add({ type: 'bad-compaction-cancel', message: `watcher ${w} was canceled with compact_revision ${c}, but no compaction to ${c} was requested`, ops: [], watches: [ref(s, r)] });
    }
  }
}
