/**
 * Kubernetes-style traffic, as kube-apiserver drives etcd (and as etcd's robustness "Kubernetes"
 * traffic models it):
 * - create = `If(mod_revision(key) == 0) Then(put)`; update and delete = `If(mod_revision(key) ==
 *   m) Then(put | delete) Else(get key)`: optimistic concurrency on the revision last seen;
 * - paginated lists pinned to the first page's revision (`limit` + `revision`);
 * - per member, an informer: list, then watch from the list's revision + 1 with prev_kv; when the
 *   watch is cancelled (compaction) or breaks, list and watch again;
 * - periodic compaction to a random revision between the last compaction and the newest revision.
 * Checked by linearizability (the guarded writes and gets), revision-order (revisions, pinned lists),
 * watch (ordered, reliable, resumable, prev_kv, agreement) and durability.
 */
import type * as grpc from '@grpc/grpc-js';
import { MemberClient, type Msg, headerRevision, outcomeOf } from '../client';
import { sleep } from '../cluster';
import type { KeyValueString, KvSnapshot, WatchEvent } from '../history';
import { type ClientSlot, type Outcome, type Workload, type WorkloadContext, OP_TIMEOUT_MS, finalReadPrefix, prefixEnd, runClientLoops, toSnapshot } from './common';
import { KeyPool, UniqueValues } from './keys';
import { compareFor, kvOf } from './register';

export const POD_PREFIX = '/registry/pods/default/';
export const POD_ACTIVE_KEYS = 10;
export const POD_OPS_PER_KEY = 150;
/** Keys per list page (small, so lists really paginate). */
export const LIST_PAGE_SIZE = 4;
/** Pages per list, at most (a bound on the loop; the prefix holds far fewer keys than this covers). */
export const MAX_LIST_PAGES = 1_000;
export const P_LIST = 0.1;
export const P_GET = 0.2;
export const P_DELETE = 0.15;
/** How often the compactor compacts. */
export const COMPACT_INTERVAL_MS = 1_000;
/** Informer re-list/re-watch cycles per member, at most. */
export const MAX_WATCH_REOPENS = 1_000;
/** Pause before re-listing after a watch broke. */
export const WATCH_RETRY_MS = 500;
/** At the end, how long watchers may take to deliver the final revision. */
export const WATCH_DRAIN_TIMEOUT_MS = 15_000;

const EVENT_DELETE = 1;

function toEvent(ev: Msg): WatchEvent {
  const kv = ev.kv;
  const out: WatchEvent = {
    type: Number(ev.type) === EVENT_DELETE ? 'DELETE' : 'PUT',
    key: Buffer.from(kv.key).toString(),
    value: Buffer.from(kv.value).toString(),
    modRevision: Number(kv.mod_revision),
    createRevision: Number(kv.create_revision),
    version: Number(kv.version),
  };
  const prev = ev.prev_kv;
  if (prev && prev.key && Buffer.from(prev.key).length > 0) return { ...out, prevKv: toSnapshot(prev) };
  return out;
}

interface Informer {
  readonly member: string;
  readonly client: MemberClient;
  /** Highest revision delivered on the current watch (events or progress). */
  seenRev: number;
  stream?: grpc.ClientDuplexStream<Msg, Msg>;
  watcherId?: string;
  done: boolean;
  /** Ends the current watch, recording why. */
  finish?: (reason: string) => void;
}

export class KubernetesWorkload implements Workload {
  readonly name = 'kubernetes';
  private readonly keys = new KeyPool(`${POD_PREFIX}pod-`, POD_ACTIVE_KEYS, POD_OPS_PER_KEY);
  private readonly values = new UniqueValues();
  /** The informer cache: what clients last saw of each key (mod_revision 0 = absent). */
  private readonly cache = new Map<string, { value: KeyValueString; modRevision: number }>();
  private newestRev = 0;
  private lastCompactRev = 0;
  private watchers = 0;
  private readonly informers: Informer[] = [];
  private watchStopped = false;
  private informerLoops: Promise<void>[] = [];

  async run(ctx: WorkloadContext): Promise<void> {
    for (const m of ctx.cluster.members) {
      const inf: Informer = { member: m.name, client: m.newClient(), seenRev: 0, done: false };
      this.informers.push(inf);
      this.informerLoops.push(this.informerLoop(ctx, inf));
    }
    await Promise.all([runClientLoops(ctx, 'kubernetes', (slot) => this.step(ctx, slot)), this.compactor(ctx)]);
  }

  async finalRead(ctx: WorkloadContext): Promise<void> {
    const finalRev = await finalReadPrefix(ctx, POD_PREFIX, (kvs) => ({ kvs }));
    // Let every informer catch up to the final state, so reliability is checked to the end.
    const deadline = Date.now() + WATCH_DRAIN_TIMEOUT_MS;
    while (Date.now() < deadline && this.informers.some((i) => i.seenRev < finalRev)) await sleep(100);
    this.watchStopped = true;
    for (const inf of this.informers) this.closeWatch(inf, inf.seenRev >= finalRev ? 'run ended' : `run ended before the watch reached revision ${finalRev}`);
    await Promise.all(this.informerLoops);
    for (const inf of this.informers) inf.client.close();
  }

