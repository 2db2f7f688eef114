import type { PeerHandlers } from '../../server/rafthttp/transport';

/**
 * Peer transport handlers for a member that has nothing to say: no members, nothing applied, no
 * leases; every message and report is ignored. Tests override what they observe.
 */
export function quietPeerHandlers(extra: Partial<PeerHandlers> = {}): PeerHandlers {
  return {
    onMessages: () => undefined,
    onSnapshot: async () => undefined,
    snapshotEntries: async function* () {},
    reportUnreachable: () => undefined,
    reportSnapshot: () => undefined,
    leaseRenew: async () => ({ ttl: 0, notFound: true }),
    leaseTimeToLive: async () => ({ found: false, ttl: -1, grantedTtl: 0, keys: [] }),
    learnerReady: async () => false,
    members: () => [],
    appliedIndex: () => 0,
    isRemoved: () => false,
    removedIds: () => [],
    onRemovedFromCluster: () => undefined,
    ...extra,
  };
}
