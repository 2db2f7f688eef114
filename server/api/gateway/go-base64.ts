/** Go's base64.CorruptInputError. */
export class CorruptInputError extends Error {}

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const DECODE = new Int16Array(256).fill(-1);
for (let i = 0; i < ALPHABET.length; i++) DECODE[ALPHABET.charCodeAt(i)] = i;
const PAD = 0x3d; // '='
const STRICT = /^[A-Za-z0-9+/]*={0,2}$/;
const isNewline = (b: number): boolean => b === 0x0a || b === 0x0d;

const corrupt = (offset: number): CorruptInputError => new CorruptInputError(`illegal base64 data at input byte ${offset}`);

/**
 * Go's base64.StdEncoding.Decode, which encoding/json uses for []byte: padding required, \r and \n
 * skipped, and the same "illegal base64 data at input byte N" offsets (decodeQuantum), so a bad key
 * gets etcd's exact message. Node's decoder accepts anything, so it cannot be used here.
 */
export function decodeBase64Go(src: Buffer): Buffer {
  if (src.length % 4 === 0 && STRICT.test(src.toString('latin1'))) return Buffer.from(src.toString('latin1'), 'base64');
  const out: number[] = [];
  let si = 0;
  while (si < src.length) {
    const dbuf = [0, 0, 0, 0];
    let dlen = 4;
    let j = 0;
    for (; j < 4; j++) {
      if (si === src.length) {
        if (j === 0) return Buffer.from(out);
        throw corrupt(si - j); // StdEncoding pads: a short quantum is corrupt
      }
      const b = src[si++];
      const v = DECODE[b];
      if (v >= 0) {
        dbuf[j] = v;
        continue;
      }
      if (isNewline(b)) {
        j--;
        continue;
      }
      if (b !== PAD) throw corrupt(si - 1);
      // Padding: only after two or three characters of a quantum.
      if (j === 0 || j === 1) throw corrupt(si - 1);
      if (j === 2) {
        while (si < src.length && isNewline(src[si])) si++;
        if (si === src.length) throw corrupt(src.length);
        if (src[si] !== PAD) throw corrupt(si - 1);
        si++;
      }
      while (si < src.length && isNewline(src[si])) si++;
      if (si < src.length) throw corrupt(si); // trailing garbage after padding
      dlen = j;
      break;
    }
    const val = (dbuf[0] << 18) | (dbuf[1] << 12) | (dbuf[2] << 6) | dbuf[3];
    const bytes = [(val >> 16) & 0xff, (val >> 8) & 0xff, val & 0xff];
    out.push(...bytes.slice(0, dlen - 1));
    if (j < 4 && dlen < 4) break;
  }
  return Buffer.from(out);
}
