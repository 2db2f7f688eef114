/**
 * The KV service's unary calls served straight off the HTTP/2 stream, in front of grpc-js's own
 * handling on the same server and connections. At 100 clients putting, grpc-js's per-call machinery
 * (an interceptor chain with a filter stack, a Metadata object built from the headers and a second
 * one for the response, a stream decoder, a timer per deadline, the status sent only from the write
 * callback) was ~25% of a member's main thread and ~60% of what it allocates, and the garbage it
 * leaves is collected on V8's helper threads at a cost close to half the main thread's
 * (BENCHMARKS.md). What a call does here is what grpc-js 1.14 does for a unary method, on the wire
 * and to the handler:
 *  - the same response headers (`content-type: application/grpc+proto`, grpc-accept-encoding,
 *    grpc-encoding identity), message framing, `grpc-status`/`grpc-message` trailers (a
 *    trailers-only response for a failure before any message), and error statuses and texts (too
 *    large a message, none or two, undecodable, a handler that throws, the deadline passing);
 *  - the handler gets the request, the metadata, getPeer, getDeadline, getAuthContext (the verified
 *    client certificate on TLS) and the `cancelled` flag and event, through the same callback;
 *  - every call is counted by the same counters as the grpc-js interceptor (grpc-metrics.ts) and the
 *    bytes by the same byte-counting definitions.
 * Anything else (another method, a compressed request, a malformed grpc-timeout, a content-type
 * grpc-js would refuse) is left to grpc-js, which answers it as before.
 */
import { EventEmitter } from 'node:events';
import type * as http2 from 'node:http2';
import * as tls from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import type { CallCounts, MethodDesc } from './grpc-metrics';
import { RequestMetadata } from './request-metadata';

/** grpc-js's defaultResponseHeaders (server-interceptors.ts): all a trailers-only response carries. */
const STATUS_HEADERS: http2.OutgoingHttpHeaders = { ':status': 200, 'content-type': 'application/grpc+proto' };
/** Plus its defaultCompressionHeaders, on the headers before a message. */
const RESPONSE_HEADERS: http2.OutgoingHttpHeaders = { ...STATUS_HEADERS, 'grpc-accept-encoding': 'identity,deflate,gzip', 'grpc-encoding': 'identity' };
/** grpc-js's DEADLINE_REGEX and deadlineUnitsToMs. */
const DEADLINE_REGEX = /(\d{1,8})\s*([HMSmun])/;
const DEADLINE_UNIT_MS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1_000, m: 1, u: 0.001, n: 0.000001 };
/** The 5-byte gRPC message prefix: compressed flag and big-endian length. */
const PREFIX_BYTES = 5;
/** Up to this size a response is copied behind its prefix into one write; above, written after it. */
const COPY_INTO_FRAME_MAX_BYTES = 64 * 1024;

function messagePrefix(length: number): Buffer {
  const prefix = Buffer.allocUnsafe(PREFIX_BYTES);
  prefix[0] = 0;
  prefix.writeUInt32BE(length, 1);
  return prefix;
}

export interface FastUnaryMethod {
  readonly definition: grpc.MethodDefinition<unknown, unknown>;
  readonly handler: grpc.handleUnaryCall<unknown, unknown>;
}

export interface UnaryFastPathOptions {
  /** grpc.max_receive_message_length of the grpc-js server. */
  readonly maxReceiveMessageBytes: number;
  readonly countCall: (desc: MethodDesc, md: grpc.Metadata) => CallCounts;
}

interface Status {
  code: grpc.status;
  details: string;
  metadata?: grpc.Metadata | null;
}

export class UnaryFastPath {
  private readonly methods = new Map<string, FastUnaryMethod>();

  constructor(
    methods: readonly FastUnaryMethod[],
    private readonly opts: UnaryFastPathOptions,
  ) {
    for (const m of methods) {
      if (m.definition.requestStream || m.definition.responseStream) throw new Error(`${m.definition.path} is not a unary method`);
      this.methods.set(m.definition.path, m);
    }
  }

  /**
   * Puts the fast path in front of the 'stream' listeners of grpc-js's HTTP/2 server: a stream it
   * serves never reaches them, every other one does, unchanged.
   */
  attach(server: http2.Http2Server): void {
    const emit = server.emit.bind(server);
    server.emit = (event: string | symbol, ...args: unknown[]): boolean => {
      if (event === 'stream' && this.serve(args[0] as http2.ServerHttp2Stream, args[1] as http2.IncomingHttpHeaders)) return true;
      return emit(event, ...args);
    };
  }

