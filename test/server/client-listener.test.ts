import * as net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { etcdctl } from '../support/etcdctl';
import { startMember, type Member } from '../support/member';

/**
 * The client port's protocol sniffing must not depend on how the client's first bytes are split
 * into TCP segments. grpc-go (etcdctl) may write the HTTP/2 preface and its SETTINGS separately;
 * the sniffer used to decide on the preface alone and then missed the handshake that fixes
 * etcdctl 3.4's scheme-prefixed :authority, so about one `endpoint status` in four failed with
 * "RST_STREAM with error code: PROTOCOL_ERROR".
 */

const PREFACE_BYTES = 24;
const SPLIT_PAUSE_MS = 30;

/** A TCP relay that forwards the client's first 24 bytes (the HTTP/2 preface) alone, then the rest. */
interface Relay {
  port: number;
  target: number;
  close(): void;
}

function splittingRelay(): Promise<Relay> {
  const relay: Relay = { port: 0, target: 0, close: () => server.close() };
  const server = net.createServer((client) => {
    const upstream = net.connect(relay.target, '127.0.0.1');
    upstream.setNoDelay(true);
    let sent = 0;
    let held: Buffer[] = [];
    let released = false;
    client.on('data', (chunk: Buffer) => {
      if (released) {
        upstream.write(chunk);
        return;
      }
      const head = chunk.subarray(0, Math.max(0, PREFACE_BYTES - sent));
      if (head.length > 0) upstream.write(head);
      sent += head.length;
      if (chunk.length > head.length) held.push(chunk.subarray(head.length));
      if (sent >= PREFACE_BYTES && held.length > 0) {
        setTimeout(() => {
          released = true;
          for (const h of held) upstream.write(h);
          held = [];
        }, SPLIT_PAUSE_MS);
      }
    });
    upstream.on('data', (d) => client.write(d));
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => {
      relay.port = (server.address() as net.AddressInfo).port;
      resolve(relay);
    }),
  );
}

let cairn: Member;
let relay: Relay;

beforeAll(async () => {
  relay = await splittingRelay();
  // The member advertises the relay, so `--cluster` commands reach it through the relay, with the
  // http:// URL from the member list as etcdctl 3.4's :authority.
  cairn = await startMember({ kind: 'cairn', extraArgs: ['--advertise-client-urls', `http://127.0.0.1:${relay.port}`] });
  relay.target = Number(new URL(cairn.clientUrl).port);
});
afterAll(async () => {
  relay?.close();
  await cairn?.cleanup();
});

describe('client port protocol sniffing', () => {
  it('serves etcdctl --cluster (http:// :authority) when the preface and SETTINGS arrive in separate segments', async () => {
    for (let i = 0; i < 5; i++) {
      const r = await etcdctl(cairn.endpoint, ['endpoint', 'status', '--cluster', '-w', 'json']);
      expect(r.stderr, r.stderr).not.toMatch(/PROTOCOL_ERROR/);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain(`http://127.0.0.1:${relay.port}`);
    }
  });
});