  private see(rev: number): void {
    if (rev > this.newestRev) this.newestRev = rev;
  }

  private step(ctx: WorkloadContext, slot: ClientSlot): Promise<Outcome> {
    const x = slot.rand.float();
    if (x < P_LIST) return this.list(ctx, slot.client, slot.process).then((r) => r.outcome);
    const key = this.keys.take(slot.rand);
    const known = this.cache.get(key);
    if (x < P_LIST + P_GET) return this.get(ctx, slot, key);
    if (known === undefined || known.modRevision === 0) return this.guardedWrite(ctx, slot, key, 0, this.values.next());
    const del = slot.rand.chance(P_DELETE);
    return this.guardedWrite(ctx, slot, key, known.modRevision, del ? null : this.values.next());
  }

  private async get(ctx: WorkloadContext, slot: ClientSlot, key: string): Promise<Outcome> {
    const process = slot.process;
    ctx.rec.op({ f: 'read', process, type: 'invoke', key });
    const r = await slot.client.range({ key: Buffer.from(key) }, OP_TIMEOUT_MS);
    if (r.err) {
      const type = outcomeOf(r.err);
      ctx.rec.op({ f: 'read', process, type, key, error: r.err.details });
      return type;
    }
    const kv = kvOf(r.ok.kvs);
    this.cache.set(key, kv);
    this.see(headerRevision(r.ok));
    ctx.rec.op({ f: 'read', process, type: 'ok', key, value: kv.value, modRevision: kv.modRevision, revision: headerRevision(r.ok) });
    return 'ok';
  }

  /** Create (modRevision 0), update or delete, guarded by mod_revision, with else-Get. */
  private async guardedWrite(ctx: WorkloadContext, slot: ClientSlot, key: string, modRevision: number, value: KeyValueString): Promise<Outcome> {
    const process = slot.process;
    const expected = { modRevision };
    const k = Buffer.from(key);
    ctx.rec.op({ f: 'cas', process, type: 'invoke', key, expected, value });
    const then = value === null ? { request_delete_range: { key: k } } : { request_put: { key: k, value: Buffer.from(value) } };
    const r = await slot.client.txn({ compare: [compareFor(k, expected)], success: [then], failure: [{ request_range: { key: k } }] }, OP_TIMEOUT_MS);
    if (r.err) {
      const type = outcomeOf(r.err);
      ctx.rec.op({ f: 'cas', process, type, key, expected, value, error: r.err.details });
      return type;
    }
    const revision = headerRevision(r.ok);
    this.see(revision);
    if (r.ok.succeeded) {
      this.cache.set(key, { value, modRevision: value === null ? 0 : revision });
      ctx.rec.op({ f: 'cas', process, type: 'ok', key, expected, value, revision });
      return 'ok';
    }
    const observed = kvOf(r.ok.responses?.[0]?.response_range?.kvs);
    this.cache.set(key, observed);
    ctx.rec.op({ f: 'cas', process, type: 'fail', key, expected, value, revision, observed, error: 'compare failed' });
    return 'fail';
  }

  /**
   * A paginated list: the first page at the current revision R, the rest pinned to R. Each page is
   * one `list` operation. Resolves to the revision R (0 if the list did not complete).
   */
  private async list(ctx: WorkloadContext, client: MemberClient, process: number): Promise<{ outcome: Outcome; revision: number; kvs: KvSnapshot[] }> {
    const end = prefixEnd(POD_PREFIX);
    const rangeEnd = end.toString();
    let from = POD_PREFIX;
    let pinned = 0;
    const all: KvSnapshot[] = [];
    for (let page = 0; page < MAX_LIST_PAGES; page++) {
      const atRevision = pinned === 0 ? undefined : pinned;
      ctx.rec.op({ f: 'list', process, type: 'invoke', key: from, rangeEnd, ...(atRevision ? { atRevision } : {}) });
      const r = await client.range({ key: Buffer.from(from), range_end: end, limit: String(LIST_PAGE_SIZE), revision: String(pinned) }, OP_TIMEOUT_MS);
      if (r.err) {
        const type = outcomeOf(r.err);
        ctx.rec.op({ f: 'list', process, type, key: from, rangeEnd, ...(atRevision ? { atRevision } : {}), error: r.err.details });
        return { outcome: type, revision: 0, kvs: all };
      }
      const kvs = (r.ok.kvs as Msg[]).map(toSnapshot);
      all.push(...kvs);
      if (pinned === 0) pinned = headerRevision(r.ok);
      this.see(headerRevision(r.ok));
      ctx.rec.op({ f: 'list', process, type: 'ok', key: from, rangeEnd, ...(atRevision ? { atRevision } : {}), value: kvs, revision: headerRevision(r.ok) });
      if (!r.ok.more || kvs.length === 0) return { outcome: 'ok', revision: pinned, kvs: all };
      from = kvs[kvs.length - 1].key + '\0';
    }
    return { outcome: 'ok', revision: pinned, kvs: all };
  }

