import * as grpc from '@grpc/grpc-js';
import * as fs from 'node:fs';
import * as http from 'node:http';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClientListener } from '../../server/embed/client-listener';
import { verifiedCommonName } from '../../server/transport/tls/peer-identity';
import type { TLSInfo } from '../../server/transport/tls/tls-info';
import { makePki, type TestPki } from '../support/certs';

/**
 * The auth layer reads the verified client certificate's CN from a grpc-js call
 * (verifiedCommonName(call), i.e. call.getAuthContext().sslPeerCertificate). This pins that the
 * client listener hands grpc-js the TLS socket so that works, and that plaintext gives no CN.
 */

const identity = (b: Buffer): Buffer => b;
const ECHO: grpc.ServiceDefinition = {
  WhoAmI: { path: '/test.Echo/WhoAmI', requestStream: false, responseStream: false, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity },
};

function tlsInfo(pki: TestPki): TLSInfo {
  return {
    certFile: pki.server.cert, keyFile: pki.server.key, trustedCAFile: pki.ca, clientCertAuth: true, crlFile: '',
    allowedCN: '', allowedHostname: '', checkClientSAN: false, ciphers: '', minVersion: 'TLSv1.2', maxVersion: undefined, autoTls: false, selfSigned: false,
  };
}

function whoAmI(port: number, creds: grpc.ChannelCredentials): Promise<string> {
  const client = new grpc.Client(`127.0.0.1:${port}`, creds);
  return new Promise<string>((resolve, reject) =>
    client.makeUnaryRequest('/test.Echo/WhoAmI', identity, identity, Buffer.alloc(0), { deadline: Date.now() + 5000 }, (err, res) => {
      client.close();
      if (err || !res) reject(err ?? new Error('no response'));
      else resolve(res.toString());
    }),
  );
}

describe('verified client certificate for handlers', () => {
  let pki: TestPki;
  const listeners: ClientListener[] = [];
  const server = new grpc.Server();
  server.addService(ECHO, {
    WhoAmI: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => cb(null, Buffer.from(verifiedCommonName(call) ?? '<none>')),
  });
  const injector = server.createConnectionInjector(grpc.ServerCredentials.createInsecure());
  const log = pino({ level: 'silent' });

  beforeAll(async () => {
    pki = makePki();
    for (const url of ['https://127.0.0.1:0', 'http://127.0.0.1:0']) {
      const l = new ClientListener(new URL(url), { grpc: (s) => injector.injectConnection(s), http: http.createServer() }, log, tlsInfo(pki));
      await l.listen();
      listeners.push(l);
    }
  });
  afterAll(async () => {
    for (const l of listeners) await l.close();
    injector.destroy();
    server.forceShutdown();
    pki.cleanup();
  });

  it('reports the CN of the verified client certificate over TLS, and none in plaintext', async () => {
    const read = (f: string): Buffer => fs.readFileSync(f);
    const creds = grpc.credentials.createSsl(read(pki.ca), read(pki.client.key), read(pki.client.cert));
    expect(await whoAmI(listeners[0].address().port, creds)).toBe('root');
    const alice = pki.issue('alice', { cn: 'alice' });
    expect(await whoAmI(listeners[0].address().port, grpc.credentials.createSsl(read(pki.ca), read(alice.key), read(alice.cert)))).toBe('alice');
    expect(await whoAmI(listeners[1].address().port, grpc.credentials.createInsecure())).toBe('<none>');
  });

  it('refuses a client certificate from another CA before any handler runs', async () => {
    const read = (f: string): Buffer => fs.readFileSync(f);
    const creds = grpc.credentials.createSsl(read(pki.ca), read(pki.otherClient.key), read(pki.otherClient.cert));
    await expect(whoAmI(listeners[0].address().port, creds)).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });
  });
});
