/**
 * etcd's JSON gateway (grpc-gateway v1 under /v3/ and /v3beta/ on the client port) served by
 * dispatching each request into the gRPC handlers registered on the grpc-js Server (see call.ts):
 * validation, auth, metrics and error mapping are the gRPC path's. This file does what etcd's
 * generated *.pb.gw.go and grpc-gateway's runtime do around the call: route, decode the body,
 * frame the answer (one JSON object, or `{"result": ...}` lines for streams) and map the status.
 */
import type * as http from 'node:http';
import { StringDecoder } from 'node:string_decoder';
import type * as grpc from '@grpc/grpc-js';
import { status } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { CallCounts, MethodDesc } from '../../v3rpc/grpc-metrics';
import * as protobuf from 'protobufjs';
import { protoRoot } from '../../../proto';
import { BadMetadataError, GatewayCall, grpcTimeoutMs, metadataFromHeaders, type CallSink } from './call';
import { fromJson, JsonDecodeError, toJson } from './codec';
import { errorBody, goHttpError, httpStatusFromCode, streamErrorChunk, type GatewayStatus } from './errors';
import { scanNext } from './json-scanner';
import { gatewayPath, ROUTES } from './routes';

/** What the gateway needs of a registered service (server/embed/services.ts ClientService). */
export interface GatewayService {
  readonly name: string;
  readonly definition: grpc.ServiceDefinition;
  readonly implementation: grpc.UntypedServiceImplementation;
}

export interface GatewayOptions {
  /** gRPC's receive limit (--max-request-bytes + 512 KiB): the gateway's messages are held to it too. */
  maxMessageBytes: number;
  log: Logger;
  /**
   * Counts each call as a gRPC call (grpc_server_*, etcd_server_client_requests_total): etcd's
   * gateway is a gRPC client of its own member, so its requests show there (v3rpc/grpc-metrics.ts).
   */
  countCall?: (desc: MethodDesc, md: grpc.Metadata) => CallCounts;
}

/**
 * The JSON text of one request may be this many times the message limit (base64 grows bytes by
 * 4/3, escapes more); past it the body is refused without reading on. etcd's decoder has no bound
 * of its own, so this is cairn's, to keep memory bounded.
 */
export const MAX_JSON_TO_MESSAGE_RATIO = 4;

interface Method {
  readonly route: string;
  readonly definition?: grpc.MethodDefinition<unknown, unknown>;
  readonly handler?: (...args: never[]) => void;
  readonly requestType: protobuf.Type;
  readonly responseType: protobuf.Type;
  readonly fullName: string;
}

type Decoded =
  | { kind: 'more' }
  | { kind: 'eof' }
  | { kind: 'error'; error: GatewayStatus }
  | { kind: 'request'; request: { value: unknown } | { status: GatewayStatus }; end: number };

const JSON_TYPE = 'application/json';
/** The shortest delay Node's timers honour. */
const MIN_TIMER_MS = 1;
const DEADLINE_EXCEEDED: GatewayStatus = { code: status.DEADLINE_EXCEEDED, message: 'context deadline exceeded' };
/** grpc-gateway forwards the server's header metadata as Grpc-Metadata-*: grpc's content-type. */
const SERVER_HEADER_MD = { 'Grpc-Metadata-Content-Type': 'application/grpc' };
/** A status the server sent (trailers-only): its metadata is announced as a trailer. */
const SERVER_TRAILER_MD = { 'Grpc-Trailer-Content-Type': 'application/grpc' };

export class Gateway {
  private readonly methods = new Map<string, Method>();
  private readonly maxBodyBytes: number;

  constructor(
    services: readonly GatewayService[],
    private readonly opts: GatewayOptions,
  ) {
    this.maxBodyBytes = opts.maxMessageBytes * MAX_JSON_TO_MESSAGE_RATIO;
    const root = protoRoot();
    for (const [path, r] of ROUTES) {
      const svc = services.find((s) => s.name === r.service);
      const rpc = root.lookupService(r.service).methods[r.method];
      rpc.resolve();
      this.methods.set(path, {
        route: path,
        definition: svc?.definition[r.method] as grpc.MethodDefinition<unknown, unknown> | undefined,
        handler: svc?.implementation[r.method] as ((...args: never[]) => void) | undefined,
        requestType: rpc.resolvedRequestType!,
        responseType: rpc.resolvedResponseType!,
        fullName: `/${r.service}/${r.method}`,
      });
    }
  }

