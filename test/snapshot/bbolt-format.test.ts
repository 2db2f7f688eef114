import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BboltReader, BboltWriter, BRANCH_PAGE_FLAG, buildTree, FileSink, MemorySink, readPageHeader, readTree, type BucketRef, type Tree } from '../../server/storage/bbolt';
import { bboltDump, bboltWrite, pageKinds, type DumpedBucket } from '../support/bboltcheck';

/**
 * cairn's bbolt reader and writer (server/storage/bbolt) against each other and against Go's
 * go.etcd.io/bbolt (tools/bboltcheck): round trips, tx.Check() on cairn-written files, and
 * Go-written files (free pages, bbolt's own splits) read by cairn.
 */
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bbolt-format-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const b = (s: string): Buffer => Buffer.from(s);

function sample(): Tree[] {
  const many: Array<[Buffer, Buffer]> = [];
  for (let i = 0; i < 5000; i++) many.push([b(`k/${String(i).padStart(6, '0')}`), b(`value-${i}-${'x'.repeat(i % 97)}`)]);
  const big: Array<[Buffer, Buffer]> = [
    [b('a'), Buffer.alloc(10_000, 1)],
    [b('b'), b('small')],
    [b('c'), Buffer.alloc(300_000, 7)],
    [b('d'), Buffer.alloc(0)],
    [b('e'), Buffer.alloc(5000, 3)],
    [b('f'), Buffer.alloc(20_000, 4)],
  ];
  return [
    { name: b('big'), keys: big, buckets: [] },
    { name: b('empty'), keys: [], buckets: [] },
    { name: b('many'), keys: many, buckets: [] },
    {
      name: b('nested'),
      keys: [[b('x'), b('1')]],
      buckets: [
        { name: b('inner-empty'), keys: [], buckets: [] },
        { name: b('inner-paged'), keys: many.slice(0, 300), buckets: [{ name: b('deep'), keys: [[b('z'), b('2')]], buckets: [] }] },
        { name: b('inner-small'), keys: [[Buffer.from([0, 1, 2]), Buffer.from([0xff])]], buckets: [] },
      ],
    },
    { name: b('tiny'), keys: [[b('only'), b('one')]], buckets: [] },
  ];
}

function writeFile(file: string, buckets: Tree[], fillPercent?: number): number {
  const fd = fs.openSync(file, 'w');
  try {
    const sink = new FileSink(fd);
    const w = new BboltWriter(sink, { fillPercent });
    const size = w.finish(buildTree(w, { keys: [], buckets }));
    sink.flush();
    return size;
  } finally {
    fs.closeSync(fd);
  }
}

function readAll(r: BboltReader): Tree[] {
  return readTree(r, Buffer.alloc(0), r.root).buckets as Tree[];
}

function toDump(t: Tree): DumpedBucket {
  return {
    name: t.name.toString('hex'),
    keys: t.keys.map(([k, v]) => [k.toString('hex'), v.toString('hex')]),
    buckets: t.buckets.map(toDump),
  };
}

describe('bbolt writer and reader', () => {
  it('round-trips buckets with branch pages, overflow pages, empty and nested buckets', () => {
    const buckets = sample();
    const sink = new MemorySink();
    const w = new BboltWriter(sink);
    const size = w.finish(buildTree(w, { keys: [], buckets }));
    const data = sink.contents();
    expect(data.length).toBe(size);
    const r = BboltReader.fromBuffer(data);
    expect(r.size).toBe(size);
    expect(r.pageSize).toBe(4096);
    expect(readAll(r).map(toDump)).toEqual(buckets.map(toDump));
    const kinds = pageKinds(r);
    expect(kinds.branch).toBeGreaterThan(0);
    expect(kinds.overflowed).toBeGreaterThanOrEqual(2);
    // The small buckets are inline: no page of their own.
    expect(r.bucket('tiny')?.root).toBe(0n);
    expect(r.bucket('empty')?.root).toBe(0n);
    expect(r.bucket('many')?.root).not.toBe(0n);
    expect(r.bucket('missing')).toBeUndefined();
  });

  it('refuses unsorted keys and a file without a valid meta page', () => {
    const w = new BboltWriter(new MemorySink());
    const bucket = w.bucket();
    bucket.put(b('b'), b('1'));
    expect(() => bucket.put(b('a'), b('2'))).toThrow(/ascending/);
    expect(() => BboltReader.fromBuffer(Buffer.alloc(8192))).toThrow(/invalid database/);
  });

  it.each([0.5, 0.9, 1])('writes files that pass go.etcd.io/bbolt tx.Check() and dump identically (fill %s)', (fill) => {
    const buckets = sample();
    const file = path.join(tmp, `cairn-${fill}.db`);
    const size = writeFile(file, buckets, fill);
    const d = bboltDump(file);
    expect(d.stderr).toBe('');
    expect(d.code).toBe(0);
    expect(d.size).toBe(size);
    expect(d.buckets).toEqual(buckets.map(toDump));
  });

  it('refuses a branch page that points back up the tree instead of walking forever', () => {
    const sink = new MemorySink();
    const w = new BboltWriter(sink);
    w.finish(buildTree(w, { keys: [], buckets: sample() }));
    const data = sink.contents();
    const root = BboltReader.fromBuffer(data).bucket('many')?.root ?? 0n;
    const at = Number(root) * 4096;
    expect(readPageHeader(data, at).flags).toBe(BRANCH_PAGE_FLAG);
    data.writeBigUInt64LE(root, at + 16 + 8); // the first child is the branch page itself
    const r = BboltReader.fromBuffer(data);
    expect(() => [...r.entries(r.bucket('many') as BucketRef)]).toThrow(/cycle/);
  });

  it('falls back to the other meta page when one is corrupt, as bbolt does', () => {
    const file = path.join(tmp, 'meta.db');
    writeFile(file, sample().slice(4));
    const bytes = fs.readFileSync(file);
    bytes[16 + 20] ^= 0xff; // meta 0's root pgid: its checksum no longer matches
    const r = BboltReader.fromBuffer(bytes);
    expect(r.meta.txid).toBe(1n);
    expect(readAll(r).map((t) => t.name.toString())).toEqual(['tiny']);
  });

  it('reads files go.etcd.io/bbolt wrote (its own splits, free pages)', () => {
    const buckets = sample();
    const file = path.join(tmp, 'go.db');
    bboltWrite(file, buckets.map(toDump));
    expect(bboltDump(file).code).toBe(0);
    const r = BboltReader.open(file);
    try {
      // Go's writer puts a scratch key in every bucket and deletes it again; the data is the same.
      expect(readAll(r).map(toDump)).toEqual(buckets.map(toDump));
      expect(r.meta.freelist).not.toBe(2n);
      expect(pageKinds(r).branch).toBeGreaterThan(0);
    } finally {
      r.close();
    }
  });
});
