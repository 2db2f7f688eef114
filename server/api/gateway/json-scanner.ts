/**
 * A JSON reader that accepts and refuses what Go's encoding/json does, with Go's error messages,
 * because etcd's gateway reads request bodies with a json.Decoder and answers a malformed body with
 * the decoder's own text ("unexpected EOF", "invalid character '}' looking for beginning of object
 * key string", ...). Numbers keep their source text, so 64-bit IDs written as bare numbers lose no
 * precision, and every value keeps its raw text, which jsonpb re-reads for quoted integers.
 */

export type JsonNode =
  | { readonly t: 'obj'; readonly entries: Map<string, JsonNode>; readonly raw: string }
  | { readonly t: 'arr'; readonly items: JsonNode[]; readonly raw: string }
  | { readonly t: 'str'; readonly v: string; readonly raw: string }
  | { readonly t: 'num'; readonly raw: string }
  | { readonly t: 'bool'; readonly v: boolean; readonly raw: string }
  | { readonly t: 'null'; readonly raw: string };

/** A syntax error, worded as Go's encoding/json scanner words it. */
export class JsonSyntaxError extends Error {}

/** The value is cut short; at the end of the input this is Go's "unexpected EOF". */
class Incomplete extends Error {}

export type ScanResult =
  | { kind: 'value'; node: JsonNode; end: number }
  | { kind: 'eof' } // only whitespace left (Go: io.EOF)
  | { kind: 'more' } // an unfinished value: wait for more input
  | { kind: 'error'; message: string };

/** Go's quoteChar: the offending byte as the scanner prints it. */
function quoteChar(c: string): string {
  if (c === "'") return `'\\''`;
  if (c === '"') return `'"'`;
  const q = JSON.stringify(c);
  return `'${q.slice(1, -1)}'`;
}

const isSpace = (c: string): boolean => c === ' ' || c === '\t' || c === '\n' || c === '\r';
const isDigit = (c: string): boolean => c >= '0' && c <= '9';
const isHex = (c: string): boolean => /[0-9a-fA-F]/.test(c);

class Parser {
  pos: number;
  constructor(
    private readonly s: string,
    start: number,
  ) {
    this.pos = start;
  }

  private peek(): string {
    if (this.pos >= this.s.length) throw new Incomplete();
    return this.s[this.pos];
  }

  private fail(c: string, context: string): never {
    throw new JsonSyntaxError(`invalid character ${quoteChar(c)} ${context}`);
  }

  skipSpace(): void {
    while (this.pos < this.s.length && isSpace(this.s[this.pos])) this.pos++;
  }

  value(): JsonNode {
    this.skipSpace();
    const start = this.pos;
    const c = this.peek();
    if (c === '{') return this.object(start);
    if (c === '[') return this.array(start);
    if (c === '"') {
      this.string();
      const raw = this.s.slice(start, this.pos);
      return { t: 'str', v: JSON.parse(raw) as string, raw };
    }
    if (c === '-' || isDigit(c)) {
      this.number();
      return { t: 'num', raw: this.s.slice(start, this.pos) };
    }
    if (c === 't') return this.literal('true', { t: 'bool', v: true, raw: 'true' });
    if (c === 'f') return this.literal('false', { t: 'bool', v: false, raw: 'false' });
    if (c === 'n') return this.literal('null', { t: 'null', raw: 'null' });
    return this.fail(c, 'looking for beginning of value');
  }

  private object(start: number): JsonNode {
    this.pos++; // {
    const entries = new Map<string, JsonNode>();
    this.skipSpace();
    if (this.peek() === '}') {
      this.pos++;
      return { t: 'obj', entries, raw: this.s.slice(start, this.pos) };
    }
    for (;;) {
      this.skipSpace();
      const k = this.pos;
      if (this.peek() !== '"') this.fail(this.peek(), 'looking for beginning of object key string');
      this.string();
      const key = JSON.parse(this.s.slice(k, this.pos)) as string;
      this.skipSpace();
      if (this.peek() !== ':') this.fail(this.peek(), 'after object key');
      this.pos++;
      // A repeated key: the last one wins, as in Go's map[string]json.RawMessage.
      entries.set(key, this.value());
      this.skipSpace();
      const c = this.peek();
      this.pos++;
      if (c === '}') return { t: 'obj', entries, raw: this.s.slice(start, this.pos) };
      if (c !== ',') {
        this.pos--;
        this.fail(c, 'after object key:value pair');
      }
    }
  }

