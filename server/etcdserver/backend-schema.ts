import type { Bucket } from '../../mvcc/backend';
import type { KvStore } from '../../mvcc/kv-store';
import type { Lessor, LeaseRecord } from '../../mvcc/lessor';
import { decodeAlarmKey, type Alarm } from './alarms';
import { decodeMember, encodeMember, type Member, type MembershipPersistence } from './membership/membership';

/**
 * The backend's buckets outside the key space, and their encodings (etcd's server/storage/schema):
 * everything a member rebuilds its lessor, alarms and member list from, on restart and after a
 * leader's snapshot replaced the backend.
 */
export const LEASE_BUCKET = 'lease';
export const ALARM_BUCKET = 'alarm';
export const MEMBERS_BUCKET = 'members';
/** IDs of removed members: they may never rejoin, and their traffic is refused (etcd: members_removed). */
export const MEMBERS_REMOVED_BUCKET = 'members_removed';

/** An 8-byte big-endian ID: the key of a lease, member or removed-member record. */
export function idKey(id: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(id);
  return b;
}

export function encodeLease(r: LeaseRecord): Buffer {
  const b = Buffer.alloc(24);
  b.writeBigUInt64BE(r.id, 0);
  b.writeBigInt64BE(BigInt(r.ttlSeconds), 8);
  b.writeBigInt64BE(BigInt(r.remainingTtlSeconds), 16);
  return b;
}

export function decodeLease(b: Buffer): LeaseRecord {
  return { id: b.readBigUInt64BE(0), ttlSeconds: Number(b.readBigInt64BE(8)), remainingTtlSeconds: Number(b.readBigInt64BE(16)) };
}

export function leasePersistence(store: KvStore): { putLease(r: LeaseRecord): void; deleteLease(id: bigint): void } {
  const bucket = store.backend.bucket(LEASE_BUCKET);
  return {
    putLease: (r) => bucket.put(idKey(r.id), encodeLease(r)),
    deleteLease: (id) => bucket.del(idKey(id)),
  };
}

export function membershipPersistence(store: KvStore): MembershipPersistence {
  const members = store.backend.bucket(MEMBERS_BUCKET);
  const removed = store.backend.bucket(MEMBERS_REMOVED_BUCKET);
  return {
    putMember: (m: Member) => members.put(idKey(m.id), encodeMember(m)),
    deleteMember: (id: bigint) => members.del(idKey(id)),
    putRemoved: (id: bigint) => removed.put(idKey(id), Buffer.alloc(0)),
  };
}

export function alarmPersistence(store: KvStore): { put(k: Buffer): void; del(k: Buffer): void } {
  const bucket = store.backend.bucket(ALARM_BUCKET);
  return { put: (k) => bucket.put(k, Buffer.alloc(0)), del: (k) => bucket.del(k) };
}

async function readRemovedIds(bucket: Bucket): Promise<bigint[]> {
  const ids: bigint[] = [];
  for await (const [k] of bucket.iterate()) ids.push(k.readBigUInt64BE(k.length - 8));
  return ids;
}

export async function readMembers(store: KvStore): Promise<{ members: Member[]; removed: bigint[] }> {
  const members: Member[] = [];
  for await (const [, v] of store.backend.bucket(MEMBERS_BUCKET).iterate()) members.push(decodeMember(v));
  return { members, removed: await readRemovedIds(store.backend.bucket(MEMBERS_REMOVED_BUCKET)) };
}

export async function readAlarms(store: KvStore): Promise<Alarm[]> {
  const alarms: Alarm[] = [];
  for await (const [k] of store.backend.bucket(ALARM_BUCKET).iterate()) alarms.push(decodeAlarmKey(k.subarray(k.length - 9)));
  return alarms;
}

/** Rebuilds the lessor from the lease bucket and re-attaches every live key's lease (etcd lessor.initAndRecover). */
export async function restoreLessor(store: KvStore, lessor: Lessor): Promise<void> {
  const records: LeaseRecord[] = [];
  for await (const [, v] of store.backend.bucket(LEASE_BUCKET).iterate()) records.push(decodeLease(v));
  lessor.restore(records);
  store.forEachLiveLease((latin1Key, lease) => lessor.attach(lease, latin1Key));
}
