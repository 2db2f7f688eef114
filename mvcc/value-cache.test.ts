import { describe, expect, it } from 'vitest';
import type { KeyValue } from './kv';
import { ValueCache } from './value-cache';

const kv = (key: string, mod: number, valueBytes = 10): KeyValue => ({
  key: Buffer.from(key), value: Buffer.alloc(valueBytes), createRevision: mod, modRevision: mod, version: 1, lease: 0n,
});

describe('ValueCache', () => {
  it('serves an entry only at its revision, evicts the least recently used past its byte limit', () => {
    const c = new ValueCache(3 * 200);
    c.set('a', kv('a', 2));
    c.set('b', kv('b', 3));
    c.set('c', kv('c', 4));
    expect(c.get('a', 2)?.modRevision).toBe(2);
    expect(c.get('a', 5)).toBeUndefined(); // a newer revision of the key is not this entry
    c.set('d', kv('d', 5)); // evicts b, the least recently used (a was just read)
    expect(c.get('b', 3)).toBeUndefined();
    expect([c.get('a', 2), c.get('c', 4), c.get('d', 5)].every((x) => x !== undefined)).toBe(true);
    expect(c.sizeBytes).toBeLessThanOrEqual(600);
    c.delete('a');
    expect(c.get('a', 2)).toBeUndefined();
    c.set('huge', kv('huge', 6, 10_000)); // larger than the whole cache: not kept, nothing evicted
    expect(c.get('huge', 6)).toBeUndefined();
    expect(c.get('d', 5)).toBeDefined();
    c.clear();
    expect(c.sizeBytes).toBe(0);
  });
});
