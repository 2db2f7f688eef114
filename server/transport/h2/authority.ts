import { HUFFMAN_CODE_BITS, HUFFMAN_CODES } from './hpack-huffman';

/**
 * etcdctl 3.4 dials `endpoint status`, `endpoint hashkv` and `defrag` (and everything under
 * `--cluster`) with its endpoint URL as the gRPC target, so its first request carries
 * `:authority: http://host:port`. Go's HTTP/2 server accepts that; nghttp2 (inside Node) refuses it
 * as a malformed authority and resets the stream, and Node offers no way to relax the check.
 * etcd accepts it, so cairn must too. The only place to do so is the first HEADERS frame of such a
 * connection, before Node's HTTP/2 session sees it: this module finds an `:authority` literal in an
 * HPACK block and rewrites it to `host:port`. Everything else is copied byte for byte; later
 * requests refer to the (rewritten) dynamic-table entry, and a shorter entry on the decoder side
 * never shifts the indices the encoder uses.
 */

const AUTHORITY_STATIC_INDEX = 1;

function decodeInt(buf: Buffer, pos: number, prefixBits: number): [number, number] {
  const max = (1 << prefixBits) - 1;
  let value = buf[pos] & max;
  pos++;
  if (value < max) return [value, pos];
  let shift = 0;
  for (;;) {
    if (pos >= buf.length) throw new Error('hpack: truncated integer');
    const b = buf[pos++];
    value += (b & 0x7f) * 2 ** shift;
    shift += 7;
    if ((b & 0x80) === 0) return [value, pos];
    if (shift > 28) throw new Error('hpack: integer too large');
  }
}

function encodeInt(value: number, prefixBits: number, firstByteFlags: number): Buffer {
  const max = (1 << prefixBits) - 1;
  if (value < max) return Buffer.from([firstByteFlags | value]);
  const out = [firstByteFlags | max];
  value -= max;
  while (value >= 0x80) {
    out.push((value & 0x7f) | 0x80);
    value = Math.floor(value / 0x80);
  }
  out.push(value);
  return Buffer.from(out);
}

let decodeTable: Map<number, number> | undefined;

/** Huffman-decodes a string literal (RFC 7541 §5.2). */
export function huffmanDecode(bytes: Buffer): Buffer {
  if (!decodeTable) {
    decodeTable = new Map();
    for (let sym = 0; sym < 256; sym++) decodeTable.set(HUFFMAN_CODE_BITS[sym] * 2 ** 32 + HUFFMAN_CODES[sym], sym);
  }
  const out: number[] = [];
  let code = 0;
  let bits = 0;
  for (const byte of bytes) {
    for (let i = 7; i >= 0; i--) {
      code = code * 2 + ((byte >> i) & 1);
      bits++;
      const sym = decodeTable.get(bits * 2 ** 32 + code);
      if (sym !== undefined) {
        out.push(sym);
        code = 0;
        bits = 0;
      } else if (bits > 30) {
        throw new Error('hpack: invalid huffman code');
      }
    }
  }
  if (bits > 7 || code !== 2 ** bits - 1) throw new Error('hpack: invalid huffman padding');
  return Buffer.from(out);
}

function readString(buf: Buffer, pos: number): { value: Buffer; end: number } {
  const huffman = (buf[pos] & 0x80) !== 0;
  const [len, start] = decodeInt(buf, pos, 7);
  const end = start + len;
  if (end > buf.length) throw new Error('hpack: truncated string');
  const raw = buf.subarray(start, end);
  return { value: huffman ? huffmanDecode(raw) : raw, end };
}

