import { describe, expect, it } from 'vitest';
import { normalize, prefixEnd, relRev } from './runner';

/** The normaliser must hide only what legitimately differs between members, nothing more. */
describe('conformance normaliser', () => {
  it('keeps only header.revision, relative to the base', () => {
    const h = { cluster_id: '1', member_id: '2', revision: '107', raft_term: '3' };
    expect(normalize({ header: h }, 100)).toEqual({ header: { revision: 'B+7' } });
    expect(normalize({ header: { ...h, revision: '99' } }, 100)).toEqual({ header: { revision: 'B-1' } });
    expect(normalize({ header: { ...h, revision: '0' } }, 100)).toEqual({ header: { revision: 0 } });
    expect(normalize({ header: h }, null)).toEqual({ header: { revision: 107 } });
  });

  it('relativises kv revisions but not versions, leases or counts', () => {
    const kv = { key: Buffer.from('k'), create_revision: '101', mod_revision: '105', version: '3', value: Buffer.from('v'), lease: '1234' };
    expect(normalize({ kvs: [kv], count: '1', more: false }, 100)).toEqual({
      kvs: [{ key: 'k', create_revision: 'B+1', mod_revision: 'B+5', version: 3, value: 'v', lease: 1234 }],
      count: 1,
      more: false,
    });
  });

  it('distinguishes an absent sub-message from an empty one', () => {
    expect(normalize({ prev_kv: null }, 0)).toEqual({});
    expect(normalize({ prev_kv: { key: Buffer.alloc(0), version: '0' } }, 0)).toEqual({ prev_kv: { key: '', version: 0 } });
  });

  it('renders non-printable bytes as hex and large values as a digest', () => {
    expect(normalize({ key: Buffer.from([0, 0xff]) }, 0)).toEqual({ key: '0x00ff' });
    expect(String((normalize({ value: Buffer.alloc(1000, 'x') }, 0) as { value: string }).value)).toMatch(/^<1000 bytes sha256:[0-9a-f]{16}>$/);
  });

  it('keeps 64-bit values that do not fit a double as strings', () => {
    expect(normalize({ lease: '9223372036854775807' }, 0)).toEqual({ lease: '9223372036854775807' });
  });

  it('different responses stay different', () => {
    const a = normalize({ kvs: [{ key: Buffer.from('k'), mod_revision: '5' }] }, 1);
    const b = normalize({ kvs: [{ key: Buffer.from('k'), mod_revision: '6' }] }, 1);
    expect(a).not.toEqual(b);
    expect(relRev('5', 5)).toBe('B+0');
  });

  it('computes prefix ends like clientv3', () => {
    expect(prefixEnd(Buffer.from('abc'))).toEqual(Buffer.from('abd'));
    expect(prefixEnd(Buffer.from([0x61, 0xff]))).toEqual(Buffer.from([0x62]));
    expect(prefixEnd(Buffer.from([0xff, 0xff]))).toEqual(Buffer.from([0]));
  });
});
