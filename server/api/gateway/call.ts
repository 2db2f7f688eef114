/**
 * The in-process call the gateway hands to a gRPC handler: what grpc-js gives a handler (request,
 * metadata, getPeer, the `cancelled` flag and event, write/end and the 'drain' event for server
 * streams, 'data'/'end' for client streams, `emit('error', status)` to fail a stream), so the very
 * handlers registered on the grpc-js Server serve JSON requests too. etcd's gateway gets the same
 * single code path by dialing its own gRPC server; here there is no network hop.
 */
import { EventEmitter } from 'node:events';
import { Metadata, status } from '@grpc/grpc-js';
import type { GatewayStatus } from './errors';

/** Where a call's results go (the HTTP response, through gateway.ts). */
export interface CallSink {
  /** One response message, already JSON; false when the HTTP response's buffer is full. */
  message(json: string): boolean;
  /** Calls fn once the HTTP response's buffer has drained. */
  onceDrained(fn: () => void): void;
  /**
   * The call ended: OK (no status) or with a gRPC status; `fromServer` false for a status the
   * gateway itself gives (an expired Grpc-Timeout), which carries no server metadata.
   */
  finish(s?: GatewayStatus, fromServer?: boolean): void;
}

/** A handler's failure as a gRPC status: grpc-js ServiceError fields, else UNKNOWN. */
export function statusOf(e: unknown): GatewayStatus {
  const err = e as { code?: unknown; details?: unknown; message?: unknown } | null;
  const code = typeof err?.code === 'number' ? err.code : status.UNKNOWN;
  const message = typeof err?.details === 'string' ? err.details : typeof err?.message === 'string' ? err.message : String(e);
  return { code, message };
}

export class GatewayCall extends EventEmitter {
  cancelled = false;
  private ended = false;

  constructor(
    readonly request: unknown,
    readonly metadata: Metadata,
    private readonly peer: string,
    private readonly deadline: Date | number,
    private readonly path: string,
    private readonly encode: (msg: unknown) => string,
    private readonly sink: CallSink,
  ) {
    super();
    // A stream handler fails its call with call.emit('error', serviceError), as on grpc-js.
    this.on('error', (e: unknown) => this.finish(statusOf(e)));
  }

  getPeer(): string {
    return this.peer;
  }

  getDeadline(): Date | number {
    return this.deadline;
  }

  getPath(): string {
    return this.path;
  }

  sendMetadata(): void {
    // Response headers are the gateway's own (Grpc-Metadata-Content-Type); nothing to send.
  }

  /** grpc-js write(): false asks the handler to wait for 'drain'; cb runs once the bytes left. */
  write(msg: unknown, cb?: () => void): boolean {
    if (this.ended) return false;
    let json: string;
    try {
      json = this.encode(msg);
    } catch (e) {
      this.finish({ code: status.INTERNAL, message: e instanceof Error ? e.message : String(e) });
      return false;
    }
    const ok = this.sink.message(json);
    if (ok) {
      if (cb) process.nextTick(cb);
    } else {
      this.sink.onceDrained(() => {
        cb?.();
        this.emit('drain');
      });
    }
    return ok;
  }

  end(): void {
    this.finish();
  }

  /** The client went away (or the deadline passed): what grpc-js reports as 'cancelled'. */
  cancel(): void {
    if (this.cancelled || this.ended) return;
    this.cancelled = true;
    this.ended = true;
    this.emit('cancelled');
  }

  /** For unary handlers: the grpc-js sendUnaryData callback. */
  readonly callback = (err: unknown, value?: unknown): void => {
    if (this.ended) return;
    if (err) {
      this.finish(statusOf(err));
      return;
    }
    if (this.write(value)) this.finish();
    else this.sink.onceDrained(() => this.finish());
  };

  private finish(s?: GatewayStatus): void {
    if (this.ended) return;
    this.ended = true;
    this.sink.finish(s);
  }
}

/**
 * grpc-gateway's AnnotateContext: `Authorization` passes through as `authorization` (where etcd's
 * auth reads the token), `Grpc-Metadata-X` headers become metadata `x` (base64 for `-Bin`), the
 * permanent HTTP headers are kept under `grpcgateway-`, plus x-forwarded-host and -for.
 */
const PERMANENT_HEADERS = new Set(
  ['Accept', 'Accept-Charset', 'Accept-Language', 'Accept-Ranges', 'Authorization', 'Cache-Control', 'Content-Type', 'Cookie', 'Date', 'Expect', 'From', 'Host',
    'If-Match', 'If-Modified-Since', 'If-None-Match', 'If-Schedule-Tag-Match', 'If-Unmodified-Since', 'Max-Forwards', 'Origin', 'Pragma', 'Referer', 'User-Agent', 'Via', 'Warning']
    .map((h) => h.toLowerCase()),
);
const METADATA_HEADER_PREFIX = 'grpc-metadata-';

export class BadMetadataError extends Error {}

export function metadataFromHeaders(rawHeaders: string[], host: string | undefined, remoteIp: string | undefined): Metadata {
  const md = new Metadata();
  let forwardedHost: string | undefined;
  let forwardedFor: string | undefined;
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const key = rawHeaders[i].toLowerCase();
    const val = rawHeaders[i + 1];
    if (key === 'authorization') md.add('authorization', val);
    if (key === 'x-forwarded-host') forwardedHost ??= val;
    if (key === 'x-forwarded-for') forwardedFor ??= val;
    if (PERMANENT_HEADERS.has(key)) md.add(`grpcgateway-${key}`, val);
    else if (key.startsWith(METADATA_HEADER_PREFIX) && key.length > METADATA_HEADER_PREFIX.length) {
      const name = key.slice(METADATA_HEADER_PREFIX.length);
      if (name.endsWith('-bin')) {
        if (!/^[A-Za-z0-9+/]*={0,2}$/.test(val)) throw new BadMetadataError(`invalid binary header ${rawHeaders[i]}: illegal base64 data`);
        md.add(name, Buffer.from(val, 'base64'));
      } else {
        md.add(name, val);
      }
    }
  }
  const h = forwardedHost ?? host;
  if (h) md.set('x-forwarded-host', h);
  if (remoteIp) md.set('x-forwarded-for', forwardedFor ? `${forwardedFor}, ${remoteIp}` : remoteIp);
  return md;
}

/** grpc-gateway's timeoutDecode for the Grpc-Timeout header; undefined when absent, NaN when bad. */
export function grpcTimeoutMs(value: string | undefined): number | undefined {
  if (value === undefined || value === '') return undefined;
  const units: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 1e-3, n: 1e-6 };
  const unit = units[value[value.length - 1]];
  const n = value.slice(0, -1);
  if (value.length < 2 || unit === undefined || !/^[+-]?\d+$/.test(n)) return Number.NaN;
  return Number(n) * unit;
}
