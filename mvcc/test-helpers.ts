/** Shared helpers for mvcc tests (no test-framework imports, so tsc can compile it). */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { KeyValue } from './kv';
import type { KvStore } from './kv-store';

const dirs: string[] = [];

/** A fresh temp directory for a LevelDB; removed by `removeTempDirs`. */
export function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'cairn-mvcc-'));
  dirs.push(dir);
  return join(dir, 'db');
}

export function removeTempDirs(): void {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
}

export function b(s: string): Buffer {
  return Buffer.from(s, 'latin1');
}

let nextIndex = 1;

/** One write txn with one put; returns the store revision afterwards. */
export function put(store: KvStore, key: string, value: string, lease = 0n): number {
  const w = store.write();
  w.put(b(key), b(value), lease);
  w.end({ consistentIndex: nextIndex++ });
  return store.rev;
}

/** One write txn deleting [key, end); returns the number of deleted keys. */
export function del(store: KvStore, key: string, end?: string): number {
  const w = store.write();
  const n = w.deleteRange(b(key), end === undefined ? null : b(end)).length;
  w.end({ consistentIndex: nextIndex++ });
  return n;
}

export function keys(kvs: readonly KeyValue[]): string[] {
  return kvs.map((kv) => kv.key.toString('latin1'));
}

/** key → value as strings, for compact assertions. */
export function pairs(kvs: readonly KeyValue[]): Array<[string, string]> {
  return kvs.map((kv) => [kv.key.toString('latin1'), kv.value.toString('latin1')]);
}

export function kvSummary(kv: KeyValue | undefined): unknown {
  if (kv === undefined) return undefined;
  return {
    key: kv.key.toString('latin1'),
    value: kv.value.toString('latin1'),
    create: kv.createRevision,
    mod: kv.modRevision,
    version: kv.version,
    lease: kv.lease,
  };
}
