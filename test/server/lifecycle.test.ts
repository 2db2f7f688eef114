import { describe, expect, it } from 'vitest';
import { MemberLifecycle } from '../../server/embed/lifecycle';

/**
 * The order an embedding program sees lifecycle events in: what happened during startMember is
 * held until it resolved, 'ready' never precedes the 'leaderChanged' that made the member ready,
 * and the `ready` promise settles with the event.
 */
const SELF = 0xabcn;
const nextTurn = (): Promise<void> => new Promise((r) => setImmediate(r));

function record(l: MemberLifecycle, seen: string[]): void {
  l.on('leaderChanged', ({ leader, term, isLeader }) => seen.push(`leader ${leader} ${term} ${isLeader}`));
  l.on('ready', () => seen.push('ready'));
  l.on('stopped', ({ error }) => seen.push(`stopped ${error?.message ?? 'clean'}`));
  void l.ready.then(() => seen.push('ready promise'), (e: Error) => seen.push(`ready rejected ${e.message}`));
}

describe('embedded member lifecycle events', () => {
  it('an election during the start is delivered after startMember resolves, then ready', async () => {
    const l = new MemberLifecycle(SELF);
    l.leaderChanged(SELF, 2);
    l.started();
    const seen: string[] = [];
    record(l, seen);
    expect(seen).toEqual([]);
    await nextTurn();
    expect(seen).toEqual(['leader abc 2 true', 'ready', 'ready promise']);
    expect(l.leader).toEqual({ leader: 'abc', term: 2, isLeader: true });
  });

  it('without a leader at the start, ready waits for the first leader; later changes are live', async () => {
    const l = new MemberLifecycle(SELF);
    l.started();
    const seen: string[] = [];
    record(l, seen);
    await nextTurn();
    expect(seen).toEqual([]);
    l.leaderChanged(0x99n, 5);
    await nextTurn();
    expect(seen).toEqual(['leader 99 5 false', 'ready', 'ready promise']);
    l.leaderChanged(0n, 5);
    l.leaderChanged(SELF, 6);
    expect(seen.slice(3)).toEqual(['leader 0 5 false', 'leader abc 6 true']);
    l.stopped();
    l.stopped(new Error('twice'));
    expect(seen.slice(5)).toEqual(['stopped clean']);
  });

  it('stopping before a leader was known rejects ready with the reason', async () => {
    const l = new MemberLifecycle(SELF);
    l.started();
    const seen: string[] = [];
    record(l, seen);
    await nextTurn();
    l.stopped(new Error('the member has been permanently removed from the cluster'));
    await nextTurn();
    expect(seen).toEqual(['stopped the member has been permanently removed from the cluster', 'ready rejected the member has been permanently removed from the cluster']);
  });
});