  /** Serves the stream when it is a call of one of the methods grpc-js would handle plainly. */
  serve(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): boolean {
    const path = headers[':path'];
    const method = path === undefined ? undefined : this.methods.get(path);
    if (!method) return false;
    const contentType = headers['content-type'];
    if (typeof contentType !== 'string' || !contentType.startsWith('application/grpc')) return false;
    const encoding = headers['grpc-encoding'];
    if (encoding !== undefined && encoding !== 'identity') return false;
    let timeoutMs: number | undefined;
    const timeout = headers['grpc-timeout'];
    if (timeout !== undefined) {
      const m = DEADLINE_REGEX.exec(String(timeout));
      if (m === null) return false;
      timeoutMs = (Number(m[1]) * DEADLINE_UNIT_MS[m[2]]) | 0;
    }
    new FastUnaryCall(stream, headers, method, this.opts, timeoutMs).start();
    return true;
  }
}

/** One unary call: what grpc-js's ServerUnaryCall gives a handler, and the stream it answers on. */
class FastUnaryCall extends EventEmitter {
  cancelled = false;
  readonly metadata: grpc.Metadata;
  request: unknown = null;
  private readonly counts: CallCounts;
  private readonly deadline: number;
  private deadlineTimer: NodeJS.Timeout | undefined;
  private chunks: Buffer[] = [];
  private bufferedBytes = 0;
  /** The first message's prefix and body, once its prefix has arrived. */
  private expectedBytes: number | undefined;
  /** Set once a status went out (or the stream closed): nothing more is written. */
  private done = false;

  constructor(
    private readonly stream: http2.ServerHttp2Stream,
    headers: http2.IncomingHttpHeaders,
    private readonly method: FastUnaryMethod,
    private readonly opts: UnaryFastPathOptions,
    timeoutMs: number | undefined,
  ) {
    super();
    this.metadata = new RequestMetadata(headers);
    this.counts = opts.countCall(method.definition, this.metadata);
    this.deadline = timeoutMs === undefined ? Infinity : Date.now() + timeoutMs;
    if (timeoutMs !== undefined) this.deadlineTimer = setTimeout(() => this.fail({ code: grpc.status.DEADLINE_EXCEEDED, details: 'Deadline exceeded' }), timeoutMs);
  }

  start(): void {
    const stream = this.stream;
    // As grpc-js: a stream error is followed by its close, which is what is acted on.
    stream.on('error', () => undefined);
    stream.once('close', () => this.closed());
    stream.on('data', (chunk: Buffer) => this.received(chunk));
    stream.once('end', () => this.halfClosed());
  }

  getPeer(): string {
    const socket = this.stream.session?.socket;
    if (!socket?.remoteAddress) return 'unknown';
    return socket.remotePort ? `${socket.remoteAddress}:${socket.remotePort}` : socket.remoteAddress;
  }

  getDeadline(): number {
    return this.deadline;
  }

  getPath(): string {
    return this.method.definition.path;
  }

  /** grpc-js's getAuthContext: the peer certificate of an authorized TLS connection. */
  getAuthContext(): { transportSecurityType?: string; sslPeerCertificate?: tls.PeerCertificate } {
    const socket = this.stream.session?.socket;
    if (!(socket instanceof tls.TLSSocket) || !socket.authorized) return {};
    const cert = socket.getPeerCertificate();
    return { transportSecurityType: 'ssl', sslPeerCertificate: cert.raw ? cert : undefined };
  }

  private received(chunk: Buffer): void {
    if (this.done) return;
    this.chunks.push(chunk);
    this.bufferedBytes += chunk.length;
    if (this.expectedBytes === undefined) {
      if (this.bufferedBytes < PREFIX_BYTES) return;
      const head = this.chunks.length === 1 ? chunk : Buffer.concat(this.chunks);
      this.chunks = [head];
      const length = head.readUInt32BE(1);
      const max = this.opts.maxReceiveMessageBytes;
      // grpc-js's StreamDecoder fails the call with RESOURCE_EXHAUSTED as soon as the prefix is read.
      if (max !== -1 && length > max) {
        this.fail({ code: grpc.status.RESOURCE_EXHAUSTED, details: `Received message larger than max (${length} vs ${max})` });
        return;
      }
      this.expectedBytes = PREFIX_BYTES + length;
    }
    // Bytes past the first message are a second one (grpc-js answers a complete second message so;
    // a partial one it would drop at the half-close is refused here too).
    if (this.bufferedBytes > this.expectedBytes) {
      this.fail({ code: grpc.status.UNIMPLEMENTED, details: `Received a second request message for server streaming method ${this.getPath()}` });
    }
  }

