/**
 * prev_kv for watch events the hub delivers from memory (a live commit or the recent history).
 *
 * A write txn reads no value (etcd's put does not either), so its events carry prevKv only when the
 * txn had it at hand. etcd's watch server fills prev_kv in its send loop, for watchers created with
 * prev_kv only, by a Range at mod_revision - 1 (v3rpc/watch.go sendLoop); when that revision is
 * compacted the event goes out without it. This does the same read, synchronously, on the hub's
 * side, so an event's prev_kv costs a read only when a prev_kv watcher receives it.
 */
import type { Event, KeyValue } from './kv';

/** The store read this needs: the key's KeyValue as of `rev`, undefined if absent or compacted. */
export interface PrevKvSource {
  kvAtSync(key: Buffer, rev: number): KeyValue | undefined;
}

/**
 * True when `ev` has a previous value it does not carry. A PUT of version 1 has none (a new
 * generation); a PUT of a later version and a DELETE (only live keys are deleted) have one.
 */
export function lacksPrevKv(ev: Event): boolean {
  return ev.prevKv === undefined && (ev.type === 'DELETE' || ev.kv.version > 1);
}

/** `ev` with its prev_kv, read from the store at modRevision - 1 when missing (as etcd's watch server). */
export function withPrevKv(source: PrevKvSource, ev: Event): Event {
  if (!lacksPrevKv(ev)) return ev;
  const prevKv = source.kvAtSync(ev.kv.key, ev.kv.modRevision - 1);
  return prevKv === undefined ? ev : { type: ev.type, kv: ev.kv, prevKv };
}