  /** Serves the request if its path is the gateway's (/v3/..., /v3beta/...); false otherwise. */
  handle(req: http.IncomingMessage, res: http.ServerResponse): boolean {
    const pathname = new URL(req.url ?? '/', 'http://localhost').pathname;
    if (pathname === '/v3') {
      // Go's ServeMux: a subtree pattern redirects its bare name.
      res.writeHead(301, { Location: '/v3/' }).end();
      return true;
    }
    const path = gatewayPath(pathname);
    if (path === undefined) return false;
    const method = this.methods.get(path);
    if (!method) goHttpError(res, 404, 'Not Found');
    else if (req.method !== 'POST') goHttpError(res, 405, 'Method Not Allowed');
    else this.serve(method, req, res);
    return true;
  }

  private serve(m: Method, req: http.IncomingMessage, res: http.ServerResponse): void {
    let md: grpc.Metadata;
    const timeoutMs = grpcTimeoutMs(header(req, 'grpc-timeout'));
    try {
      if (Number.isNaN(timeoutMs)) throw new BadMetadataError(`invalid grpc-timeout: ${header(req, 'grpc-timeout')}`);
      md = metadataFromHeaders(req.rawHeaders, req.headers.host, req.socket.remoteAddress);
    } catch (e) {
      plainError(res, { code: status.INVALID_ARGUMENT, message: (e as Error).message });
      req.resume();
      return;
    }
    const def = m.definition;
    const start = (request: unknown, sink: CallSink): GatewayCall => {
      const deadline = timeoutMs === undefined ? Infinity : new Date(Date.now() + timeoutMs);
      const encode = (msg: unknown): string => toJson(m.responseType, m.responseType.decode(def!.responseSerialize(msg)));
      const counts = def ? this.opts.countCall?.(def, md) : undefined;
      const counted: CallSink = !counts
        ? sink
        : {
            message: (json) => {
              counts.sent();
              return sink.message(json);
            },
            onceDrained: (fn) => sink.onceDrained(fn),
            finish: (st, fromServer) => {
              counts.finish(st?.code ?? status.OK);
              sink.finish(st, fromServer);
            },
          };
      const call = new GatewayCall(request, md, peerOf(req), deadline, m.fullName, encode, counted);
      if (counts) {
        if (request !== undefined) counts.received();
        call.on('data', () => counts.received());
        call.on('cancelled', () => counts.cancelled());
      }
      res.on('close', () => call.cancel());
      if (timeoutMs !== undefined) {
        const timer = setTimeout(() => {
          // The gateway's context expired: answered by the gateway, not the server (no trailer);
          // the server's handler sees its deadline pass (grpc-go: DeadlineExceeded).
          counted.finish(DEADLINE_EXCEEDED, false);
          call.cancel();
        }, timeoutMs);
        res.on('close', () => clearTimeout(timer));
      }
      return call;
    };
    if (def?.requestStream) {
      this.serveClientStream(m, req, res, start);
      return;
    }
    void this.readBody(req).then(
      (text) => {
        if (text === undefined) {
          serverError(res, this.tooLarge(this.maxBodyBytes + 1));
          return;
        }
        const d = this.decode(m, text, 0, true, status.INVALID_ARGUMENT);
        if (d.kind === 'error') {
          plainError(res, d.error);
          return;
        }
        if (!def || !m.handler) {
          serverError(res, unimplemented(m));
          return;
        }
        // An empty body is an empty request (the decoder's io.EOF is ignored).
        const request = d.kind === 'request' ? d.request : this.decodeBytes(m, new Uint8Array(0));
        if ('status' in request) {
          serverError(res, request.status);
          return;
        }
        if (timeoutMs !== undefined && timeoutMs < MIN_TIMER_MS) {
          // A deadline shorter than a timer tick has passed before the call (grpc-go checks the
          // context before sending), so the answer does not race the handler.
          plainError(res, DEADLINE_EXCEEDED);
          return;
        }
        if (def.responseStream) {
          const call = start(request.value, new StreamSink(res));
          (m.handler as (c: GatewayCall) => void)(call);
        } else {
          const call = start(request.value, new UnarySink(res));
          (m.handler as (c: GatewayCall, cb: GatewayCall['callback']) => void)(call, call.callback);
        }
      },
      (e: unknown) => this.opts.log.debug({ err: e }, 'gateway: request body not read'),
    );
  }

