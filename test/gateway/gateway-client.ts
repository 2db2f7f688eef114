/**
 * A small JSON-gateway client for tests: one POST with Node's fetch, or a streaming POST whose
 * `{"result": ...}` lines are read as they arrive. Answers keep the status, the headers that etcd's
 * gateway sets, and the body, so two members' answers can be compared as they are.
 */
import * as http from 'node:http';

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

/**
 * A streaming POST whose body is sent in two parts: `first`, then, once the server has answered
 * with its first line, `second` and the end of the body. Returns everything the server sent until
 * it ended the response (failing after timeoutMs). A stream that must fail on a later request is
 * compared this way, so when the server reads that request never depends on the upload's timing.
 */
export function postInTwoParts(base: string, path: string, first: string, second: string, timeoutMs = 30_000): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${base}${path}`, { method: 'POST', agent: false });
    const timer = setTimeout(() => {
      req.destroy();
      reject(new Error(`${path}: the response did not end within ${timeoutMs} ms`));
    }, timeoutMs);
    req.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    req.on('response', (res) => {
      let body = '';
      let sentSecond = false;
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        body += chunk;
        if (!sentSecond && body.includes('\n')) {
          sentSecond = true;
          req.end(second);
        }
      });
      res.on('end', () => {
        clearTimeout(timer);
        if (!sentSecond) req.destroy();
        const headers = new Headers();
        for (const [k, v] of Object.entries(res.headers)) if (typeof v === 'string') headers.set(k, v);
        resolve({ status: res.statusCode ?? 0, headers: pickHeaders(headers), body });
      });
    });
    req.flushHeaders();
    req.write(first);
  });
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

  /** Everything until the server ends the response (failing, not hanging, after timeoutMs). */
  async rest(timeoutMs = 10_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    const decoder = new TextDecoder();
    while (!this.ended) {
      const left = deadline - Date.now();
      let timer: NodeJS.Timeout | undefined;
      const chunk = await Promise.race([
        this.reader.read(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`stream did not end within ${timeoutMs} ms; have ${JSON.stringify(this.buffered)}`)), Math.max(left, 0));
        }),
      ]).finally(() => clearTimeout(timer));
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
