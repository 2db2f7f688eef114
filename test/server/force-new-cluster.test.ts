import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfChangeType, EntryType, decodeConfChange, encodeConfChange, type ConfChange, type ConfChangeV2, type ConfState } from '../../raft';
import { forceNewCluster } from '../../server/etcdserver/force-new-cluster';
import { decodeConfChangeContext } from '../../server/etcdserver/membership/conf-change-context';
import type { Member } from '../../server/etcdserver/membership/membership';
import { encodeConfStateRecord } from '../../server/storage/wal/conf-state-record';
import { Wal, type WalEntry } from '../../server/storage/wal/wal';

/**
 * The WAL rewrite behind --force-new-cluster (etcd's restartAsStandaloneNode), on a real WAL:
 * what survives, what is appended, and that a reopened WAL reads back exactly that.
 */

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});
const log = pino({ level: 'silent' });
const SELF: Member = { id: 0xaan, name: 'a', peerUrls: ['http://127.0.0.1:2380'], clientUrls: ['http://127.0.0.1:2379'], isLearner: false };
const CLUSTER_ID = 0xc1n;

const conf = (voters: bigint[], learners: bigint[] = []): ConfState => ({ voters, learners, votersOutgoing: [], learnersNext: [], autoLeave: false });
const normal = (index: number, term: number): WalEntry => ({ index, term, type: EntryType.Normal, data: Buffer.from(`put ${index}`) });
const confEntry = (index: number, term: number, cc: ConfChange | ConfChangeV2): WalEntry => ({ index, term, ...encodeConfChange(cc) });

/** A WAL at a snapshot of `snapConf` (index 1), holding `entries`, with `commit`. */
async function walWith(snapConf: ConfState, entries: WalEntry[], commit: number, term = 3): Promise<Wal> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-fnc-'));
  dirs.push(dir);
  const wal = await Wal.open(path.join(dir, 'wal'));
  await wal.save({ entries: [], snapshot: { index: 1, term: 1, data: encodeConfStateRecord(snapConf) }, hardState: { term: 1, vote: 0n, commit: 1 }, sync: true });
  await wal.save({ entries, hardState: { term, vote: 0xbbn, commit }, sync: true });
  // A WAL hands over what it replayed at open (readAll, once), as a restarting member reads it.
  await wal.close();
  return Wal.open(path.join(dir, 'wal'));
}

function changes(entries: WalEntry[]): { type: ConfChangeType; nodeId: bigint }[] {
  return entries.map((e) => {
    const cc = decodeConfChange(e.type, e.data) as ConfChange;
    return { type: cc.type, nodeId: cc.nodeId };
  });
}