  /**
   * Watch and LeaseKeepAlive (request_Watch_Watch_0): every JSON value in the body is one request
   * on the stream; the first one must decode (else the answer is an error with code Unknown), a
   * later bad value or the end of the body half-closes the stream. The response stays open until
   * the handler ends it or the client goes away.
   */
  private serveClientStream(m: Method, req: http.IncomingMessage, res: http.ServerResponse, start: (request: unknown, sink: CallSink) => GatewayCall): void {
    const decoder = new StringDecoder('utf8');
    let text = '';
    let call: GatewayCall | undefined;
    let done = false;
    // An unfinished value is scanned again only once the text has doubled (or the body ended), so a
    // large request arriving in many chunks costs O(n log n), not O(n^2).
    let rescanAt = 0;
    const stop = (): void => {
      done = true;
      req.resume();
    };
    const pump = (atEnd: boolean): void => {
      while (!done) {
        if (!atEnd && text.length < rescanAt && text.length <= this.maxBodyBytes) return;
        let d = this.decode(m, text, 0, atEnd, status.UNKNOWN);
        if (d.kind === 'more') {
          rescanAt = 2 * text.length;
          if (text.length <= this.maxBodyBytes) return;
          d = { kind: 'error', error: this.tooLarge(text.length) };
        }
        if (d.kind === 'error' && !call) {
          // The first value decides the HTTP answer (the generated code returns the decode error).
          stop();
          plainError(res, d.error);
          return;
        }
        if (d.kind !== 'request') {
          // The end of the body, or a bad later value: the gateway half-closes the stream.
          stop();
          call ??= this.startStream(m, res, start);
          call?.emit('end');
          return;
        }
        text = text.slice(d.end);
        rescanAt = 0;
        call ??= this.startStream(m, res, start);
        if (!call) return stop();
        if ('status' in d.request) {
          stop();
          call.emit('error', { code: d.request.status.code, details: d.request.status.message });
          return;
        }
        call.emit('data', d.request.value);
      }
    };
    req.on('data', (chunk: Buffer) => {
      if (done) return; // the requests have ended: the rest of the body is drained unread
      text += decoder.write(chunk);
      pump(false);
    });
    req.on('end', () => {
      if (done) return;
      text += decoder.end();
      pump(true);
    });
  }

  private startStream(m: Method, res: http.ServerResponse, start: (request: unknown, sink: CallSink) => GatewayCall): GatewayCall | undefined {
    if (!m.definition || !m.handler) {
      new StreamSink(res).finish(unimplemented(m));
      return undefined;
    }
    const call = start(undefined, new StreamSink(res));
    (m.handler as (c: GatewayCall) => void)(call);
    return call;
  }

  /**
   * One JSON value of the body as the handler's request, decoded by the same deserializer grpc-js
   * uses, so a handler cannot tell the two paths apart. `errorCode` is what a bad value answers:
   * InvalidArgument for unary calls (status.Errorf in the generated code), Unknown for streams.
   */
  private decode(m: Method, text: string, offset: number, atEnd: boolean, errorCode: number): Decoded {
    const r = scanNext(text, offset, atEnd);
    if (r.kind === 'more') return { kind: 'more' };
    if (r.kind === 'eof') return { kind: 'eof' };
    if (r.kind === 'error') return { kind: 'error', error: { code: errorCode, message: r.message } };
    let bytes: Uint8Array;
    try {
      const obj = fromJson(m.requestType, r.node);
      bytes = m.requestType.encode(m.requestType.fromObject(obj)).finish();
    } catch (e) {
      if (e instanceof JsonDecodeError) return { kind: 'error', error: { code: errorCode, message: e.message } };
      throw e;
    }
    return { kind: 'request', request: this.decodeBytes(m, bytes), end: r.end };
  }

  private decodeBytes(m: Method, bytes: Uint8Array): { value: unknown } | { status: GatewayStatus } {
    // The server's receive limit, with grpc-go's message (the gateway is a grpc-go client).
    if (bytes.length > this.opts.maxMessageBytes) return { status: this.tooLarge(bytes.length) };
    const def = m.definition;
    return { value: def ? def.requestDeserialize(Buffer.from(bytes)) : undefined };
  }