/** `http://host:port` → `host:port`; anything without a scheme is left alone. */
export function stripScheme(authority: string): string | undefined {
  const m = /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\/([^/]*)\/*$/.exec(authority);
  return m ? m[1] : undefined;
}

/**
 * Returns the header block with a scheme-prefixed `:authority` rewritten, or undefined when there
 * is nothing to rewrite (or the block is not understood, in which case it is passed on unchanged).
 */
export function rewriteAuthority(block: Buffer): Buffer | undefined {
  try {
    let pos = 0;
    while (pos < block.length) {
      const b = block[pos];
      if (b & 0x80) {
        pos = decodeInt(block, pos, 7)[1];
        continue;
      }
      if ((b & 0xe0) === 0x20) {
        pos = decodeInt(block, pos, 5)[1];
        continue;
      }
      const prefixBits = b & 0x40 ? 6 : 4;
      const [nameIndex, afterIndex] = decodeInt(block, pos, prefixBits);
      pos = afterIndex;
      let isAuthority = nameIndex === AUTHORITY_STATIC_INDEX;
      if (nameIndex === 0) {
        const name = readString(block, pos);
        isAuthority = name.value.toString('latin1') === ':authority';
        pos = name.end;
      }
      const valueStart = pos;
      const value = readString(block, pos);
      pos = value.end;
      if (!isAuthority) continue;
      const fixed = stripScheme(value.value.toString('latin1'));
      if (fixed === undefined) return undefined;
      const literal = Buffer.from(fixed, 'latin1');
      return Buffer.concat([block.subarray(0, valueStart), encodeInt(literal.length, 7, 0), literal, block.subarray(pos)]);
    }
    return undefined;
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------- the connection handshake

const FRAME_HEADER_BYTES = 9;
const FRAME_HEADERS = 0x1;
const FRAME_SETTINGS = 0x4;
const FLAG_ACK = 0x1;
const FLAG_END_HEADERS = 0x4;
const FLAG_PADDED = 0x8;
const FLAG_PRIORITY = 0x20;
/** An empty SETTINGS frame: what a grpc-go client sends after the preface, and what we answer. */
export const EMPTY_SETTINGS_FRAME = Buffer.from([0, 0, 0, FRAME_SETTINGS, 0, 0, 0, 0, 0]);

/**
 * The bytes a grpc-go client sends after the preface and its empty SETTINGS, until its first
 * HEADERS frame, made ready for Node's HTTP/2 session: the SETTINGS ACK answering our own early
 * SETTINGS is dropped (the session never sent those), and the first request's `:authority` is
 * rewritten if it carries a scheme. Returns undefined while more bytes are needed.
 */
export function prepareClientFrames(bytes: Buffer): { replay: Buffer; done: boolean } | undefined {
  const parts: Buffer[] = [];
  let pos = 0;
  let sawAck = false;
  let sawHeaders = false;
  while (pos + FRAME_HEADER_BYTES <= bytes.length) {
    const len = bytes.readUIntBE(pos, 3);
    const type = bytes[pos + 3];
    const flags = bytes[pos + 4];
    const end = pos + FRAME_HEADER_BYTES + len;
    if (end > bytes.length) break;
    const frame = bytes.subarray(pos, end);
    if (!sawAck && type === FRAME_SETTINGS && flags & FLAG_ACK) {
      sawAck = true;
    } else if (!sawHeaders && type === FRAME_HEADERS) {
      sawHeaders = true;
      parts.push(rewriteHeadersFrame(frame) ?? frame);
    } else {
      parts.push(frame);
    }
    pos = end;
  }
  if (!(sawAck && sawHeaders)) return undefined;
  parts.push(bytes.subarray(pos));
  return { replay: Buffer.concat(parts), done: true };
}

function rewriteHeadersFrame(frame: Buffer): Buffer | undefined {
  const flags = frame[4];
  if (!(flags & FLAG_END_HEADERS)) return undefined; // continued in CONTINUATION frames: leave as is
  let start = FRAME_HEADER_BYTES;
  let end = frame.length;
  if (flags & FLAG_PADDED) {
    end -= frame[start];
    start += 1;
  }
  if (flags & FLAG_PRIORITY) start += 5;
  if (start > end) return undefined;
  const block = rewriteAuthority(frame.subarray(start, end));
  if (!block) return undefined;
  // Rebuild without padding (the flag is cleared), keeping the priority fields if present.
  const priority = flags & FLAG_PRIORITY ? frame.subarray(FRAME_HEADER_BYTES + (flags & FLAG_PADDED ? 1 : 0), start) : Buffer.alloc(0);
  const payloadLength = priority.length + block.length;
  const header = Buffer.from(frame.subarray(0, FRAME_HEADER_BYTES));
  header.writeUIntBE(payloadLength, 0, 3);
  header[4] = flags & ~FLAG_PADDED;
  return Buffer.concat([header, priority, block]);
}
