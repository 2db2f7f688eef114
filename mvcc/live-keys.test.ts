import { describe, expect, it } from 'vitest';
import { Rng } from '../raft/sim/rng';
import { LiveKeys } from './live-keys';
import { resolveRange } from './tree-index';

const KEYS = ['', 'a', 'ab', 'abc', 'b', 'ba', 'c', '\x00', '\x7f', '\x80', '\xff', '\xff\xff'];

describe('LiveKeys', () => {
  it('counts the keys of any range like a brute-force filter, through adds and deletes', () => {
    const rng = new Rng(7);
    const live = new LiveKeys();
    const model = new Set<string>();
    for (let step = 0; step < 3000; step++) {
      const k = rng.pick(KEYS);
      if (rng.next() < 0.6) {
        live.add(k);
        model.add(k);
      } else {
        live.delete(k);
        model.delete(k);
      }
      const lo = rng.pick(KEYS);
      const x = rng.next();
      // Single key, [lo, hi), and "every key >= lo" (end = 0x00), as etcd encodes them.
      const end = x < 0.3 ? null : x < 0.5 ? Buffer.from([0]) : Buffer.from(rng.pick(KEYS.filter((s) => s !== '')), 'latin1');
      const range = resolveRange(Buffer.from(lo, 'latin1'), end);
      const want = [...model].filter((s) => (range.high === undefined ? s === range.low : s >= range.low && s < range.high)).length;
      expect(live.count(range)).toBe(want);
      expect(live.size).toBe(model.size);
    }
  });
});
