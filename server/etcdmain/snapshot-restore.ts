import * as fs from 'node:fs';
import * as path from 'node:path';
import { KvStore } from '../../mvcc/kv-store';
import { readSnapshotFile } from '../api/snapshot-file';

/**
 * `bin/cairn snapshot restore FILE --data-dir DIR [--name ... --initial-cluster ...]` (etcdutl
 * snapshot restore): a new data directory whose backend holds the snapshot's keys, leases and
 * history, with the old cluster's identity removed: members and alarms are dropped and the
 * consistent index reset, so the member bootstraps a *new* cluster from --initial-cluster on first
 * start and applies only that cluster's log.
 */
const DROPPED_BUCKETS = ['members', 'alarm'];

export async function restoreSnapshot(file: string, dataDir: string): Promise<{ keys: number; revision: number }> {
  if (fs.existsSync(dataDir) && fs.readdirSync(dataDir).length > 0) throw new Error(`data-dir "${dataDir}" exists`);
  const entries = readSnapshotFile(file);
  const dbDir = path.join(dataDir, 'member', 'snap', 'db');
  fs.mkdirSync(dbDir, { recursive: true, mode: 0o700 });
  const store = await KvStore.open(dbDir);
  try {
    const dropped = DROPPED_BUCKETS.map((b) => store.backend.bucket(b).prefix);
    const consistentIndexKey = store.backend.bucket('meta').fullKey('consistent_index');
    const kept = entries.filter(([k]) => !dropped.some((p) => k.subarray(0, p.length).equals(p)) && !k.equals(consistentIndexKey));
    await store.replaceContents([kept]);
    return { keys: store.rangeCurrent(Buffer.from([0]), Buffer.from([0]), { countOnly: true }).count, revision: store.rev };
  } finally {
    await store.close();
  }
}
