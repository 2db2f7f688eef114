import { describe, expect, it } from 'vitest';
import { crc32c, crc32cUpdate } from './crc32c';
import { decodeKeyValue, encodeKeyValue } from './kv-codec';
import { decodeRevision, encodeRevision } from './revision';

describe('revision keys', () => {
  it('encode as 8-byte big-endian main, "_", 8-byte sub, plus "t" for tombstones', () => {
    expect(encodeRevision(2, 1).toString('hex')).toBe('0000000000000002' + '5f' + '0000000000000001');
    expect(encodeRevision(2, 1, true).toString('hex').endsWith('74')).toBe(true);
    expect(decodeRevision(encodeRevision(2 ** 40 + 7, 3, true))).toEqual({ main: 2 ** 40 + 7, sub: 3, tombstone: true });
  });

  it('sort bytewise in revision order', () => {
    const revs: Array<[number, number]> = [[1, 0], [1, 1], [2, 0], [255, 0], [256, 0], [2 ** 32, 0], [2 ** 32 + 1, 5]];
    const encoded = revs.map(([m, s]) => encodeRevision(m, s, m % 2 === 0));
    const sorted = [...encoded].sort(Buffer.compare);
    expect(sorted).toEqual(encoded);
  });
});

describe('KeyValue codec', () => {
  it('round-trips every field, with and without a lease', () => {
    for (const lease of [0n, 1n, 0x7fff_ffff_ffff_ffffn]) {
      const { record, kv } = encodeKeyValue(Buffer.from('key\x00\xff', 'latin1'), Buffer.from('value'), 3, 2 ** 45, 7, lease);
      const back = decodeKeyValue(record);
      expect(back).toEqual(kv);
      expect(back).toMatchObject({ createRevision: 3, modRevision: 2 ** 45, version: 7, lease });
      expect(back.key.toString('latin1')).toBe('key\x00\xff');
    }
  });

  it('the encoded kv views into the record instead of the caller\'s buffers', () => {
    const key = Buffer.from('k');
    const { record, kv } = encodeKeyValue(key, Buffer.alloc(0), 1, 1, 1, 0n);
    key[0] = 0x7a;
    expect(kv.key.toString()).toBe('k');
    expect(kv.key.buffer).toBe(record.buffer);
    expect(kv.value.length).toBe(0);
  });
});

describe('crc32c', () => {
  it('matches the Castagnoli check value and composes incrementally', () => {
    expect(crc32c(Buffer.from('123456789'))).toBe(0xe3069283);
    expect(crc32c(Buffer.alloc(0))).toBe(0);
    const data = Buffer.from('the quick brown fox jumps over the lazy dog');
    expect(crc32cUpdate(crc32cUpdate(0, data.subarray(0, 13)), data.subarray(13))).toBe(crc32c(data));
  });
});
