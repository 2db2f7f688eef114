/**
 * A call's request metadata read from its HTTP/2 headers on demand (unary-fast-path.ts). grpc-js
 * builds a Metadata of every header for every call, then removes its transport headers from it;
 * the KV handlers and the call counters only ever look up two or three keys, so `get` reads the
 * header itself, with Metadata.fromHttp2Headers's rules (a `-bin` value is base64, a custom one may
 * list several, comma-separated), and any other use fills the Metadata first, as grpc-js would have.
 */
import type * as http2 from 'node:http2';
import { Metadata, type MetadataValue } from '@grpc/grpc-js';

/** The headers grpc-js removes from the metadata it hands to handlers (BaseServerInterceptingCall). */
const TRANSPORT_HEADERS = new Set(['grpc-timeout', 'grpc-encoding', 'grpc-accept-encoding', 'accept-encoding', 'te', 'content-type']);

function valuesOf(key: string, header: string | string[]): MetadataValue[] {
  if (!key.endsWith('-bin')) return Array.isArray(header) ? [...header] : [header];
  if (Array.isArray(header)) return header.map((v) => Buffer.from(v, 'base64'));
  if (!key.startsWith('grpc-')) return header.split(',').map((v) => Buffer.from(v.trim(), 'base64'));
  return [Buffer.from(header, 'base64')];
}

function isMetadataKey(key: string): boolean {
  return key.charAt(0) !== ':' && !TRANSPORT_HEADERS.has(key);
}

export class RequestMetadata extends Metadata {
  private filled = false;

  constructor(private readonly headers: http2.IncomingHttpHeaders) {
    super();
  }

  override get(key: string): MetadataValue[] {
    if (this.filled) return super.get(key);
    const k = key.toLowerCase();
    const header = isMetadataKey(k) ? this.headers[k] : undefined;
    return header === undefined ? [] : valuesOf(k, header);
  }

  private fill(): void {
    if (this.filled) return;
    this.filled = true;
    for (const key of Object.keys(this.headers)) {
      const header = this.headers[key];
      if (header === undefined || !isMetadataKey(key)) continue;
      try {
        for (const v of valuesOf(key, header)) super.add(key, v);
      } catch {
        // grpc-js logs and skips a header that is not a valid metadata entry.
      }
    }
  }

  override set(key: string, value: MetadataValue): void {
    this.fill();
    super.set(key, value);
  }

  override add(key: string, value: MetadataValue): void {
    this.fill();
    super.add(key, value);
  }

  override remove(key: string): void {
    this.fill();
    super.remove(key);
  }

  override getMap(): { [key: string]: MetadataValue } {
    this.fill();
    return super.getMap();
  }

  override clone(): Metadata {
    this.fill();
    return super.clone();
  }

  override merge(other: Metadata): void {
    this.fill();
    super.merge(other);
  }

  override toHttp2Headers(): http2.OutgoingHttpHeaders {
    this.fill();
    return super.toHttp2Headers();
  }

  override toJSON(): { [key: string]: MetadataValue[] } {
    this.fill();
    return super.toJSON();
  }
}
