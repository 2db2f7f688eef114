/**
 * A small JSON-gateway client for tests: one POST with Node's fetch, or a streaming POST whose
 * `{"result": ...}` lines are read as they arrive. Answers keep the status, the headers that etcd's
 * gateway sets, and the body, so two members' answers can be compared as they are.
 */

/** The headers etcd's gateway (or its HTTP mux) decides; Date and framing headers are left out. */
export const COMPARED_HEADERS = ['content-type', 'grpc-metadata-content-type', 'trailer', 'x-content-type-options', 'access-control-allow-origin', 'location'];

export interface Answer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

export const b64 = (s: string): string => Buffer.from(s).toString('base64');

function pickHeaders(h: Headers): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of COMPARED_HEADERS) {
    const v = h.get(k);
    if (v !== null) out[k] = v;
  }
  return out;
}

export async function post(base: string, path: string, body: string | object, init: { method?: string; headers?: Record<string, string> } = {}): Promise<Answer> {
  const r = await fetch(`${base}${path}`, {
    method: init.method ?? 'POST',
    headers: init.headers,
    body: init.method === 'GET' ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    redirect: 'manual',
  });
  return { status: r.status, headers: pickHeaders(r.headers), body: await r.text() };
}

/** An open streaming call (Watch, LeaseKeepAlive, Observe, Snapshot): read lines, then close. */
export class StreamCall {
  private buffered = '';
  private ended = false;
  private constructor(
    readonly status: number,
    readonly headers: Record<string, string>,
    private readonly reader: ReadableStreamDefaultReader<Uint8Array>,
    private readonly abort: AbortController,
  ) {}

  static async open(base: string, path: string, body: string): Promise<StreamCall> {
    const abort = new AbortController();
    const r = await fetch(`${base}${path}`, { method: 'POST', body, signal: abort.signal });
    return new StreamCall(r.status, pickHeaders(r.headers), r.body!.getReader(), abort);
  }

  /** The next `n` lines (each one JSON chunk), waiting at most timeoutMs for them. */
  async lines(n: number, timeoutMs = 10_000): Promise<string[]> {
    const deadline = Date.now() + timeoutMs;
    const decoder = new TextDecoder();
    while (this.buffered.split('\n').length - 1 < n && !this.ended) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${n} lines; have ${JSON.stringify(this.buffered)}`);
      let timer: NodeJS.Timeout | undefined;
      const chunk = await Promise.race([
        this.reader.read(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`timed out waiting for ${n} lines; have ${JSON.stringify(this.buffered)}`)), left);
        }),
      ]).finally(() => clearTimeout(timer));
      if (chunk.done) this.ended = true;
      else this.buffered += decoder.decode(chunk.value, { stream: true });
    }
    const parts = this.buffered.split('\n');
    const out = parts.slice(0, Math.min(n, parts.length - 1));
    this.buffered = parts.slice(out.length).join('\n');
    if (out.length < n && this.ended && this.buffered) out.push(this.buffered);
    return out;
  }

  /** Everything until the server ends the response. */
  async rest(timeoutMs = 10_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    const decoder = new TextDecoder();
    while (!this.ended) {
      if (Date.now() > deadline) throw new Error('stream did not end');
      const chunk = await this.reader.read();
      if (chunk.done) this.ended = true;
      else this.buffered += decoder.decode(chunk.value, { stream: true });
    }
    const all = this.buffered;
    this.buffered = '';
    return all;
  }

  close(): void {
    this.abort.abort();
    this.reader.cancel().catch(() => undefined);
  }
}
