import * as http from 'node:http';
import { status } from '@grpc/grpc-js';
import { goJsonString } from './codec';

/** grpc-gateway v1 runtime.HTTPStatusFromCode (the version etcd 3.4 is built with). */
export function httpStatusFromCode(code: number): number {
  switch (code) {
    case status.OK:
      return 200;
    case status.CANCELLED:
      return 408;
    case status.UNKNOWN:
      return 500;
    case status.INVALID_ARGUMENT:
      return 400;
    case status.DEADLINE_EXCEEDED:
      return 504;
    case status.NOT_FOUND:
      return 404;
    case status.ALREADY_EXISTS:
      return 409;
    case status.PERMISSION_DENIED:
      return 403;
    case status.UNAUTHENTICATED:
      return 401;
    case status.RESOURCE_EXHAUSTED:
      return 429;
    case status.FAILED_PRECONDITION:
      return 412;
    case status.ABORTED:
      return 409;
    case status.OUT_OF_RANGE:
      return 400;
    case status.UNIMPLEMENTED:
      return 501;
    case status.INTERNAL:
      return 500;
    case status.UNAVAILABLE:
      return 503;
    case status.DATA_LOSS:
      return 500;
    default:
      return 500;
  }
}

/** A gRPC status as the gateway sees it: code and message. */
export interface GatewayStatus {
  code: number;
  message: string;
}

/** runtime.DefaultHTTPError's body: `{"error": msg, "message": msg, "code": n}` (no details). */
export function errorBody(s: GatewayStatus): string {
  const m = goJsonString(s.message);
  return `{"error":${m},"message":${m},"code":${s.code}}`;
}

/** runtime.streamChunk for an error: a StreamError with proto names, zero fields left out. */
export function streamErrorChunk(s: GatewayStatus): string {
  const httpCode = httpStatusFromCode(s.code);
  const fields: string[] = [];
  if (s.code !== 0) fields.push(`"grpc_code":${s.code}`);
  fields.push(`"http_code":${httpCode}`);
  if (s.message) fields.push(`"message":${goJsonString(s.message)}`);
  fields.push(`"http_status":${goJsonString(http.STATUS_CODES[httpCode] ?? '')}`);
  return `{"error":{${fields.join(',')}}}`;
}

/** Go's http.Error: plain text, nosniff, the message and a newline (the mux's 404 and 405). */
export function goHttpError(res: http.ServerResponse, statusCode: number, message: string): void {
  res.writeHead(statusCode, { 'Content-Type': 'text/plain; charset=utf-8', 'X-Content-Type-Options': 'nosniff' }).end(`${message}\n`);
}
