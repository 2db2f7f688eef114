/**
 * Binary encoding of a KeyValue as stored under its revision in the "key" bucket (the bbolt value
 * in etcd, where it is a marshalled mvccpb.KeyValue). Only cairn reads it.
 *
 *   [0]      format version (1)
 *   [1]      flags: bit 0 = lease present
 *   [2..10)  createRevision  (uint64 BE)
 *   [10..18) modRevision     (uint64 BE)
 *   [18..26) version         (uint64 BE)
 *   [26..30) key length      (uint32 BE)
 *   [30..38) lease           (int64 BE, only when the lease flag is set)
 *   key bytes, then value bytes (the rest of the record)
 *
 * Decoding and encoding both return KeyValues whose key and value are views into the record, so
 * one allocation holds a whole cached entry and the caller's (possibly large, shared) buffers are
 * not retained.
 */
import assert from 'node:assert/strict';
import type { KeyValue } from './kv';

const FORMAT_V1 = 1;
const FLAG_LEASE = 1;
const HEADER_BYTES = 30;
const LEASE_BYTES = 8;
const TWO_POW_32 = 0x1_0000_0000;

export interface EncodedKeyValue {
  /** The bytes to store. */
  readonly record: Buffer;
  /** The same KeyValue, with key and value viewing into `record`. */
  readonly kv: KeyValue;
}

function writeUint64BE(buf: Buffer, offset: number, n: number): void {
  buf.writeUInt32BE(Math.floor(n / TWO_POW_32), offset);
  buf.writeUInt32BE(n >>> 0, offset + 4);
}

function readUint64BE(buf: Buffer, offset: number): number {
  return buf.readUInt32BE(offset) * TWO_POW_32 + buf.readUInt32BE(offset + 4);
}

export function encodeKeyValue(
  key: Buffer, value: Buffer, createRevision: number, modRevision: number, version: number, lease: bigint,
): EncodedKeyValue {
  const hasLease = lease !== 0n;
  const keyOffset = HEADER_BYTES + (hasLease ? LEASE_BYTES : 0);
  const valueOffset = keyOffset + key.length;
  // allocUnsafeSlow: cached records live long; a pooled slice would pin its whole 8 KiB slab.
  const record = Buffer.allocUnsafeSlow(valueOffset + value.length);
  record[0] = FORMAT_V1;
  record[1] = hasLease ? FLAG_LEASE : 0;
  writeUint64BE(record, 2, createRevision);
  writeUint64BE(record, 10, modRevision);
  writeUint64BE(record, 18, version);
  record.writeUInt32BE(key.length, 26);
  if (hasLease) record.writeBigInt64BE(lease, HEADER_BYTES);
  key.copy(record, keyOffset);
  value.copy(record, valueOffset);
  const kv: KeyValue = {
    key: record.subarray(keyOffset, valueOffset),
    createRevision,
    modRevision,
    version,
    value: record.subarray(valueOffset),
    lease,
  };
  return { record, kv };
}

export function decodeKeyValue(record: Buffer): KeyValue {
  assert(record.length >= HEADER_BYTES && record[0] === FORMAT_V1, 'malformed KeyValue record');
  const hasLease = (record[1] & FLAG_LEASE) !== 0;
  const keyOffset = HEADER_BYTES + (hasLease ? LEASE_BYTES : 0);
  const valueOffset = keyOffset + record.readUInt32BE(26);
  assert(valueOffset <= record.length, 'malformed KeyValue record');
  return {
    key: record.subarray(keyOffset, valueOffset),
    createRevision: readUint64BE(record, 2),
    modRevision: readUint64BE(record, 10),
    version: readUint64BE(record, 18),
    value: record.subarray(valueOffset),
    lease: hasLease ? record.readBigInt64BE(HEADER_BYTES) : 0n,
  };
}

/** What the restore scan keeps of a record: the index's fields, no value. */
export interface IndexFields {
  /** The key as a latin1 string (a copy: the record is not retained). */
  readonly latin1Key: string;
  readonly createRevision: number;
  readonly version: number;
  readonly lease: bigint;
}

/**
 * The key, create_revision, version and lease of a stored record, without building a KeyValue:
 * what the restore scan needs, so it holds on to no record.
 */
export function decodeIndexFields(record: Buffer): IndexFields {
  assert(record.length >= HEADER_BYTES && record[0] === FORMAT_V1, 'malformed KeyValue record');
  const hasLease = (record[1] & FLAG_LEASE) !== 0;
  const keyOffset = HEADER_BYTES + (hasLease ? LEASE_BYTES : 0);
  const valueOffset = keyOffset + record.readUInt32BE(26);
  assert(valueOffset <= record.length, 'malformed KeyValue record');
  return {
    latin1Key: record.toString('latin1', keyOffset, valueOffset),
    createRevision: readUint64BE(record, 2),
    version: readUint64BE(record, 18),
    lease: hasLease ? record.readBigInt64BE(HEADER_BYTES) : 0n,
  };
}
