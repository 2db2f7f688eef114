import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Entry } from '../../mvcc/backend';
import { KvStore } from '../../mvcc/kv-store';
import { readSnapshotFile } from '../api/snapshot-file';
import { BboltReader } from '../storage/bbolt';
import { readEtcdDb, verifiedDbLength } from '../storage/schema/etcd-snapshot';
import { isCairnSnapshot } from './snapshot-status';

/**
 * `bin/cairn snapshot restore FILE --data-dir DIR [--name ... --initial-cluster ...]` (etcdctl /
 * etcdutl snapshot restore): a new data directory whose backend holds the snapshot's keys,
 * revisions, history and leases, with the old cluster's identity removed: members, removed members
 * and alarms are dropped and the consistent index reset, so the member bootstraps a *new* cluster
 * from --initial-cluster on first start and applies only that cluster's log.
 *
 * FILE is either an etcd snapshot (`etcdctl snapshot save` from etcd or from cairn: a bbolt db in
 * etcd's layout with a sha256 trailer, converted bucket by bucket into cairn's encodings, see
 * server/storage/schema/etcd-buckets.ts) or a snapshot in cairn's earlier format.
 */
const DROPPED_BUCKETS = ['members', 'members_removed', 'alarm'];

export interface RestoreOptions {
  /** etcd's --skip-hash-check: accept a db without (or with a wrong) sha256 trailer. */
  readonly skipHashCheck?: boolean;
}

function cairnFormatEntries(file: string, store: KvStore): Entry[] {
  const dropped = DROPPED_BUCKETS.map((b) => store.backend.bucket(b).prefix);
  const consistentIndexKey = store.backend.bucket('meta').fullKey('consistent_index');
  return readSnapshotFile(file).filter(([k]) => !dropped.some((p) => k.subarray(0, p.length).equals(p)) && !k.equals(consistentIndexKey));
}

export async function restoreSnapshot(file: string, dataDir: string, opts: RestoreOptions = {}): Promise<{ keys: number; revision: number }> {
  if (fs.existsSync(dataDir) && fs.readdirSync(dataDir).length > 0) throw new Error(`data-dir "${dataDir}" exists`);
  const cairnFormat = isCairnSnapshot(file);
  // Verified before anything is created, as etcd's saveDB checks the digest first.
  const reader = cairnFormat ? undefined : BboltReader.open(file, verifiedDbLength(file, opts));
  const memberDir = path.join(dataDir, 'member');
  try {
    const dbDir = path.join(memberDir, 'snap', 'db');
    fs.mkdirSync(dbDir, { recursive: true, mode: 0o700 });
    const store = await KvStore.open(dbDir);
    try {
      await store.replaceContents(reader === undefined ? [cairnFormatEntries(file, store)] : readEtcdDb(reader));
      return { keys: store.rangeCurrent(Buffer.from([0]), Buffer.from([0]), { countOnly: true }).count, revision: store.rev };
    } finally {
      await store.close();
    }
  } catch (e) {
    // A half-converted file leaves an empty backend; a member started on it would serve an empty
    // cluster as if restored. Leave no data dir instead.
    fs.rmSync(memberDir, { recursive: true, force: true });
    throw e;
  } finally {
    reader?.close();
  }
}
