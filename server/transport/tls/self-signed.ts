import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import forge from 'node-forge';
import type { Logger } from 'pino';

/** etcd's SelfCert key size is a P-256 ECDSA key; node-forge signs RSA only, so RSA 2048 it is. */
const SELF_SIGNED_RSA_BITS = 2048;

export interface SelfSignedPair {
  certFile: string;
  keyFile: string;
}

/**
 * --auto-tls / --peer-auto-tls (etcd's transport.SelfCert): a self-signed certificate for the
 * hosts of the listen URLs, written to `dir`/cert.pem and key.pem (etcd uses
 * <data-dir>/fixtures/client and fixtures/peer). An existing pair there is reused, as etcd does,
 * so a restarted member keeps its certificate. Generated with node-forge (key generation uses
 * Node's native crypto); the member never shells out to openssl.
 */
export function selfCert(log: Logger, dir: string, hosts: string[], validityYears: number): SelfSignedPair {
  const certFile = path.join(dir, 'cert.pem');
  const keyFile = path.join(dir, 'key.pem');
  if (fs.existsSync(certFile) && fs.existsSync(keyFile)) return { certFile, keyFile };
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const keys = forge.pki.rsa.generateKeyPair({ bits: SELF_SIGNED_RSA_BITS });
  const cert = forge.pki.createCertificate();
  cert.publicKey = keys.publicKey;
  // A positive 128-bit serial, as etcd's rand.Int(rand.Reader, 1<<128).
  const serial = crypto.randomBytes(16);
  serial[0] &= 0x7f;
  cert.serialNumber = serial.toString('hex');
  cert.validity.notBefore = new Date();
  cert.validity.notAfter = new Date();
  cert.validity.notAfter.setFullYear(cert.validity.notBefore.getFullYear() + (validityYears > 0 ? validityYears : 1));
  const attrs = [{ name: 'organizationName', value: 'etcd' }];
  cert.setSubject(attrs);
  cert.setIssuer(attrs);
  const altNames = hosts.map((h) => (net.isIP(h) ? { type: 7, ip: h } : { type: 2, value: h }));
  cert.setExtensions([
    { name: 'basicConstraints', cA: true },
    { name: 'keyUsage', keyEncipherment: true, digitalSignature: true, keyCertSign: true },
    { name: 'extKeyUsage', serverAuth: true, clientAuth: true },
    { name: 'subjectAltName', altNames },
  ]);
  cert.sign(keys.privateKey, forge.md.sha256.create());
  fs.writeFileSync(keyFile, forge.pki.privateKeyToPem(keys.privateKey), { mode: 0o600 });
  fs.writeFileSync(certFile, forge.pki.certificateToPem(cert), { mode: 0o644 });
  log.info({ cert: certFile, key: keyFile, hosts }, 'created self-signed certificate for auto TLS');
  return { certFile, keyFile };
}

/** The hosts to put in a self-signed certificate: every listen URL's host, without port or brackets. */
export function urlHosts(urls: URL[]): string[] {
  const hosts = urls.map((u) => u.hostname.replace(/^\[|\]$/g, ''));
  return [...new Set(hosts)];
}
