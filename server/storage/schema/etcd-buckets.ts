/**
 * cairn's backend buckets <-> etcd 3.4/3.5's (mvcc/kvstore.go, mvcc/revision.go, lease/lessor.go,
 * etcdserver/api/membership/store.go, etcdserver/api/v3alarm, auth/store.go, etcdserver/cindex).
 * The bucket names are etcd's in both; the differences are in the encodings:
 *
 * | bucket          | key (both)                        | cairn value                  | etcd value                       |
 * |-----------------|-----------------------------------|------------------------------|----------------------------------|
 * | key             | revision: main BE8 '_' sub BE8 [t] | mvcc/kv-codec.ts record      | mvccpb.KeyValue (tombstone: key) |
 * | meta            | consistent_index                  | u64 BE                       | u64 BE                           |
 * |                 | scheduled/finishedCompactRev      | u64 BE main                  | 17-byte revision (main, sub 0)   |
 * | lease           | lease ID BE8                      | id, ttl, remaining (3 x BE8) | leasepb.Lease                    |
 * | members         | cairn: ID BE8; etcd: hex ID       | cairn JSON                   | etcd's Member JSON               |
 * | members_removed | cairn: ID BE8; etcd: hex ID       | empty                        | "removed"                        |
 * | alarm           | cairn: ID BE8 + type; etcd: AlarmMember protobuf | empty         | empty                            |
 *
 * Other buckets (auth, authUsers, authRoles, cluster) hold etcd's encodings (cairn's auth store,
 * server/auth/store.ts, writes authpb.User / authpb.Role and etcd's keys) and are copied unchanged.
 */
import { decodeKeyValue, encodeKeyValue } from '../../../mvcc/kv-codec';
import { decodeRevision, encodeRevision } from '../../../mvcc/revision';
import { decodeMember } from '../../etcdserver/membership/membership';
import { BboltFormatError } from '../bbolt/format';
import { decodePbAlarmMember, decodePbKeyValue, decodePbLease, encodePbAlarmMember, encodePbKeyValue, encodePbLease } from './etcd-pb';

export const KEY = 'key';
export const META = 'meta';
export const LEASE = 'lease';
export const MEMBERS = 'members';
export const MEMBERS_REMOVED = 'members_removed';
export const ALARM = 'alarm';
export const AUTH = 'auth';
export const AUTH_USERS = 'authUsers';
export const AUTH_ROLES = 'authRoles';
export const CLUSTER = 'cluster';

const SCHEDULED_COMPACT = 'scheduledCompactRev';
const FINISHED_COMPACT = 'finishedCompactRev';
export const CONSISTENT_INDEX = 'consistent_index';
/** cairn's marker of a synced empty commit (mvcc/backend.ts); not data, not exported. */
const SYNC_MARKER = 'backend_sync_marker';

type Pair = readonly [Buffer, Buffer];

function u64(n: bigint | number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(n));
  return b;
}

// ---------------------------------------------------------------- cairn -> etcd

/** One cairn entry of `bucket` as etcd stores it, or undefined when etcd has no such entry. */
export function toEtcd(bucket: string, key: Buffer, value: Buffer): Pair | undefined {
  switch (bucket) {
    case KEY: {
      const rev = decodeRevision(key);
      const kv = decodeKeyValue(value);
      // etcd's tombstone is a KeyValue with only the key (mvcc/kvstore_txn.go delete).
      const pb = rev.tombstone
        ? encodePbKeyValue({ key: kv.key, createRevision: 0, modRevision: 0, version: 0, value: Buffer.alloc(0), lease: 0n })
        : encodePbKeyValue(kv);
      return [key, pb];
    }
    case META: {
      const name = key.toString('latin1');
      if (name === SYNC_MARKER) return undefined;
      if (name === SCHEDULED_COMPACT || name === FINISHED_COMPACT) return [key, encodeRevision(Number(value.readBigUInt64BE(0)), 0)];
      return [key, value];
    }
    case LEASE:
      return [key, encodePbLease({ id: value.readBigInt64BE(0), ttl: value.readBigInt64BE(8), remainingTtl: value.readBigInt64BE(16) })];
    case MEMBERS: {
      const m = decodeMember(value);
      return [Buffer.from(m.id.toString(16)), Buffer.from(etcdMemberJson(m))];
    }
    case MEMBERS_REMOVED:
      return [Buffer.from(key.readBigUInt64BE(key.length - 8).toString(16)), Buffer.from('removed')];
    case ALARM:
      return [encodePbAlarmMember(key.readBigUInt64BE(0), key[8]), Buffer.alloc(0)];
    default:
      return [key, value];
  }
}

