/**
 * A bounded LRU of recently written or point-read KeyValues, by key, sized in bytes
 * (DEFAULT_VALUE_CACHE_BYTES). Values live in LevelDB; without this, every put on an existing key
 * (which needs the previous KeyValue: create_revision, version, the event's prev_kv) and every
 * read of a hot key would be a LevelDB lookup. Measured with `node dist/mvcc/bench.js` (200k puts
 * over 100k keys): about 54k puts/s with every value in memory, 14k with LevelDB reads and no cache.
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
