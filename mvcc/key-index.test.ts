import { describe, expect, it } from 'vitest';
import { KeyIndex } from './key-index';
import { TreeIndex, resolveRange } from './tree-index';

function index(spec: Array<[number, boolean?]>): KeyIndex {
  const ki = new KeyIndex();
  for (const [main, tomb] of spec) ki.append(main, 0, tomb === true);
  return ki;
}
const mains = (ki: KeyIndex): string[] => ki.revisions().map((r) => `${r.main}${r.tombstone ? 't' : ''}`);

describe('KeyIndex', () => {
  it('revisionAt finds the newest revision <= rev and hides tombstoned generations', () => {
    const ki = index([[2], [4], [6, true], [8]]);
    expect(ki.revisionAt(1)).toBeUndefined();
    expect(ki.revisionAt(3)?.main).toBe(2);
    expect(ki.revisionAt(5)?.main).toBe(4);
    expect(ki.revisionAt(6)).toBeUndefined();
    expect(ki.revisionAt(7)).toBeUndefined();
    expect(ki.revisionAt(100)?.main).toBe(8);
  });

  it('compact keeps the newest revision <= rev and everything after it', () => {
    const ki = index([[2], [4], [6, true], [8], [9]]);
    expect(ki.compact(1)).toBeUndefined();
    expect(mains(ki)).toEqual(['2', '4', '6t', '8', '9']);
    expect(ki.compact(5)?.main).toBe(4);
    expect(mains(ki)).toEqual(['4', '6t', '8', '9']);
  });

  it('compact at or after a tombstone drops the whole generation it ends', () => {
    const ki = index([[2], [4], [6, true], [8]]);
    expect(ki.compact(7)).toBeUndefined();
    expect(mains(ki)).toEqual(['8']);
    const gone = index([[2], [3, true]]);
    gone.compact(3);
    expect(gone.isEmpty).toBe(true);
  });

  it('put and tombstone keep the current generation\'s create_revision, version and lease, also across compaction', () => {
    const ki = new KeyIndex();
    const state = (): unknown[] => [ki.isLive, ki.createRevision, ki.version, ki.lease];
    ki.put(2, 0, 5n);
    expect(state()).toEqual([true, 2, 1, 5n]);
    ki.put(3, 0, 0n);
    ki.put(3, 1, 6n); // twice in one txn
    expect(state()).toEqual([true, 2, 3, 6n]);
    ki.compact(3); // only (3, 1) is left of the generation; its version still counts three puts
    expect(mains(ki)).toEqual(['3']);
    ki.put(4, 0, 6n);
    expect(state()).toEqual([true, 2, 4, 6n]);
    ki.tombstone(5, 0);
    expect(state()).toEqual([false, 0, 0, 0n]);
    ki.put(7, 0, 0n); // a new generation
    expect(state()).toEqual([true, 7, 1, 0n]);
  });

  it('appending a non-increasing revision is an assertion failure', () => {
    const ki = index([[5]]);
    expect(() => ki.append(5, 0, false)).toThrow();
    expect(() => ki.append(4, 3, false)).toThrow();
    ki.append(5, 1, false);
  });
});

describe('TreeIndex', () => {
  it('iterates ranges in bytewise order, including bytes >= 0x80', () => {
    const t = new TreeIndex();
    for (const k of ['\xff', 'b', 'a', '\x80', 'a\x00', '\x00']) t.set(k, new KeyIndex());
    const seen: string[] = [];
    t.forRange(resolveRange(Buffer.from([0]), Buffer.from([0])), (k) => seen.push(k));
    expect(seen).toEqual(['\x00', 'a', 'a\x00', 'b', '\x80', '\xff']);
    const some: string[] = [];
    t.forRange(resolveRange(Buffer.from('a'), Buffer.from([0x80])), (k) => some.push(k));
    expect(some).toEqual(['a', 'a\x00', 'b']);
  });

  it('chunkAfter walks all keys in chunks even when keys are deleted between chunks', () => {
    const t = new TreeIndex();
    for (let i = 0; i < 10; i++) t.set(`k${i}`, new KeyIndex());
    const first = t.chunkAfter(undefined, 4).map(([k]) => k);
    expect(first).toEqual(['k0', 'k1', 'k2', 'k3']);
    t.delete('k3');
    t.delete('k4');
    expect(t.chunkAfter('k3', 4).map(([k]) => k)).toEqual(['k5', 'k6', 'k7', 'k8']);
  });
});