  private tooLarge(n: number): GatewayStatus {
    return { code: status.RESOURCE_EXHAUSTED, message: `grpc: received message larger than max (${n} vs. ${this.opts.maxMessageBytes})` };
  }

  /** The whole body of a unary request, or undefined once it passes maxBodyBytes. */
  private readBody(req: http.IncomingMessage): Promise<string | undefined> {
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      req.on('data', (c: Buffer) => {
        size += c.length;
        if (size > this.maxBodyBytes) {
          req.removeAllListeners('data');
          req.resume();
          resolve(undefined);
          return;
        }
        chunks.push(c);
      });
      req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
      req.on('error', reject);
    });
  }
}

function header(req: http.IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function peerOf(req: http.IncomingMessage): string {
  const ip = req.socket.remoteAddress ?? '';
  return `${ip.includes(':') ? `[${ip}]` : ip}:${req.socket.remotePort ?? 0}`;
}

function unimplemented(m: Method): GatewayStatus {
  // grpc-js's answer for a service that is not registered (as cairn's gRPC port gives it).
  return { code: status.UNIMPLEMENTED, message: `The server does not implement the method ${m.fullName}` };
}

/** An error the gateway itself raises (bad body, bad header): no server metadata. */
function plainError(res: http.ServerResponse, s: GatewayStatus): void {
  if (res.headersSent) return;
  const body = errorBody(s);
  res.writeHead(httpStatusFromCode(s.code), { 'Content-Type': JSON_TYPE, 'Content-Length': Buffer.byteLength(body) }).end(body);
}

/** A status the server answered with: runtime.HTTPError with the trailer metadata announced. */
function serverError(res: http.ServerResponse, s: GatewayStatus): void {
  if (res.headersSent) return;
  res.writeHead(httpStatusFromCode(s.code), { 'Content-Type': JSON_TYPE, Trailer: Object.keys(SERVER_TRAILER_MD).join(', ') });
  res.write(errorBody(s));
  res.addTrailers(SERVER_TRAILER_MD);
  res.end();
}

/** runtime.ForwardResponseMessage: one JSON object with Content-Length. */
class UnarySink implements CallSink {
  private body = '';
  constructor(private readonly res: http.ServerResponse) {}
  message(json: string): boolean {
    this.body = json;
    return true;
  }
  onceDrained(fn: () => void): void {
    fn();
  }
  finish(s?: GatewayStatus, fromServer = true): void {
    if (this.res.headersSent || this.res.destroyed) return;
    if (!s) this.res.writeHead(200, { 'Content-Type': JSON_TYPE, ...SERVER_HEADER_MD, 'Content-Length': Buffer.byteLength(this.body) }).end(this.body);
    else if (fromServer) serverError(this.res, s);
    else plainError(this.res, s);
  }
}

/**
 * runtime.ForwardResponseStream: chunked, `{"result": msg}` and a newline per message; an error
 * is one `{"error": {...}}` chunk, with the HTTP status of its code if nothing was written yet.
 */
class StreamSink implements CallSink {
  constructor(private readonly res: http.ServerResponse) {}
  private head(statusCode: number, serverMd: boolean): void {
    if (this.res.headersSent) return;
    this.res.writeHead(statusCode, { 'Content-Type': JSON_TYPE, ...(serverMd ? SERVER_HEADER_MD : {}), 'Transfer-Encoding': 'chunked' });
  }
  message(json: string): boolean {
    if (this.res.destroyed) return true;
    this.head(200, true);
    return this.res.write(`{"result":${json}}\n`);
  }
  onceDrained(fn: () => void): void {
    if (this.res.destroyed || !this.res.writableNeedDrain) process.nextTick(fn);
    else this.res.once('drain', fn);
  }
  finish(s?: GatewayStatus, fromServer = true): void {
    if (this.res.destroyed || this.res.writableEnded) return;
    if (!s) {
      this.head(200, true);
      this.res.end();
      return;
    }
    if (!this.res.headersSent && !fromServer) {
      plainError(this.res, s);
      return;
    }
    this.head(httpStatusFromCode(s.code), false);
    this.res.end(streamErrorChunk(s));
  }
}