  private array(start: number): JsonNode {
    this.pos++; // [
    const items: JsonNode[] = [];
    this.skipSpace();
    if (this.peek() === ']') {
      this.pos++;
      return { t: 'arr', items, raw: this.s.slice(start, this.pos) };
    }
    for (;;) {
      items.push(this.value());
      this.skipSpace();
      const c = this.peek();
      this.pos++;
      if (c === ']') return { t: 'arr', items, raw: this.s.slice(start, this.pos) };
      if (c !== ',') {
        this.pos--;
        this.fail(c, 'after array element');
      }
    }
  }

  private string(): void {
    this.pos++; // opening quote
    for (;;) {
      const c = this.peek();
      this.pos++;
      if (c === '"') return;
      if (c < ' ') this.fail(c, 'in string literal');
      if (c !== '\\') continue;
      const e = this.peek();
      this.pos++;
      if (e === 'u') {
        for (let i = 0; i < 4; i++) {
          const h = this.peek();
          if (!isHex(h)) this.fail(h, 'in \\u hexadecimal character escape');
          this.pos++;
        }
      } else if (!'"\\/bfnrt'.includes(e)) {
        this.fail(e, 'in string escape code');
      }
    }
  }

  /** Go's number states; a number ends at the first byte that cannot continue it. */
  private number(): void {
    if (this.s[this.pos] === '-') {
      this.pos++;
      if (!isDigit(this.peek())) this.fail(this.peek(), 'in numeric literal');
    }
    if (this.s[this.pos] === '0') this.pos++;
    else while (this.pos < this.s.length && isDigit(this.s[this.pos])) this.pos++;
    if (this.pos < this.s.length && this.s[this.pos] === '.') {
      this.pos++;
      if (!isDigit(this.peek())) this.fail(this.peek(), 'after decimal point in numeric literal');
      while (this.pos < this.s.length && isDigit(this.s[this.pos])) this.pos++;
    }
    if (this.pos < this.s.length && (this.s[this.pos] === 'e' || this.s[this.pos] === 'E')) {
      this.pos++;
      if (this.peek() === '+' || this.peek() === '-') this.pos++;
      if (!isDigit(this.peek())) this.fail(this.peek(), 'in exponent of numeric literal');
      while (this.pos < this.s.length && isDigit(this.s[this.pos])) this.pos++;
    }
    // A number at the very end of a stream may go on in the next chunk.
    if (this.pos >= this.s.length) throw new Incomplete();
  }

  private literal(word: string, node: JsonNode): JsonNode {
    for (let i = 0; i < word.length; i++) {
      const c = this.peek();
      if (c !== word[i]) this.fail(c, `in literal ${word} (expecting ${quoteChar(word[i])})`);
      this.pos++;
    }
    return node;
  }
}

/**
 * The next value of a stream of concatenated JSON values from `start` (Go's Decoder.Decode).
 * `atEnd` says no more input will come: an unfinished value is then "unexpected EOF".
 */
export function scanNext(text: string, start: number, atEnd: boolean): ScanResult {
  const p = new Parser(text, start);
  p.skipSpace();
  if (p.pos >= text.length) return atEnd ? { kind: 'eof' } : { kind: 'more' };
  try {
    const node = p.value();
    return { kind: 'value', node, end: p.pos };
  } catch (e) {
    if (e instanceof JsonSyntaxError) return { kind: 'error', message: e.message };
    if (!(e instanceof Incomplete)) throw e;
    if (!atEnd) return { kind: 'more' };
    // A number that ends exactly at the end of the input is complete.
    const retry = new Parser(`${text} `, start);
    try {
      const node = retry.value();
      if (retry.pos <= text.length) return { kind: 'value', node, end: retry.pos };
    } catch {
      /* fall through */
    }
    return { kind: 'error', message: 'unexpected EOF' };
  }
}

/** Go's json.Unmarshal over a whole text: one value and nothing after it but space. */
export function parseWhole(text: string): JsonNode {
  const r = scanNext(text, 0, true);
  if (r.kind === 'eof') throw new JsonSyntaxError('unexpected end of JSON input');
  if (r.kind === 'error') throw new JsonSyntaxError(r.message === 'unexpected EOF' ? 'unexpected end of JSON input' : r.message);
  if (r.kind !== 'value') throw new JsonSyntaxError('unexpected end of JSON input');
  const p = new Parser(text, r.end);
  p.skipSpace();
  if (p.pos < text.length) throw new JsonSyntaxError(`invalid character ${quoteChar(text[p.pos])} after top-level value`);
  return r.node;
}
