import * as grpc from '@grpc/grpc-js';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { issueLeaf, makeCaIn } from './pki';

/**
 * `npm run jepsen -- --tls`: the run's members serve client and peer traffic over mutual TLS
 * (kubeadm's layout: one CA, --client-cert-auth, --peer-client-cert-auth) and every harness client
 * presents a CA-signed client certificate. The TCP fault proxies between members forward the TLS
 * bytes unchanged, so every nemesis works as in a plaintext run.
 */
export interface HarnessTls {
  ca: string;
  member: { cert: string; key: string };
  client: { cert: string; key: string };
}

/** Makes the run's CA, member and client certificates in `dir` (openssl). */
export function harnessTls(dir: string): HarnessTls {
  fs.mkdirSync(dir, { recursive: true });
  makeCaIn(dir, 'ca');
  return { ca: path.join(dir, 'ca.crt'), member: issueLeaf(dir, 'member', { cn: 'member' }), client: issueLeaf(dir, 'client', { cn: 'jepsen' }) };
}

export function tlsMemberFlags(t: HarnessTls): string[] {
  return [
    '--cert-file', t.member.cert, '--key-file', t.member.key, '--trusted-ca-file', t.ca, '--client-cert-auth',
    '--peer-cert-file', t.member.cert, '--peer-key-file', t.member.key, '--peer-trusted-ca-file', t.ca, '--peer-client-cert-auth',
  ];
}

export function clientCredentials(t: HarnessTls): grpc.ChannelCredentials {
  return grpc.credentials.createSsl(fs.readFileSync(t.ca), fs.readFileSync(t.client.key), fs.readFileSync(t.client.cert));
}
