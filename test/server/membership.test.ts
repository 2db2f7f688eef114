import { describe, expect, it } from 'vitest';
import { chooseMemberList, encodeMember, type Member } from '../../server/etcdserver/membership/membership';
import type { FetchedMembers } from '../../server/rafthttp/transport';

/** How a joining member picks its member list (and so its own ID) from its peers' answers. */

const member = (id: bigint, url: string): Member => ({ id, name: '', peerUrls: [url], clientUrls: [], isLearner: false });
const answer = (appliedIndex: number, members: Member[], removed: bigint[] = [], clusterId = 7n): FetchedMembers => ({
  clusterId,
  appliedIndex,
  members: members.map(encodeMember),
  removed,
});

describe('chooseMemberList', () => {
  const a = member(1n, 'http://a:2380');
  const old = member(2n, 'http://b:2380');
  const replaced = member(3n, 'http://b:2380'); // the same peer URL, added back under a new ID

  it('trusts the peer that applied the most, not the first to answer', () => {
    const lagging = answer(10, [a, old]);
    const current = answer(20, [a, replaced], [2n]);
    for (const answers of [[lagging, current], [current, lagging]]) {
      const chosen = chooseMemberList(answers);
      expect(chosen.members.map((m) => m.id)).toEqual([1n, 3n]);
      expect(chosen.removed).toEqual([2n]);
    }
  });

  it('never offers an ID that any peer knows was removed', () => {
    // The most advanced answer still lists the old ID (it has not applied the remove), another knows better.
    const chosen = chooseMemberList([answer(20, [a, old]), answer(15, [a], [2n])]);
    expect(chosen.members.map((m) => m.id)).toEqual([1n]);
  });

  it('refuses peers that disagree on the cluster ID', () => {
    expect(() => chooseMemberList([answer(1, [a], [], 7n), answer(1, [a], [], 8n)])).toThrow(/disagree on the cluster ID/);
  });
});