  private async compactor(ctx: WorkloadContext): Promise<void> {
    const client = ctx.cluster.members[0].admin;
    let process = ctx.rec.newProcess();
    const r = ctx.rand.fork('compactor');
    while (!ctx.stopped()) {
      await sleep(COMPACT_INTERVAL_MS);
      if (ctx.stopped() || this.newestRev <= this.lastCompactRev + 1) continue;
      const target = r.int(this.lastCompactRev + 1, this.newestRev);
      const via = r.pick(ctx.cluster.members).admin ?? client;
      ctx.rec.op({ f: 'compact', process, type: 'invoke', atRevision: target });
      const res = await via.compact(target, OP_TIMEOUT_MS);
      if (res.err) {
        const type = outcomeOf(res.err);
        ctx.rec.op({ f: 'compact', process, type, atRevision: target, error: res.err.details });
        if (type === 'info') process = ctx.rec.newProcess();
        continue;
      }
      this.lastCompactRev = Math.max(this.lastCompactRev, target);
      ctx.rec.op({ f: 'compact', process, type: 'ok', atRevision: target, revision: headerRevision(res.ok) });
    }
  }

  // ------------------------------------------------------------------ informers (list + watch)

  private async informerLoop(ctx: WorkloadContext, inf: Informer): Promise<void> {
    let process = ctx.rec.newProcess();
    for (let n = 0; n < MAX_WATCH_REOPENS && !this.watchStopped; n++) {
      const listed = await this.list(ctx, inf.client, process);
      if (listed.outcome === 'info') process = ctx.rec.newProcess();
      if (listed.outcome !== 'ok') {
        await sleep(WATCH_RETRY_MS);
        continue;
      }
      if (this.watchStopped) break;
      const reason = await this.watchOnce(ctx, inf, process, listed.revision + 1);
      if (reason !== 'run ended') await sleep(WATCH_RETRY_MS);
    }
  }

  /** One watch stream from `startRevision`; resolves with why it ended. */
  private watchOnce(ctx: WorkloadContext, inf: Informer, process: number, startRevision: number): Promise<string> {
    const watcher = `w${this.watchers++}-${inf.member}`;
    const end = prefixEnd(POD_PREFIX);
    const stream = inf.client.watchStream();
    inf.stream = stream;
    inf.watcherId = watcher;
    inf.seenRev = startRevision - 1;
    inf.done = false;
    ctx.rec.record({ kind: 'watch-open', watcher, process, key: POD_PREFIX, rangeEnd: end.toString(), startRevision, prevKv: true, member: inf.member });
    return new Promise((resolve) => {
      const finish = (reason: string): void => {
        if (inf.done || inf.watcherId !== watcher) return;
        inf.done = true;
        ctx.rec.record({ kind: 'watch-close', watcher, reason });
        try {
          stream.cancel();
        } catch {
          /* already closed */
        }
        resolve(reason);
      };
      inf.finish = finish;
      stream.on('data', (m: Msg) => {
        if (inf.done || inf.watcherId !== watcher) return;
        const events = ((m.events ?? []) as Msg[]).map(toEvent);
        const compactRevision = Number(m.compact_revision ?? 0);
        const created = !!m.created;
        const canceled = !!m.canceled;
        const revision = headerRevision(m);
        ctx.rec.record({
          kind: 'watch-response',
          watcher,
          revision,
          events,
          ...(created ? { created } : {}),
          ...(canceled ? { canceled } : {}),
          ...(compactRevision > 0 ? { compactRevision } : {}),
          ...(m.cancel_reason ? { cancelReason: String(m.cancel_reason) } : {}),
          ...(!created && !canceled && events.length === 0 ? { progressNotify: true } : {}),
        });
        for (const ev of events) if (ev.modRevision > inf.seenRev) inf.seenRev = ev.modRevision;
        if (!created && !canceled && events.length === 0 && revision > inf.seenRev) inf.seenRev = revision;
        this.see(revision);
        if (canceled) finish(compactRevision > 0 ? `canceled: compacted at ${compactRevision}` : `canceled: ${String(m.cancel_reason ?? '')}`);
      });
      stream.on('error', (e: Error) => finish(`stream error: ${e.message}`));
      stream.on('end', () => finish('stream ended'));
      stream.write({ create_request: { key: Buffer.from(POD_PREFIX), range_end: end, start_revision: String(startRevision), prev_kv: true } });
    });
  }

  private closeWatch(inf: Informer, reason: string): void {
    inf.finish?.(reason);
  }
}
