import * as fs from 'node:fs';
import { crc32cUpdate } from '../../mvcc/crc32c';
import { readMainRevision } from '../../mvcc/revision';
import { readSnapshotFile, SNAPSHOT_MAGIC } from '../api/snapshot-file';
import { BboltReader } from '../storage/bbolt';
import { verifiedDbLength } from '../storage/schema/etcd-snapshot';

/**
 * `cairn snapshot status FILE [-w simple|table|json|fields]`: etcd's `etcdctl snapshot status`
 * (clientv3/snapshot v3Manager.Status) on either snapshot format. The numbers are etcd's: a
 * CRC-32C over every top-level bucket's name and its keys and values in order, the main revision
 * of the last key in the `key` bucket, the number of keys in all buckets, and bbolt's tx.Size()
 * (the high-water mark, free pages included). Unlike etcdctl, the sha256 trailer is verified first.
 */
export interface SnapshotStatus {
  hash: number;
  revision: number;
  totalKey: number;
  totalSize: number;
}

export function isCairnSnapshot(file: string): boolean {
  const head = Buffer.alloc(SNAPSHOT_MAGIC.length);
  const fd = fs.openSync(file, 'r');
  try {
    fs.readSync(fd, head, 0, head.length, 0);
  } finally {
    fs.closeSync(fd);
  }
  return head.equals(SNAPSHOT_MAGIC);
}

class StatusAccumulator {
  private crc = 0;
  private readonly s: SnapshotStatus = { hash: 0, revision: 0, totalKey: 0, totalSize: 0 };
  bucket(name: Buffer): void {
    this.crc = crc32cUpdate(this.crc, name);
  }
  entry(isKeyBucket: boolean, k: Buffer, v: Buffer | undefined): void {
    this.crc = crc32cUpdate(this.crc, k);
    if (v !== undefined) this.crc = crc32cUpdate(this.crc, v);
    if (isKeyBucket) this.s.revision = readMainRevision(k);
    this.s.totalKey++;
  }
  done(totalSize: number): SnapshotStatus {
    return { ...this.s, hash: this.crc, totalSize };
  }
}

export function snapshotStatus(file: string): SnapshotStatus {
  const acc = new StatusAccumulator();
  if (isCairnSnapshot(file)) {
    // cairn's own (pre-bbolt) format: the same numbers over its `<bucket>/<key>` entries.
    let current = '';
    for (const [full, v] of readSnapshotFile(file)) {
      const slash = full.indexOf(0x2f);
      const name = full.toString('latin1', 0, slash);
      if (name !== current) acc.bucket(Buffer.from(name, 'latin1'));
      current = name;
      acc.entry(name === 'key', full.subarray(slash + 1), v);
    }
    return acc.done(fs.statSync(file).size);
  }
  const r = BboltReader.open(file, verifiedDbLength(file, { skipHashCheck: !hasTrailer(file) }));
  try {
    for (const top of r.entries(r.root)) {
      if (top.bucket === undefined) continue;
      acc.bucket(top.key);
      const isKey = top.key.toString('latin1') === 'key';
      for (const e of r.entries(top.bucket)) acc.entry(isKey, e.key, e.value);
    }
    return acc.done(r.size);
  } finally {
    r.close();
  }
}

function hasTrailer(file: string): boolean {
  return fs.statSync(file).size % 512 === 32;
}

/** go-humanize's Bytes (SI units), as etcdctl prints sizes. */
export function humanizeBytes(n: number): string {
  if (n < 10) return `${n} B`;
  const units = ['B', 'kB', 'MB', 'GB', 'TB', 'PB', 'EB'];
  const e = Math.floor(Math.log(n) / Math.log(1000));
  const val = Math.floor((n / 1000 ** e) * 10 + 0.5) / 10;
  return `${val < 10 ? val.toFixed(1) : val.toFixed(0)} ${units[e]}`;
}

/** olekukonko/tablewriter as etcdctl's table printer sets it up: headers centred, cells right-aligned. */
function table(hdr: string[], row: string[]): string {
  const widths = hdr.map((h, i) => Math.max(h.length, row[i].length));
  const line = `+${widths.map((w) => '-'.repeat(w + 2)).join('+')}+`;
  const centre = (s: string, w: number): string => {
    const left = Math.floor((w - s.length) / 2);
    return ' '.repeat(left) + s + ' '.repeat(w - s.length - left);
  };
  const head = `| ${hdr.map((h, i) => centre(h.toUpperCase(), widths[i])).join(' | ')} |`;
  const body = `| ${row.map((c, i) => c.padStart(widths[i])).join(' | ')} |`;
  return [line, head, line, body, line].join('\n');
}

export function formatStatus(s: SnapshotStatus, writeOut: string): string {
  const row = [s.hash.toString(16), String(s.revision), String(s.totalKey), humanizeBytes(s.totalSize)];
  switch (writeOut) {
    case 'json':
      return JSON.stringify({ hash: s.hash, revision: s.revision, totalKey: s.totalKey, totalSize: s.totalSize });
    case 'table':
      return table(['hash', 'revision', 'total keys', 'total size'], row);
    case 'fields':
      return [`"Hash" : ${s.hash}`, `"Revision" : ${s.revision}`, `"Keys" : ${s.totalKey}`, `"Size" : ${s.totalSize}`].join('\n');
    default:
      return row.join(', ');
  }
}
