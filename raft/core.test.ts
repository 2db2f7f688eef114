import { describe, expect, it } from 'vitest';
import { majorityCommittedIndex, majorityVoteResult, jointCommittedIndex, jointVoteResult, VoteResult } from './quorum';
import { Inflights } from './inflights';
import { MemoryStorage } from './storage';
import { RaftLog, NO_LIMIT } from './log';
import { ErrCompacted, ErrUnavailable } from './errors';
import { EntryType, emptyConfState, type Entry } from './types';
import { decodeConfChange, encodeConfChange } from './confchange';
import { ConfChangeTransition, ConfChangeType } from './types';

const ent = (index: number, term: number): Entry => ({ index, term, type: EntryType.Normal, data: new Uint8Array(4) });

describe('quorum math', () => {
  const acked = (m: Record<string, number>) => (id: bigint) => m[id.toString()];
  it('the committed index is the largest index on a majority', () => {
    expect(majorityCommittedIndex(new Set([1n, 2n, 3n]), acked({ 1: 5, 2: 3, 3: 9 }))).toBe(5);
    expect(majorityCommittedIndex(new Set([1n, 2n, 3n, 4n]), acked({ 1: 5, 2: 3, 3: 9, 4: 1 }))).toBe(3);
    expect(majorityCommittedIndex(new Set([1n, 2n, 3n]), acked({ 1: 5 }))).toBe(0);
  });
  it('a joint config commits only what both majorities hold', () => {
    const a = acked({ 1: 9, 2: 9, 3: 1, 4: 2, 5: 2 });
    expect(jointCommittedIndex(new Set([1n, 2n, 3n]), new Set([3n, 4n, 5n]), a)).toBe(2);
    expect(jointCommittedIndex(new Set([1n, 2n, 3n]), new Set(), a)).toBe(9);
  });
  it('vote results: won, lost, pending, and joint', () => {
    const v = (m: Record<string, boolean>) => new Map(Object.entries(m).map(([k, b]) => [BigInt(k), b] as const));
    const c = new Set([1n, 2n, 3n]);
    expect(majorityVoteResult(c, v({ 1: true, 2: true }))).toBe(VoteResult.Won);
    expect(majorityVoteResult(c, v({ 1: true, 2: false }))).toBe(VoteResult.Pending);
    expect(majorityVoteResult(c, v({ 1: false, 2: false }))).toBe(VoteResult.Lost);
    expect(jointVoteResult(c, new Set([4n, 5n, 6n]), v({ 1: true, 2: true, 4: true }))).toBe(VoteResult.Pending);
    expect(jointVoteResult(c, new Set([4n, 5n, 6n]), v({ 1: true, 2: true, 4: false, 5: false }))).toBe(VoteResult.Lost);
  });
});

describe('inflights', () => {
  it('fills up to the message limit, frees by index, and wraps around', () => {
    const f = new Inflights(3, 0);
    f.add(1, 10);
    f.add(2, 10);
    f.add(3, 10);
    expect(f.full()).toBe(true);
    f.freeLE(2);
    expect(f.length).toBe(1);
    f.add(4, 10);
    f.add(5, 10);
    expect(f.full()).toBe(true);
    f.freeLE(5);
    expect(f.length).toBe(0);
    expect(f.bytes).toBe(0);
  });
  it('is full once the byte limit is reached', () => {
    const f = new Inflights(100, 25);
    f.add(1, 10);
    f.add(2, 10);
    expect(f.full()).toBe(false);
    f.add(3, 10);
    expect(f.full()).toBe(true);
  });
});

describe('MemoryStorage', () => {
  it('appends, truncates conflicts, compacts and snapshots', () => {
    const s = new MemoryStorage();
    s.append([ent(1, 1), ent(2, 1), ent(3, 2)]);
    expect(s.lastIndex()).toBe(3);
    s.append([ent(3, 3), ent(4, 3)]);
    expect(s.term(3)).toBe(3);
    s.createSnapshot(2, { ...emptyConfState(), voters: [1n] }, new Uint8Array([1]));
    s.compact(2);
    expect(s.firstIndex()).toBe(3);
    expect(s.term(2)).toBe(1);
    expect(() => s.term(1)).toThrow(ErrCompacted);
    expect(() => s.entries(2, 4, NO_LIMIT)).toThrow(ErrCompacted);
    expect(() => s.term(9)).toThrow(ErrUnavailable);
    expect(s.entries(3, 5, NO_LIMIT).map((e) => e.index)).toEqual([3, 4]);
    // Size limit: always at least one entry.
    expect(s.entries(3, 5, 1)).toHaveLength(1);
  });
});

describe('RaftLog', () => {
  it('maybeAppend truncates a conflicting suffix and commits only what matches the leader', () => {
    const s = new MemoryStorage();
    s.append([ent(1, 1), ent(2, 1), ent(3, 1)]);
    const log = new RaftLog(s, NO_LIMIT);
    expect(log.maybeAppend(1, 1, 10, [ent(2, 2)])).toBe(2);
    expect(log.lastIndex()).toBe(2);
    expect(log.term(2)).toBe(2);
    expect(log.committed).toBe(2);
    expect(log.maybeAppend(2, 1, 10, [ent(3, 2)])).toBeUndefined();
  });
  it('findConflictByTerm skips every entry of a larger term', () => {
    const s = new MemoryStorage();
    s.append([ent(1, 1), ent(2, 2), ent(3, 2), ent(4, 5), ent(5, 5), ent(6, 5)]);
    const log = new RaftLog(s, NO_LIMIT);
    expect(log.findConflictByTerm(6, 3)).toEqual([3, 2]);
    expect(log.findConflictByTerm(6, 5)).toEqual([6, 5]);
    expect(log.findConflictByTerm(6, 0)).toEqual([0, 0]);
  });
  it('only commits an entry of the current term (maybeCommit)', () => {
    const s = new MemoryStorage();
    s.append([ent(1, 1), ent(2, 2)]);
    const log = new RaftLog(s, NO_LIMIT);
    expect(log.maybeCommit(2, 3)).toBe(false);
    expect(log.maybeCommit(2, 2)).toBe(true);
    expect(log.committed).toBe(2);
  });
});

describe('configuration change encoding', () => {
  it('round-trips V1 and V2 changes through entry bytes', () => {
    const v1 = encodeConfChange({ type: ConfChangeType.AddLearnerNode, nodeId: 0xdeadbeefcafen });
    expect(decodeConfChange(v1.type, v1.data)).toEqual({ type: ConfChangeType.AddLearnerNode, nodeId: 0xdeadbeefcafen, context: undefined });
    const v2 = encodeConfChange({
      transition: ConfChangeTransition.JointExplicit,
      changes: [{ type: ConfChangeType.AddNode, nodeId: 4n }],
    });
    expect(decodeConfChange(v2.type, v2.data)).toEqual({
      transition: ConfChangeTransition.JointExplicit,
      changes: [{ type: ConfChangeType.AddNode, nodeId: 4n }],
      context: undefined,
    });
    const leave = encodeConfChange({ transition: ConfChangeTransition.Auto, changes: [] });
    expect(leave.data.byteLength).toBe(0);
  });
});
