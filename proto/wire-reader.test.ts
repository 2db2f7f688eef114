import * as crypto from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { WireFormatError, WireReader } from './wire-reader';
import { writeVarint } from './wire-writer';

describe('wire reader', () => {
  it('reads back every uint64 the writer writes: a number up to 2^53 - 1, a bigint above', () => {
    const values: bigint[] = [0n, 1n, 127n, 128n, 2n ** 28n - 1n, 2n ** 28n, 2n ** 32n - 1n, 2n ** 32n, 2n ** 53n - 1n, 2n ** 53n, 2n ** 63n, 2n ** 64n - 1n];
    for (let i = 0; i < 5000; i++) values.push(crypto.randomBytes(8).readBigUInt64BE(0) >> BigInt(i % 64));
    const buf = Buffer.alloc(11);
    for (const v of values) {
      const end = writeVarint(buf, 0, v);
      const r = new WireReader(buf, 0, end);
      const got = r.uint64();
      expect(BigInt(got)).toBe(v);
      expect(typeof got).toBe(v <= BigInt(Number.MAX_SAFE_INTEGER) ? 'number' : 'bigint');
      expect(r.pos).toBe(end);
      expect(new WireReader(buf, 0, end).int64String()).toBe(BigInt.asIntN(64, v).toString());
    }
  });

  it('refuses truncated input, an 11-byte varint and a 32-bit field above 2^32 - 1', () => {
    const buf = Buffer.alloc(11);
    const end = writeVarint(buf, 0, 2n ** 63n);
    expect(() => new WireReader(buf, 0, end - 1).uint64()).toThrow(WireFormatError);
    expect(() => new WireReader(Buffer.alloc(11, 0xff)).uint64()).toThrow(WireFormatError);
    expect(() => new WireReader(buf, 0, writeVarint(buf, 0, 2 ** 32)).uint32()).toThrow(WireFormatError);
    expect(new WireReader(buf, 0, writeVarint(buf, 0, 2 ** 32 - 1)).uint32()).toBe(2 ** 32 - 1);
    expect(() => new WireReader(Buffer.from([0x05, 1, 2])).bytes()).toThrow(WireFormatError);
  });
});