describe('--force-new-cluster rewrites the WAL as etcd does', () => {
  it('drops entries after the commit index and appends, committed, the removal of every other member', async () => {
    const wal = await walWith(conf([0xaan, 0xbbn, 0xccn]), [normal(2, 2), normal(3, 3), normal(4, 3), normal(5, 3)], 3);
    const forced = await forceNewCluster(wal, await wal.readAll(), SELF, CLUSTER_ID, 0, log);
    expect(changes(forced.appended)).toEqual([
      { type: ConfChangeType.RemoveNode, nodeId: 0xbbn },
      { type: ConfChangeType.RemoveNode, nodeId: 0xccn },
    ]);
    // Numbered after the commit index, in the hard state's term; the commit index moves to the last.
    expect(forced.appended.map((e) => [e.index, e.term])).toEqual([[4, 3], [5, 3]]);
    expect(forced.contents.hardState).toEqual({ term: 3, vote: 0xbbn, commit: 5 });
    // Durable: a reopened WAL reads the committed prefix, the appended changes, nothing else.
    await wal.close();
    const reopened = await Wal.open(path.join(dirs[dirs.length - 1], 'wal'));
    const back = await reopened.readAll();
    await reopened.close();
    expect(back.hardState).toEqual(forced.contents.hardState);
    expect(back.entries.map((e) => [e.index, e.type])).toEqual([[2, EntryType.Normal], [3, EntryType.Normal], [4, EntryType.ConfChange], [5, EntryType.ConfChange]]);
    expect(Buffer.from(back.entries[1].data).toString()).toBe('put 3');
  });

  it('follows the committed conf changes after the snapshot: an added member is removed, a removed one is not', async () => {
    const entries = [
      confEntry(2, 2, { type: ConfChangeType.AddLearnerNode, nodeId: 0xddn }),
      confEntry(3, 2, { type: ConfChangeType.RemoveNode, nodeId: 0xccn }),
      // Uncommitted: never counted.
      confEntry(4, 3, { type: ConfChangeType.AddNode, nodeId: 0xeen }),
    ];
    const wal = await walWith(conf([0xaan, 0xbbn, 0xccn]), entries, 3);
    const forced = await forceNewCluster(wal, await wal.readAll(), SELF, CLUSTER_ID, 0, log);
    await wal.close();
    expect(changes(forced.appended)).toEqual([
      { type: ConfChangeType.RemoveNode, nodeId: 0xbbn },
      { type: ConfChangeType.RemoveNode, nodeId: 0xddn },
    ]);
  });

  it('adds this member first when the configuration lacks it as a voter (Raft must never have no voter)', async () => {
    const wal = await walWith(conf([0xbbn, 0xccn], [0xaan]), [normal(2, 2)], 2);
    const forced = await forceNewCluster(wal, await wal.readAll(), SELF, CLUSTER_ID, 0, log);
    await wal.close();
    expect(changes(forced.appended)).toEqual([
      { type: ConfChangeType.AddNode, nodeId: 0xaan },
      { type: ConfChangeType.RemoveNode, nodeId: 0xbbn },
      { type: ConfChangeType.RemoveNode, nodeId: 0xccn },
    ]);
    // The add carries the member, as etcd's createConfigChangeEnts marshals it into the context.
    const ctx = decodeConfChangeContext((decodeConfChange(forced.appended[0].type, forced.appended[0].data) as ConfChange).context);
    expect(ctx?.member).toMatchObject({ id: '170', name: 'a', peerUrls: SELF.peerUrls, isLearner: false });
  });

  it('forced again when already alone: appends nothing, still drops the uncommitted suffix for good', async () => {
    const wal = await walWith(conf([0xaan]), [normal(2, 2), normal(3, 2), normal(4, 3)], 2);
    const forced = await forceNewCluster(wal, await wal.readAll(), SELF, CLUSTER_ID, 0, log);
    expect(forced.appended).toEqual([]);
    expect(forced.contents.entries.map((e) => e.index)).toEqual([2]);
    await wal.close();
    const reopened = await Wal.open(path.join(dirs[dirs.length - 1], 'wal'));
    const back = await reopened.readAll();
    await reopened.close();
    expect(back.entries.map((e) => e.index)).toEqual([2]);
  });

  it('with every committed entry in the snapshot, the log is reset to the snapshot', async () => {
    const wal = await walWith(conf([0xaan]), [normal(2, 2), normal(3, 2)], 1);
    await forceNewCluster(wal, await wal.readAll(), SELF, CLUSTER_ID, 0, log);
    await wal.close();
    const reopened = await Wal.open(path.join(dirs[dirs.length - 1], 'wal'));
    const back = await reopened.readAll();
    await reopened.close();
    expect(back.entries).toEqual([]);
    expect(back.snapshot?.index).toBe(1);
  });

  it('refuses a log that ends in a joint configuration, which simple removals cannot leave', async () => {
    const joint = confEntry(2, 2, { transition: 0, changes: [{ type: ConfChangeType.AddNode, nodeId: 0xddn }, { type: ConfChangeType.RemoveNode, nodeId: 0xccn }] });
    const wal = await walWith(conf([0xaan, 0xbbn, 0xccn]), [joint], 2);
    await expect(forceNewCluster(wal, await wal.readAll(), SELF, CLUSTER_ID, 0, log)).rejects.toThrow(/joint configuration/);
    await wal.close();
  });

  it('entries the backend already applied past the WAL commit index count as committed', async () => {
    // Applied during the fsync of the hard state that committed them: the crash hit before it landed.
    const wal = await walWith(conf([0xaan, 0xbbn]), [normal(2, 2), normal(3, 2), normal(4, 2)], 2);
    const forced = await forceNewCluster(wal, await wal.readAll(), SELF, CLUSTER_ID, 3, log);
    await wal.close();
    expect(forced.contents.entries.map((e) => e.index)).toEqual([2, 3, 4]);
    expect(forced.appended.map((e) => e.index)).toEqual([4]);
    expect(changes(forced.appended)).toEqual([{ type: ConfChangeType.RemoveNode, nodeId: 0xbbn }]);
  });
});
