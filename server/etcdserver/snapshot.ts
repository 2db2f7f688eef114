import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Logger } from 'pino';
import type { ConfState, MemoryStorage, Snapshot } from '../../raft';
import type { KvStore } from '../../mvcc/kv-store';
import type { Lessor } from '../../mvcc/lessor';
import type { ServerConfig } from '../embed/config';
import { encodeConfStateRecord } from '../storage/wal/conf-state-record';
import type { Wal } from '../storage/wal/wal';
import type { AlarmStore } from './alarms';
import type { PeerSet } from './apply/apply-chain';
import { readAlarms, readMembers, restoreLessor } from './backend-schema';
import type { Membership } from './membership/membership';
import type { AppliedIndexWait } from './wait';
import { failStop } from './fatal';
import type { ServerMetrics } from './metrics';
import { readDb, removeSnapDbFiles, saveDbFrom } from './snapshot-db';

/**
 * Snapshot files (snapshot-db.ts) of MsgSnaps received and not yet installed, by snapshot index.
 * Raft accepts a snapshot only if it is newer than its commit index, so the one it accepted is
 * always the newest received; older ones (and their files) are dropped first when the bound is hit.
 */
export const MAX_RECEIVED_SNAPSHOTS = 2;

type BackendEntries = AsyncIterable<[Buffer, Buffer][]>;

export interface SnapshotterDeps {
  cfg: Pick<ServerConfig, 'snapshotCount' | 'snapshotCatchupEntries' | 'electionTimeoutMs' | 'dataDir'>;
  log: Logger;
  memberId: bigint;
  store: KvStore;
  wal: Wal;
  storage: MemoryStorage;
  lessor: Lessor;
  membership: Membership;
  alarms: AlarmStore;
  /** The auth store, reloaded from the new backend (etcd's authStore.Recover). */
  auth: { restore(): Promise<void> };
  appliedWait: AppliedIndexWait;
  isLeader(): boolean;
  peers(): (PeerSet & { peerIds(): bigint[] }) | undefined;
  metrics: Pick<ServerMetrics, 'snapshotApplyInProgress' | 'snapDbSaveSeconds' | 'snapDbFsyncSeconds' | 'snapSaveSeconds' | 'snapMarshallingSeconds' | 'snapFsyncSeconds'>;
}

/**
 * Raft snapshots on this member (etcd's snapshot.go, triggerSnapshot and applySnapshot):
 *  - log compaction: every --snapshot-count applied entries, a snapshot at the applied index, and
 *    the log below it dropped, keeping --snapshot-catchup-entries for slow followers;
 *  - a leader's snapshot: its backend arrives with the MsgSnap, is spooled to a file in member/snap
 *    (etcd's <index>.snap.db), and replaces ours from that file when Raft accepts it.
 */
export class Snapshotter {
  /** The configuration as of the last applied entry, recorded in snapshots. */
  confState: ConfState;
  /** Index of the last snapshot (the log below it may be compacted). */
  snapshotIndex: number;
  /** The log snapshot being saved, if any: a leader's snapshot install and stop() wait for it. */
  private inflight: Promise<void> | undefined;
  private stopped = false;
  /** Spooled snapshot files by index. */
  private readonly received = new Map<number, string>();
  /** The index being installed: a copy arriving meanwhile is a duplicate. */
  private installing: number | undefined;
  private readonly snapDir: string;

  constructor(
    private readonly d: SnapshotterDeps,
    initial: { confState: ConfState; snapshotIndex: number },
  ) {
    this.confState = initial.confState;
    this.snapshotIndex = initial.snapshotIndex;
    this.snapDir = path.join(d.cfg.dataDir, 'member', 'snap');
    // Files of a previous run are never needed: the install runs before the Ready that holds the
    // snapshot is persisted, and the backend swap is crash-safe on its own (mvcc/backend.ts
    // replaceAll), so after a crash either the new backend is in place or the WAL does not have the
    // snapshot and the leader sends it again.
    const stale = removeSnapDbFiles(this.snapDir);
    if (stale.length > 0) d.log.info({ files: stale }, 'removed snapshot files left by a previous run');
  }

  /**
   * Saves a MsgSnap's backend data to its file until Raft decides (etcd's SaveDBFrom); the caller
   * then steps the message. `entries` is read as it is written, so memory stays bounded.
   */
  async keepReceived(index: number, entries: BackendEntries): Promise<void> {
    // A duplicate (keep the file Raft may already have accepted), or not newer than what is applied
    // (Raft will refuse it): drain the stream unsaved, so the sender is answered once it has sent it all.
    if (this.received.has(index) || this.installing === index || index <= this.d.appliedWait.index) {
      for await (const _ of entries);
      return;
    }
    const started = performance.now();
    const saved = await saveDbFrom(this.snapDir, index, entries);
    this.d.metrics.snapDbSaveSeconds.observe((performance.now() - started) / 1000);
    this.d.metrics.snapDbFsyncSeconds.observe(saved.fsyncSeconds);
    this.d.log.info({ index, bytes: saved.bytes, file: path.basename(saved.file) }, 'saved snapshot from leader to disk');
    this.received.set(index, saved.file);
    while (this.received.size > MAX_RECEIVED_SNAPSHOTS) this.drop(Math.min(...this.received.keys()));
  }

