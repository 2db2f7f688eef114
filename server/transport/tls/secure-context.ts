import * as fs from 'node:fs';
import * as tls from 'node:tls';
import type { Logger } from 'pino';
import type { TLSInfo } from './tls-info';

/**
 * The secure context of one TLS listener or dialer, rebuilt when its files change so a rotated
 * certificate (cert-manager, `kubeadm certs renew`) is used by the next handshake without a
 * restart. etcd re-reads the pair on every handshake (pkg/transport GetCertificate); here every
 * handshake stats the files (cheap) and re-reads them only when one changed. A file swapped for
 * something unreadable or unparsable keeps the last good context and logs a warning, so a botched
 * rotation does not take the member off the air.
 */
export class ReloadingSecureContext {
  private ctxOptions: tls.SecureContextOptions;
  private stamp: string;

  /** Throws (at startup) if the files cannot be read or parsed: there is no previous good context. */
  constructor(
    private readonly info: TLSInfo,
    private readonly log: Logger,
    /** Called with the new options after a successful reload (tls.Server.setSecureContext). */
    private readonly onReload: (opts: tls.SecureContextOptions) => void = () => undefined,
  ) {
    this.stamp = this.fileStamp();
    this.ctxOptions = this.load();
  }

  /** The current options, after reloading them if a file changed. */
  options(): tls.SecureContextOptions {
    this.refresh();
    return this.ctxOptions;
  }

  /** Reloads if a file changed since the last load; returns whether the context changed. */
  refresh(): boolean {
    let stamp: string;
    try {
      stamp = this.fileStamp();
    } catch (e) {
      this.warnOnce(`stat:${String(e)}`, e);
      return false;
    }
    if (stamp === this.stamp) return false;
    try {
      const next = this.load();
      this.stamp = stamp;
      this.ctxOptions = next;
      this.lastWarning = '';
      this.log.info({ cert: this.info.certFile, key: this.info.keyFile }, 'reloaded TLS certificate files');
      this.onReload(next);
      return true;
    } catch (e) {
      // Keep serving with the last good pair; try again on the next handshake.
      this.warnOnce(stamp, e);
      return false;
    }
  }

  private lastWarning = '';

  private warnOnce(key: string, e: unknown): void {
    if (key === this.lastWarning) return;
    this.lastWarning = key;
    this.log.warn({ cert: this.info.certFile, key: this.info.keyFile, error: e instanceof Error ? e.message : String(e) }, 'failed to reload TLS certificate files; keeping the previous certificate');
  }

  private files(): string[] {
    return [this.info.certFile, this.info.keyFile, this.info.trustedCAFile, this.info.crlFile].filter((f) => f !== '');
  }

  /** Size, mtime and inode of every file: a rename-over (kubelet, cert-manager) changes the inode. */
  private fileStamp(): string {
    return this.files()
      .map((f) => {
        const st = fs.statSync(f);
        return `${f}:${st.ino}:${st.size}:${st.mtimeMs}`;
      })
      .join('|');
  }

  private load(): tls.SecureContextOptions {
    const read = (f: string): Buffer | undefined => (f === '' ? undefined : fs.readFileSync(f));
    const opts: tls.SecureContextOptions = {
      cert: read(this.info.certFile),
      key: read(this.info.keyFile),
      ca: read(this.info.trustedCAFile),
      crl: read(this.info.crlFile),
      minVersion: this.info.minVersion,
      maxVersion: this.info.maxVersion,
    };
    if (this.info.ciphers !== '') opts.ciphers = this.info.ciphers;
    // Parses everything (and checks the key matches the certificate) before it is used.
    tls.createSecureContext(opts);
    return opts;
  }
}
