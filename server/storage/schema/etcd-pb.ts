/**
 * The three protobuf messages etcd stores in its backend, encoded as gogoproto's generated
 * Marshal() does (proto3: fields in number order, zero values omitted, int64 as two's-complement
 * varints), so a snapshot cairn writes holds the bytes etcd would write:
 *
 *   mvccpb.KeyValue     key=1 bytes, create_revision=2, mod_revision=3, version=4, value=5 bytes, lease=6
 *   leasepb.Lease       ID=1, TTL=2, RemainingTTL=3 (int64)
 *   etcdserverpb.AlarmMember  memberID=1 (uint64), alarm=2 (enum)
 */
import { BboltFormatError } from '../bbolt/format';

const U64 = 0xffff_ffff_ffff_ffffn;

function varint(out: number[], v: bigint | number): void {
  if (typeof v === 'number' && v >= 0 && v <= Number.MAX_SAFE_INTEGER) {
    // The common case (revisions, versions, lengths) without BigInt arithmetic.
    let n = v;
    while (n >= 0x80) {
      out.push((n % 0x80) | 0x80);
      n = Math.floor(n / 0x80);
    }
    out.push(n);
    return;
  }
  let x = BigInt(v) & U64;
  while (x >= 0x80n) {
    out.push(Number(x & 0x7fn) | 0x80);
    x >>= 7n;
  }
  out.push(Number(x));
}

function tag(out: number[], field: number, wire: number): void {
  out.push((field << 3) | wire);
}

class Writer {
  private readonly head: number[] = [];
  private readonly parts: Buffer[] = [];
  int(field: number, v: bigint | number): this {
    if (v !== 0 && v !== 0n) {
      tag(this.head, field, 0);
      varint(this.head, v);
    }
    return this;
  }
  bytes(field: number, v: Buffer): this {
    if (v.length > 0) {
      tag(this.head, field, 2);
      varint(this.head, v.length);
      this.parts.push(Buffer.from(this.head.splice(0)), v);
    }
    return this;
  }
  done(): Buffer {
    return Buffer.concat([...this.parts, Buffer.from(this.head)]);
  }
}

type Field = { field: number; int?: bigint; bytes?: Buffer };

function* fields(buf: Buffer): Generator<Field> {
  let o = 0;
  const readVarint = (): bigint => {
    let x = 0n;
    let shift = 0n;
    for (;;) {
      if (o >= buf.length || shift > 63n) throw new BboltFormatError('protobuf: truncated varint');
      const b = buf[o++];
      x |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return x;
      shift += 7n;
    }
  };
  while (o < buf.length) {
    const t = Number(readVarint());
    const field = t >> 3;
    const wire = t & 7;
    if (wire === 0) yield { field, int: readVarint() };
    else if (wire === 2) {
      const n = Number(readVarint());
      if (o + n > buf.length) throw new BboltFormatError('protobuf: truncated field');
      yield { field, bytes: buf.subarray(o, o + n) };
      o += n;
    } else if (wire === 1) o += 8;
    else if (wire === 5) o += 4;
    else throw new BboltFormatError(`protobuf: unsupported wire type ${wire}`);
  }
}

/** int64 from a varint (two's complement). */
function int64(v: bigint | undefined): bigint {
  return v === undefined ? 0n : BigInt.asIntN(64, v);
}

export interface PbKeyValue {
  key: Buffer;
  createRevision: number;
  modRevision: number;
  version: number;
  value: Buffer;
  lease: bigint;
}

/** Bytes of `n` (a non-negative safe integer) as a varint. */
function varintBytes(n: number): number {
  let len = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 0x80);
    len++;
  }
  return len;
}

function isSmallInt(n: number): boolean {
  return n >= 0 && n <= Number.MAX_SAFE_INTEGER;
}

