import { execFileSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/**
 * A throwaway PKI for TLS tests and `npm run jepsen -- --tls`, made with the `openssl` CLI (as etcd's own tests ship fixtures
 * made by cfssl): two CAs, and leaf certificates signed by either. Leaves carry serverAuth and
 * clientAuth with SANs for 127.0.0.1 and localhost, as kubeadm's etcd certificates do, so one
 * certificate serves a member's client port, its peer port and its outgoing peer connections.
 * EC P-256 keys: fast to make, and etcdctl, Go clientv3, grpc-js and etcd all accept them.
 */

export interface CertPair {
  /** PEM certificate path. */
  cert: string;
  /** PEM private key path (unencrypted). */
  key: string;
}

export interface LeafOptions {
  cn: string;
  /** Signing CA (default: the main CA). */
  ca?: 'ca' | 'other';
  /** subjectAltName entries (default IP:127.0.0.1, DNS:localhost). */
  sans?: string[];
}

export interface TestPki {
  dir: string;
  /** The main CA certificate (trusted by members in the tests). */
  ca: string;
  /** A second, unrelated CA: certificates it signs must be refused. */
  otherCa: string;
  server: CertPair;
  client: CertPair;
  /** A client certificate signed by the other CA. */
  otherClient: CertPair;
  /** Issues a new leaf into `dir` under `name`. */
  issue(name: string, opts: LeafOptions): CertPair;
  cleanup(): void;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A self-signed CA `name`.crt/.key in `dir`. */
export function makeCaIn(dir: string, name: string): void {
  openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', `${name}.key`], dir);
  openssl(['req', '-x509', '-new', '-key', `${name}.key`, '-sha256', '-days', '2', '-subj', `/CN=${name}`, '-out', `${name}.crt`], dir);
}

/** Issues `name`.crt/.key signed by `ca`, with a random serial (so rotations are distinguishable). */
export function issueLeaf(dir: string, name: string, opts: LeafOptions): CertPair {
  const caName = opts.ca === 'other' ? 'other-ca' : 'ca';
  const sans = opts.sans ?? ['IP:127.0.0.1', 'DNS:localhost'];
  fs.writeFileSync(
    path.join(dir, `${name}.ext`),
    `subjectAltName=${sans.join(',')}\nextendedKeyUsage=serverAuth,clientAuth\nkeyUsage=digitalSignature,keyEncipherment\n`,
  );
  openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', `${name}.key`], dir);
  openssl(['req', '-new', '-key', `${name}.key`, '-subj', `/CN=${opts.cn}`, '-out', `${name}.csr`], dir);
  const serial = `0x${crypto.randomBytes(8).toString('hex')}`;
  openssl(
    ['x509', '-req', '-in', `${name}.csr`, '-CA', `${caName}.crt`, '-CAkey', `${caName}.key`, '-set_serial', serial, '-days', '2', '-sha256', '-extfile', `${name}.ext`, '-out', `${name}.crt`],
    dir,
  );
  return { cert: path.join(dir, `${name}.crt`), key: path.join(dir, `${name}.key`) };
}

export function makePki(): TestPki {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-pki-'));
  makeCaIn(dir, 'ca');
  makeCaIn(dir, 'other-ca');
  return {
    dir,
    ca: path.join(dir, 'ca.crt'),
    otherCa: path.join(dir, 'other-ca.crt'),
    server: issueLeaf(dir, 'server', { cn: 'server' }),
    client: issueLeaf(dir, 'client', { cn: 'root' }),
    otherClient: issueLeaf(dir, 'other-client', { cn: 'root', ca: 'other' }),
    issue: (name, opts) => issueLeaf(dir, name, opts),
    cleanup: () => fs.rmSync(dir, { recursive: true, force: true }),
  };
}

/**
 * Revokes `pair` (signed by the main CA in `dir`) and writes the CA's CRL to `dir`/crl.pem, with
 * `openssl ca`'s minimal database; returns the CRL path (--client-crl-file, --peer-crl-file).
 */
export function revoke(dir: string, pair: CertPair): string {
  const cnf = path.join(dir, 'ca.cnf');
  if (!fs.existsSync(cnf)) {
    fs.writeFileSync(path.join(dir, 'index.txt'), '');
    fs.writeFileSync(path.join(dir, 'crlnumber'), '01\n');
    fs.writeFileSync(cnf, `[ca]\ndefault_ca = CA_default\n[CA_default]\ndatabase = ${dir}/index.txt\ncrlnumber = ${dir}/crlnumber\ndefault_md = sha256\ndefault_crl_days = 2\n`);
  }
  openssl(['ca', '-config', cnf, '-keyfile', 'ca.key', '-cert', 'ca.crt', '-revoke', pair.cert], dir);
  const crl = path.join(dir, 'crl.pem');
  openssl(['ca', '-config', cnf, '-keyfile', 'ca.key', '-cert', 'ca.crt', '-gencrl', '-out', crl], dir);
  return crl;
}

/** SHA-256 fingerprint of a PEM certificate file, as node:tls reports it (AA:BB:...). */
export function fingerprint256(certFile: string): string {
  return new crypto.X509Certificate(fs.readFileSync(certFile)).fingerprint256;
}
