import type { Logger } from 'pino';
import { ConfChangeTransition, ConfChangeType, EntryType, decodeConfChange, encodeConfChange, type ConfChange, type ConfState } from '../../raft';
import { decodeConfStateRecord } from '../storage/wal/conf-state-record';
import type { Wal, WalContents, WalEntry, WalHardState } from '../storage/wal/wal';
import { encodeConfChangeContext } from './membership/conf-change-context';
import type { Member } from './membership/membership';

/**
 * `--force-new-cluster` (etcd's restartAsStandaloneNode, server/etcdserver/raft.go): restart a
 * member that survived the loss of its cluster's quorum as the only member of the same cluster,
 * with its data. The WAL is rewritten, through the WAL's public save(), so that:
 *   - entries after the commit index are discarded (no quorum ever acknowledged them);
 *   - conf-change entries are appended after the commit index, in the hard state's term: add this
 *     member first if the configuration lacks it as a voter (Raft must never see an empty voter
 *     set), then remove every other member (getIDs / createConfigChangeEnts);
 *   - the commit index moves to the last of them, so they are committed by force and the normal
 *     apply chain applies them (membership, removed IDs, transport) like any conf change.
 * The member ID, the cluster ID and the backend (keys, revisions, leases) are kept, so clients see
 * the same data and new members can join with `etcdctl member add`.
 */

export interface ForcedRestart {
  contents: WalContents;
  /** The conf-change entries appended (for logs and tests). */
  appended: WalEntry[];
}

interface IdSets {
  voters: Set<bigint>;
  learners: Set<bigint>;
}

/**
 * The members Raft's configuration holds after the snapshot and the committed entries (etcd's
 * getIDs; learners count too, etcd-io/etcd#12288). A joint configuration cannot be forced with
 * simple conf changes, and etcd 3.4/3.5 never enter one, so it is refused.
 */
export function configuredIds(snapshotConf: ConfState | undefined, committed: readonly WalEntry[]): IdSets {
  if (snapshotConf && snapshotConf.votersOutgoing.length > 0) throw new Error('cannot force a new cluster: the snapshot holds a joint configuration');
  const voters = new Set<bigint>(snapshotConf?.voters ?? []);
  const learners = new Set<bigint>(snapshotConf?.learners ?? []);
  let joint = false;
  const change = (type: ConfChangeType, id: bigint): void => {
    switch (type) {
      case ConfChangeType.AddNode:
        learners.delete(id);
        voters.add(id);
        break;
      case ConfChangeType.AddLearnerNode:
        voters.delete(id);
        learners.add(id);
        break;
      case ConfChangeType.RemoveNode:
        voters.delete(id);
        learners.delete(id);
        break;
      case ConfChangeType.UpdateNode:
        break;
    }
  };
  for (const e of committed) {
    if (e.type === EntryType.Normal) continue;
    const cc = decodeConfChange(e.type, e.data);
    if (!('changes' in cc)) {
      change(cc.type, cc.nodeId);
      continue;
    }
    if (cc.changes.length === 0) joint = false;
    else if (cc.changes.length > 1 || cc.transition !== ConfChangeTransition.Auto) joint = true;
    for (const c of cc.changes) change(c.type, c.nodeId);
  }
  if (joint) throw new Error('cannot force a new cluster: the log ends in a joint configuration');
  return { voters, learners };
}

/**
 * The entries that make `self` the only voter (etcd's createConfigChangeEnts), numbered from
 * `commit + 1` in `term`. Self is added (or promoted, if it is a learner) first; every other ID,
 * in ascending order, is removed.
 */
export function forcedConfChanges(ids: IdSets, self: Member, term: number, commit: number): WalEntry[] {
  const changes: ConfChange[] = [];
  if (!ids.voters.has(self.id)) {
    changes.push({ type: ConfChangeType.AddNode, nodeId: self.id, context: encodeConfChangeContext('', { ...self, isLearner: false }) });
  }
  const others = [...ids.voters, ...ids.learners].filter((id) => id !== self.id).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  for (const id of others) changes.push({ type: ConfChangeType.RemoveNode, nodeId: id });
  return changes.map((cc, i) => {
    const { type, data } = encodeConfChange(cc);
    return { term, index: commit + 1 + i, type, data };
  });
}

/**
 * Rewrites the WAL for a forced restart and returns what Raft's storage must start from.
 * `appliedIndex` is the backend's consistent index: entries are applied during the fsync of the
 * hard state that commits them, so the backend may hold entries past the WAL's commit index; those
 * were committed (nothing is applied before), and the appended changes must follow them, or the
 * apply chain would take them for entries the backend already holds.
 */
export async function forceNewCluster(wal: Wal, contents: WalContents, self: Member, clusterId: bigint, appliedIndex: number, log: Logger): Promise<ForcedRestart> {
  const snapshotIndex = contents.snapshot?.index ?? 0;
  const hs: WalHardState = contents.hardState ?? { term: contents.snapshot?.term ?? 0, vote: 0n, commit: snapshotIndex };
  const walLastIndex = contents.entries.length > 0 ? contents.entries[contents.entries.length - 1].index : snapshotIndex;
  const commit = Math.max(hs.commit, snapshotIndex, Math.min(appliedIndex, walLastIndex));
  const committed = contents.entries.filter((e) => e.index <= commit);
  if (committed.length < contents.entries.length) {
    log.info(
      { 'entry-index': committed.length > 0 ? committed[committed.length - 1].index + 1 : snapshotIndex + 1, 'commit-index-from-wal': commit, 'number-of-discarded-entries': contents.entries.length - committed.length },
      'discarding uncommitted WAL entries',
    );
  }
  const snapshotConf = contents.snapshot ? decodeConfStateRecord(contents.snapshot.data) : undefined;
  const appended = forcedConfChanges(configuredIds(snapshotConf, committed), self, hs.term, commit);
  const entries = [...committed, ...appended];
  const hardState: WalHardState = { term: hs.term, vote: hs.vote, commit: entries.length > 0 ? entries[entries.length - 1].index : commit };
  // One synced batch: the appended entries replace the discarded suffix, and (unlike etcd, which
  // saves an empty hard state and relies on the next Ready) the forced commit index is durable with
  // them, so a crash right after still restarts as a single-member cluster.
  if (appended.length > 0 || walLastIndex > commit) {
    if (appended.length > 0 || committed.length > 0) {
      // The WAL replaces everything after an entry saved again at its index (docs/wal.md), so the
      // appended entries drop the discarded suffix; with nothing to append (already alone),
      // re-saving the last committed entry does.
      const toSave = appended.length > 0 ? appended : [committed[committed.length - 1]];
      await wal.save({ entries: toSave, hardState, sync: true });
    } else if (contents.snapshot) {
      // Every committed entry is in the snapshot: re-saving it resets the log to it.
      await wal.save({ entries: [], hardState, snapshot: contents.snapshot, sync: true });
    }
  }
  log.info({ 'cluster-id': clusterId.toString(16), 'local-member-id': self.id.toString(16), 'commit-index': hardState.commit }, 'forcing restart member');
  return { contents: { ...contents, hardState, entries }, appended };
}