/** Buckets whose keys change encoding, so their entries must be re-sorted after conversion. */
export function keysReencoded(bucket: string): boolean {
  return bucket === MEMBERS || bucket === MEMBERS_REMOVED || bucket === ALARM;
}

/**
 * etcd's json.Marshal(membership.Member): id as a JSON number (a uint64, written without going
 * through a double), then peerURLs, isLearner (omitempty), name (omitempty), clientURLs (omitempty).
 */
export function etcdMemberJson(m: { id: bigint; name: string; peerUrls: string[]; clientUrls: string[]; isLearner: boolean }): string {
  let s = `{"id":${m.id.toString()},"peerURLs":${JSON.stringify(m.peerUrls)}`;
  if (m.isLearner) s += ',"isLearner":true';
  if (m.name !== '') s += `,"name":${JSON.stringify(m.name)}`;
  if (m.clientUrls.length > 0) s += `,"clientURLs":${JSON.stringify(m.clientUrls)}`;
  return `${s}}`;
}

/** Buckets a fresh etcd has that cairn may not: created so etcd's tools find what etcd writes. */
export function etcdDefaultBuckets(clusterVersion: string): Map<string, Pair[]> {
  return new Map<string, Pair[]>([
    [ALARM, []],
    // Only when cairn's backend has no auth bucket yet: its auth store (server/auth/store.ts) keeps
    // etcd's buckets and encodings, copied unchanged, once auth has been used; a backend that never
    // wrote one gets what etcd's auth.NewAuthStore commits on a fresh backend, revision 1.
    [AUTH, [[Buffer.from('authRevision'), u64(1)]]],
    [AUTH_ROLES, []],
    [AUTH_USERS, []],
    [CLUSTER, [[Buffer.from('clusterVersion'), Buffer.from(clusterVersion)]]],
    [KEY, []],
    [LEASE, []],
    [MEMBERS, []],
    [MEMBERS_REMOVED, []],
    [META, []],
  ]);
}

// ---------------------------------------------------------------- etcd -> cairn

/**
 * One etcd entry of `bucket` as cairn stores it (without the bucket prefix), or undefined when a
 * restore drops it: the old cluster's members (etcd's restore deletes them too; the restored member
 * bootstraps its cluster from --initial-cluster), its alarms, consistent index and term (a new
 * cluster starts its own log).
 */
export function fromEtcd(bucket: string, key: Buffer, value: Buffer): Pair | undefined {
  switch (bucket) {
    case KEY: {
      const rev = decodeRevision(key);
      const kv = decodePbKeyValue(value);
      if (kv.key.length === 0) throw new BboltFormatError(`snapshot: key bucket entry ${key.toString('hex')} has no key`);
      const record = rev.tombstone
        ? encodeKeyValue(kv.key, Buffer.alloc(0), 0, rev.main, 0, 0n).record
        : encodeKeyValue(kv.key, kv.value, kv.createRevision, kv.modRevision, kv.version, kv.lease).record;
      return [key, record];
    }
    case META: {
      const name = key.toString('latin1');
      if (name === SCHEDULED_COMPACT || name === FINISHED_COMPACT) return [key, u64(decodeRevision(value).main)];
      // The rest of meta (consistent_index, term, confState, storageVersion) belongs to the old log.
      return undefined;
    }
    case LEASE: {
      const l = decodePbLease(value);
      const b = Buffer.alloc(24);
      b.writeBigUInt64BE(BigInt.asUintN(64, l.id), 0);
      b.writeBigInt64BE(l.ttl, 8);
      b.writeBigInt64BE(l.remainingTtl, 16);
      return [key, b];
    }
    case MEMBERS:
    case MEMBERS_REMOVED:
    case ALARM:
      return undefined;
    default:
      return [key, value];
  }
}

/** An etcd alarm key, for status output and tests. */
export { decodePbAlarmMember };