/**
 * mvccpb.KeyValue as gogoproto marshals it, sized first and written into one buffer: a snapshot
 * encodes one per stored revision, so the general Writer's arrays and joins are avoided. Numbers
 * outside what the fast path handles (negative or unsafe) go through the Writer.
 */
export function encodePbKeyValue(kv: PbKeyValue): Buffer {
  const { key, value, createRevision: create, modRevision: mod, version } = kv;
  if (!isSmallInt(create) || !isSmallInt(mod) || !isSmallInt(version)) {
    return new Writer().bytes(1, key).int(2, create).int(3, mod).int(4, version).bytes(5, value).int(6, kv.lease).done();
  }
  const lease: number[] = [];
  if (kv.lease !== 0n) {
    tag(lease, 6, 0);
    varint(lease, kv.lease);
  }
  const size = (key.length > 0 ? 1 + varintBytes(key.length) + key.length : 0)
    + (create !== 0 ? 1 + varintBytes(create) : 0)
    + (mod !== 0 ? 1 + varintBytes(mod) : 0)
    + (version !== 0 ? 1 + varintBytes(version) : 0)
    + (value.length > 0 ? 1 + varintBytes(value.length) + value.length : 0)
    + lease.length;
  const out = Buffer.allocUnsafe(size);
  let o = 0;
  const putVarint = (n: number): void => {
    while (n >= 0x80) {
      out[o++] = (n % 0x80) | 0x80;
      n = Math.floor(n / 0x80);
    }
    out[o++] = n;
  };
  const putBytes = (field: number, b: Buffer): void => {
    if (b.length === 0) return;
    out[o++] = (field << 3) | 2;
    putVarint(b.length);
    o += b.copy(out, o);
  };
  const putInt = (field: number, n: number): void => {
    if (n === 0) return;
    out[o++] = field << 3;
    putVarint(n);
  };
  putBytes(1, key);
  putInt(2, create);
  putInt(3, mod);
  putInt(4, version);
  putBytes(5, value);
  for (const byte of lease) out[o++] = byte;
  return out;
}

export function decodePbKeyValue(buf: Buffer): PbKeyValue {
  const kv: PbKeyValue = { key: Buffer.alloc(0), createRevision: 0, modRevision: 0, version: 0, value: Buffer.alloc(0), lease: 0n };
  for (const f of fields(buf)) {
    if (f.field === 1 && f.bytes) kv.key = f.bytes;
    else if (f.field === 2) kv.createRevision = Number(int64(f.int));
    else if (f.field === 3) kv.modRevision = Number(int64(f.int));
    else if (f.field === 4) kv.version = Number(int64(f.int));
    else if (f.field === 5 && f.bytes) kv.value = f.bytes;
    else if (f.field === 6) kv.lease = int64(f.int);
  }
  return kv;
}

export interface PbLease {
  id: bigint;
  ttl: bigint;
  remainingTtl: bigint;
}

export function encodePbLease(l: PbLease): Buffer {
  return new Writer().int(1, l.id).int(2, l.ttl).int(3, l.remainingTtl).done();
}

export function decodePbLease(buf: Buffer): PbLease {
  const l: PbLease = { id: 0n, ttl: 0n, remainingTtl: 0n };
  for (const f of fields(buf)) {
    if (f.field === 1) l.id = int64(f.int);
    else if (f.field === 2) l.ttl = int64(f.int);
    else if (f.field === 3) l.remainingTtl = int64(f.int);
  }
  return l;
}

export function encodePbAlarmMember(memberId: bigint, alarm: number): Buffer {
  return new Writer().int(1, memberId).int(2, alarm).done();
}

export function decodePbAlarmMember(buf: Buffer): { memberId: bigint; alarm: number } {
  const a = { memberId: 0n, alarm: 0 };
  for (const f of fields(buf)) {
    if (f.field === 1) a.memberId = f.int ?? 0n;
    else if (f.field === 2) a.alarm = Number(f.int ?? 0n);
  }
  return a;
}
