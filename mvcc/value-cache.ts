/**
 * A bounded LRU of recently written or point-read KeyValues, by key, sized in bytes
 * (DEFAULT_VALUE_CACHE_BYTES). Values live in LevelDB; without this, every read of a hot key
 * would be a LevelDB lookup. A put reads no value (create_revision, version and lease are in the
 * key index); it only peeks here for its event's prev_kv, so a prev_kv watcher's read is saved
 * when the previous value was recently written or read.
 *
 * An entry is only served for the revision it holds (`modRevision` equal to the key's latest), so a
 * stale entry can never be returned; commit keeps entries current anyway.
 */
import type { KeyValue } from './kv';

/** Rough per-entry overhead of the Map entry, the KeyValue object and its Buffer views. */
const ENTRY_OVERHEAD_BYTES = 160;

function sizeOf(latin1Key: string, kv: KeyValue): number {
  return ENTRY_OVERHEAD_BYTES + latin1Key.length + kv.key.length + kv.value.length;
}

export class ValueCache {
  /** Map iteration order is insertion order: the first entry is the least recently used. */
  private readonly entries = new Map<string, KeyValue>();
  private bytes = 0;

  constructor(private readonly maxBytes: number) {}

  get sizeBytes(): number {
    return this.bytes;
  }

  /** The cached KeyValue of the key at `modRevision`, refreshed as most recently used. */
  get(latin1Key: string, modRevision: number): KeyValue | undefined {
    const kv = this.entries.get(latin1Key);
    if (kv === undefined || kv.modRevision !== modRevision) return undefined;
    this.entries.delete(latin1Key);
    this.entries.set(latin1Key, kv);
    return kv;
  }

  /** As `get`, without refreshing the entry (a put's free look for its event's prev_kv). */
  peek(latin1Key: string, modRevision: number): KeyValue | undefined {
    const kv = this.entries.get(latin1Key);
    return kv === undefined || kv.modRevision !== modRevision ? undefined : kv;
  }

  set(latin1Key: string, kv: KeyValue): void {
    if (this.maxBytes <= 0) return;
    this.delete(latin1Key);
    const size = sizeOf(latin1Key, kv);
    if (size > this.maxBytes) return;
    this.entries.set(latin1Key, kv);
    this.bytes += size;
    while (this.bytes > this.maxBytes) {
      const oldest = this.entries.keys().next().value as string;
      this.delete(oldest);
    }
  }

  delete(latin1Key: string): void {
    const kv = this.entries.get(latin1Key);
    if (kv === undefined) return;
    this.entries.delete(latin1Key);
    this.bytes -= sizeOf(latin1Key, kv);
  }

  clear(): void {
    this.entries.clear();
    this.bytes = 0;
  }
}