  private drop(index: number): void {
    const file = this.received.get(index);
    this.received.delete(index);
    if (file !== undefined) fs.rmSync(file, { force: true });
  }

  /**
   * Raft accepted the snapshot and its Ready is being persisted: replace the backend with the data
   * received for exactly that index (etcd's applySnapshot). Data received for older indexes is stale.
   */
  async install(snap: Snapshot): Promise<void> {
    // One at a time, as etcd's applier runs triggerSnapshot and applySnapshot in turn: a log
    // snapshot saved after this install would put an older snapshot record back in the WAL.
    await this.inflight;
    const index = snap.metadata.index;
    const file = this.received.get(index);
    this.received.delete(index);
    for (const i of [...this.received.keys()]) if (i < index) this.drop(i);
    if (!file) throw new Error(`raft accepted snapshot ${index} without its data`);
    this.confState = snap.metadata.confState;
    this.snapshotIndex = index;
    this.d.log.info({ index, file: path.basename(file) }, 'installing snapshot from leader');
    const { metrics } = this.d;
    metrics.snapshotApplyInProgress.set(1);
    this.installing = index;
    try {
      // Read from the file in chunks and written in bounded batches to a new LevelDB, swapped in
      // once complete (mvcc/backend.ts replaceAll); the store tells its watch hub
      // (CommitObserver.restored) once the new contents are readable.
      await this.d.store.replaceContents(readDb(file));
      await fs.promises.rm(file, { force: true });
      await this.reloadFromBackend();
    } finally {
      this.installing = undefined;
      metrics.snapshotApplyInProgress.set(0);
    }
    this.d.appliedWait.advance(Math.max(index, this.d.store.consistentIndex));
  }

  /** Lessor, alarms and member list after the backend was replaced. */
  private async reloadFromBackend(): Promise<void> {
    const { store, lessor, membership, memberId } = this.d;
    this.d.alarms.restore(await readAlarms(store));
    await this.d.auth.restore();
    await restoreLessor(store, lessor);
    if (this.d.isLeader()) lessor.promote(this.d.cfg.electionTimeoutMs);
    const { members, removed } = await readMembers(store);
    membership.restore(members, removed);
    const peers = this.d.peers();
    for (const m of members) if (m.id !== memberId) peers?.addPeer(m.id, m.peerUrls);
    for (const id of peers?.peerIds() ?? []) if (!membership.get(id)) peers?.removePeer(id);
  }

  /**
   * Log compaction (etcd's snapshot-count): once enough entries were applied since the last
   * snapshot, record a snapshot at the applied index and drop the log below it. The backend is
   * fsynced first, because once the log is gone the backend is the only copy.
   */
  maybeSnapshot(): void {
    const applied = this.d.appliedWait.index;
    const { storage, cfg } = this.d;
    if (this.stopped || this.inflight || applied - this.snapshotIndex <= cfg.snapshotCount) return;
    // Called between Readies (RaftNode onAdvanced), so the applied entries are in MemoryStorage;
    // after a snapshot install the applied index can still be outside the in-memory log.
    if (applied > storage.lastIndex() || applied < storage.firstIndex() - 1) return;
    // The in-memory snapshot is taken now, between Readies, where MemoryStorage holds exactly
    // what was applied; only the durable steps are asynchronous.
    const term = storage.term(applied);
    storage.createSnapshot(applied, this.confState, new Uint8Array());
    const confState = this.confState;
    this.inflight = this.saveAt(applied, term, confState).then(
      () => {
        this.inflight = undefined;
      },
      (e: unknown) => {
        this.inflight = undefined;
        // Stopping closes the store and WAL under a save in flight: that is not a failure.
        if (this.stopped) return;
        // The backend fsync or the WAL's snapshot record failed: etcd panics on the same failures.
        failStop('backend write failed', e);
      },
    );
  }

  /** Waits for a log snapshot in flight; none starts afterwards. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.inflight;
  }

  private async saveAt(applied: number, term: number, confState: ConfState): Promise<void> {
    const { storage, wal, store, cfg, log } = this.d;
    // The backend first: once the WAL's snapshot record and compaction drop the log, it is the only copy.
    await store.forceCommit({ sync: true });
    if (this.stopped) return;
    // etcd's snap.Save: marshal the snapshot record, write and fsync it (here a synced WAL record).
    const started = performance.now();
    const data = encodeConfStateRecord(confState);
    const marshalled = performance.now();
    await wal.saveSnapshot({ index: applied, term, data });
    const saved = performance.now();
    this.d.metrics.snapMarshallingSeconds.observe((marshalled - started) / 1000);
    this.d.metrics.snapFsyncSeconds.observe((saved - marshalled) / 1000);
    this.d.metrics.snapSaveSeconds.observe((saved - started) / 1000);
    this.snapshotIndex = Math.max(this.snapshotIndex, applied);
    const compactTo = applied - cfg.snapshotCatchupEntries;
    if (!this.stopped && compactTo > storage.firstIndex()) {
      storage.compact(compactTo);
      await wal.compact(compactTo - 1);
    }
    log.info({ index: applied, 'compacted-to': compactTo }, 'saved snapshot and compacted raft log');
  }
}
