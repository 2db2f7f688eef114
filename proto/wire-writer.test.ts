import * as crypto from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { varintSize, writeVarint } from './wire-writer';

/** The varint of a uint64, 7 bits at a time with BigInt: the definition the fast paths must match. */
function reference(v: bigint): Buffer {
  const out: number[] = [];
  v = BigInt.asUintN(64, v);
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v !== 0n) b |= 0x80;
    out.push(b);
  } while (v !== 0n);
  return Buffer.from(out);
}

describe('varints', () => {
  it('writes and sizes uint64 operands (BigInt) and safe integers (number) as the definition does', () => {
    const values: bigint[] = [0n, 1n, 127n, 128n, 2n ** 32n - 1n, 2n ** 32n, 2n ** 35n, 2n ** 49n + 5n, 2n ** 56n - 1n, 2n ** 56n, 2n ** 63n, 2n ** 64n - 1n];
    for (let i = 0; i < 5000; i++) values.push(crypto.randomBytes(8).readBigUInt64BE(0) >> BigInt(i % 64));
    for (const v of values) {
      const want = reference(v);
      const buf = Buffer.alloc(11);
      const end = writeVarint(buf, 0, v);
      expect(buf.subarray(0, end)).toEqual(want);
      expect(varintSize(v)).toBe(want.length);
      if (v <= BigInt(Number.MAX_SAFE_INTEGER)) {
        const n = Number(v);
        expect(buf.subarray(0, writeVarint(buf, 0, n))).toEqual(want);
        expect(varintSize(n)).toBe(want.length);
      }
    }
  });
});