  private halfClosed(): void {
    if (this.done) return;
    const expected = this.expectedBytes;
    if (expected === undefined || this.bufferedBytes < expected) {
      this.fail({ code: grpc.status.UNIMPLEMENTED, details: `Received no request message for server streaming method ${this.getPath()}` });
      return;
    }
    const body = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks, this.bufferedBytes);
    this.chunks = [];
    this.counts.received();
    try {
      // A set compressed flag with identity encoding is read as it is, as grpc-js does.
      this.request = this.method.definition.requestDeserialize(body.subarray(PREFIX_BYTES, expected));
    } catch {
      this.fail({ code: grpc.status.INTERNAL, details: 'Error deserializing request' });
      return;
    }
    try {
      this.method.handler(this as unknown as grpc.ServerUnaryCall<unknown, unknown>, this.respond);
    } catch {
      this.fail({ code: grpc.status.UNKNOWN, details: 'Unknown error' });
    }
  }

  /** The handler's sendUnaryData callback (grpc-js handleUnary's respond). */
  private readonly respond = (err: grpc.ServerErrorResponse | Partial<grpc.StatusObject> | null, value?: unknown, trailer?: grpc.Metadata): void => {
    if (err) {
      this.fail(statusOfError(err, trailer));
      return;
    }
    if (this.done || this.stream.destroyed || this.stream.closed) return;
    let message: Buffer;
    try {
      message = this.method.definition.responseSerialize(value);
    } catch {
      this.fail({ code: grpc.status.INTERNAL, details: 'Error serializing response' });
      return;
    }
    this.finish(grpc.status.OK);
    this.counts.sent();
    const trailers = { 'grpc-status': grpc.status.OK, 'grpc-message': 'OK', ...trailer?.toHttp2Headers() };
    this.stream.once('wantTrailers', () => this.stream.sendTrailers(trailers));
    this.stream.respond(RESPONSE_HEADERS, { waitForTrailers: true });
    if (message.length > COPY_INTO_FRAME_MAX_BYTES) {
      // A large Range: the prefix on its own, so the response is not copied once more (grpc-js
      // copies every message into its framed buffer, 300 MB for a 300k-key list).
      this.stream.write(messagePrefix(message.length));
      this.stream.end(message);
      return;
    }
    this.stream.end(Buffer.concat([messagePrefix(message.length), message]));
  };

  /** A status before any message: grpc-js's trailers-only response. */
  private fail(s: Status): void {
    if (this.done || this.stream.destroyed || this.stream.closed) return;
    this.finish(s.code);
    this.stream.respond({ 'grpc-status': s.code, 'grpc-message': encodeURI(s.details), ...STATUS_HEADERS, ...s.metadata?.toHttp2Headers() }, { endStream: true });
    // As grpc-js's notifyOnCancel after a status: the handler sees the call cancelled (a deadline
    // that passed while it ran), and what the client still sends is read and dropped.
    this.notifyCancelled();
  }

  private finish(code: grpc.status): void {
    this.done = true;
    if (this.deadlineTimer) clearTimeout(this.deadlineTimer);
    this.counts.finish(code);
  }

  /** The stream closed: a call that had not answered yet was cancelled by the client. */
  private closed(): void {
    if (!this.done) {
      this.done = true;
      if (this.deadlineTimer) clearTimeout(this.deadlineTimer);
      this.counts.cancelled();
    }
    this.notifyCancelled();
  }

  private notifyCancelled(): void {
    if (this.cancelled) return;
    this.cancelled = true;
    process.nextTick(() => this.emit('cancelled', 'cancelled'));
  }
}

/** grpc-js's serverErrorToStatus. */
function statusOfError(error: grpc.ServerErrorResponse | Partial<grpc.StatusObject>, trailer: grpc.Metadata | undefined): Status {
  const s: Status = {
    code: grpc.status.UNKNOWN,
    details: 'message' in error && typeof error.message === 'string' ? error.message : 'Unknown Error',
    metadata: trailer ?? error.metadata ?? null,
  };
  if ('code' in error && typeof error.code === 'number' && Number.isInteger(error.code)) {
    s.code = error.code;
    if ('details' in error && typeof error.details === 'string') s.details = error.details;
  }
  return s;
}

/** The unary methods of a service, with the handlers registered for them on grpc-js. */
export function unaryMethods(def: grpc.ServiceDefinition, impl: grpc.UntypedServiceImplementation): FastUnaryMethod[] {
  const out: FastUnaryMethod[] = [];
  for (const [name, d] of Object.entries(def)) {
    const handler = impl[name];
    if (d.requestStream || d.responseStream || typeof handler !== 'function') continue;
    out.push({ definition: d as grpc.MethodDefinition<unknown, unknown>, handler: handler as grpc.handleUnaryCall<unknown, unknown> });
  }
  return out;
}

/**
 * The HTTP/2 server behind the grpc-js Server's connection injector (the last one it created).
 * grpc-js keeps it in a private map; without that map (another grpc-js version) this is undefined
 * and every call keeps grpc-js's own path.
 */
export function injectedHttp2Server(server: grpc.Server): http2.Http2Server | undefined {
  const servers = (server as unknown as { http2Servers?: unknown }).http2Servers;
  if (!(servers instanceof Map)) return undefined;
  let last: unknown;
  for (const k of servers.keys()) last = k;
  return last instanceof EventEmitter && typeof (last as { emit?: unknown }).emit === 'function' ? (last as http2.Http2Server) : undefined;
}
