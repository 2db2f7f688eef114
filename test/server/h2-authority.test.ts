import { describe, expect, it } from 'vitest';
import { EMPTY_SETTINGS_FRAME, huffmanDecode, prepareClientFrames, rewriteAuthority, stripScheme } from '../../server/transport/h2/authority';

// RFC 7541 C.4.1: "www.example.com" Huffman-encoded.
const WWW_EXAMPLE_HUFFMAN = Buffer.from('f1e3c2e5f23a6ba0ab90f4ff', 'hex');

function literalIncremental(nameIndex: number, value: string): Buffer {
  const v = Buffer.from(value, 'latin1');
  return Buffer.concat([Buffer.from([0x40 | nameIndex, v.length]), v]);
}

function frame(type: number, flags: number, stream: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(stream, 5);
  return Buffer.concat([h, payload]);
}

describe(':authority rewriting for etcdctl 3.4 (HPACK)', () => {
  it('decodes the RFC 7541 Huffman example', () => {
    expect(huffmanDecode(WWW_EXAMPLE_HUFFMAN).toString()).toBe('www.example.com');
  });

  it('strips a scheme and keeps host:port', () => {
    expect(stripScheme('http://127.0.0.1:2379')).toBe('127.0.0.1:2379');
    expect(stripScheme('https://etcd-0:2379/')).toBe('etcd-0:2379');
    expect(stripScheme('127.0.0.1:2379')).toBeUndefined();
  });

  it('rewrites a scheme-prefixed :authority literal and copies every other field byte for byte', () => {
    const method = Buffer.from([0x83]); // indexed :method POST
    const path = literalIncremental(4, '/etcdserverpb.Maintenance/Status');
    const block = Buffer.concat([method, literalIncremental(1, 'http://127.0.0.1:2379'), path]);
    const out = rewriteAuthority(block);
    expect(out).toEqual(Buffer.concat([method, literalIncremental(1, '127.0.0.1:2379'), path]));
  });

  it('decodes a Huffman-encoded authority and leaves it alone when it has no scheme', () => {
    // (etcdctl's own Huffman-encoded "http://host:port" is rewritten in test/cluster/basic.test.ts.)
    const block = Buffer.concat([Buffer.from([0x41, 0x80 | WWW_EXAMPLE_HUFFMAN.length]), WWW_EXAMPLE_HUFFMAN]);
    expect(rewriteAuthority(block)).toBeUndefined(); // "www.example.com" has no scheme: untouched
  });

  it('leaves a well-formed authority alone', () => {
    expect(rewriteAuthority(literalIncremental(1, '127.0.0.1:2379'))).toBeUndefined();
  });

  it('drops the ACK of our early SETTINGS and rewrites the first HEADERS frame', () => {
    const ack = frame(4, 1, 0, Buffer.alloc(0));
    const windowUpdate = frame(8, 0, 0, Buffer.from([0, 0, 0x10, 0]));
    const headers = frame(1, 0x4, 1, Buffer.concat([Buffer.from([0x83]), literalIncremental(1, 'http://h:1')]));
    expect(prepareClientFrames(Buffer.concat([windowUpdate]))).toBeUndefined();
    const prepared = prepareClientFrames(Buffer.concat([ack, windowUpdate, headers]));
    expect(prepared?.replay).toEqual(
      Buffer.concat([windowUpdate, frame(1, 0x4, 1, Buffer.concat([Buffer.from([0x83]), literalIncremental(1, 'h:1')]))]),
    );
    expect(EMPTY_SETTINGS_FRAME).toEqual(frame(4, 0, 0, Buffer.alloc(0)));
  });
});
