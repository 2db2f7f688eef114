/**
 * An in-memory bucket tree, for small files and tests: a bucket's key/value pairs and its nested
 * buckets. Large buckets are streamed through BucketBuilder / BboltReader.entries instead.
 */
import type { BboltReader, BucketRef } from './reader';
import type { BboltWriter, BucketBuilder } from './writer';

export interface Tree {
  readonly name: Buffer;
  readonly keys: ReadonlyArray<readonly [Buffer, Buffer]>;
  readonly buckets: readonly Tree[];
}

/** Builds `t` (its keys and sub-buckets merged in key order) into a new bucket of `w`. */
export function buildTree(w: BboltWriter, t: Pick<Tree, 'keys' | 'buckets'>): BucketBuilder {
  const b = w.bucket();
  const items: Array<{ key: Buffer; value?: Buffer; child?: Tree }> = [
    ...t.keys.map(([key, value]) => ({ key, value })),
    ...t.buckets.map((child) => ({ key: child.name, child })),
  ].sort((x, y) => Buffer.compare(x.key, y.key));
  for (const it of items) {
    if (it.child !== undefined) b.putBucket(it.key, buildTree(w, it.child));
    else b.put(it.key, it.value as Buffer);
  }
  return b;
}

/** Reads a whole bucket (copies of its keys and values) into memory. */
export function readTree(r: BboltReader, name: Buffer, ref: BucketRef): Tree {
  const keys: Array<[Buffer, Buffer]> = [];
  const buckets: Tree[] = [];
  for (const e of r.entries(ref)) {
    if (e.bucket !== undefined) buckets.push(readTree(r, Buffer.from(e.key), e.bucket));
    else keys.push([Buffer.from(e.key), Buffer.from(e.value)]);
  }
  return { name, keys, buckets };
}
