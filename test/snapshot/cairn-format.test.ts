import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { KvStore } from '../../mvcc/kv-store';
import { del, kvSummary, put, removeTempDirs, tempDir } from '../../mvcc/test-helpers';
import { encodeEntries, frameSnapshot } from '../../server/api/snapshot-file';
import { restoreSnapshot } from '../../server/etcdmain/snapshot-restore';
import { snapshotStatus } from '../../server/etcdmain/snapshot-status';

/**
 * Snapshots in cairn's format from before it streamed etcd's (MAGIC, framed LevelDB entries,
 * sha256): still restored by `cairn snapshot restore`, so existing backups stay usable.
 */
afterAll(removeTempDirs);

describe("cairn's earlier snapshot format", () => {
  it('restores keys, history, leases and drops the old cluster identity', async () => {
    const src = await KvStore.open(tempDir());
    put(src, 'a', '1');
    put(src, 'a', '2', 7n);
    put(src, 'b', '3');
    del(src, 'b');
    src.bucket('lease').put(Buffer.from('0000000000000007', 'hex'), Buffer.alloc(24, 1));
    src.bucket('members').put(Buffer.alloc(8, 1), Buffer.from('{}'));
    await src.forceCommit({ sync: true });
    const entries = [];
    for await (const chunk of src.snapshotEntries()) entries.push(...chunk);
    const before = src.rangeCurrent(Buffer.from([0]), Buffer.from([0]), {}).kvs.map(kvSummary);
    const rev = src.rev;
    await src.close();

    const body = frameSnapshot(encodeEntries(entries));
    const dir = path.dirname(tempDir());
    const file = path.join(dir, 'old.snap');
    fs.writeFileSync(file, Buffer.concat([body, createHash('sha256').update(body).digest()]));
    const st = snapshotStatus(file);
    expect(st.revision).toBe(rev);
    expect(st.totalKey).toBe(entries.length);

    const dataDir = path.join(dir, 'restored');
    expect(await restoreSnapshot(file, dataDir)).toEqual({ keys: 1, revision: rev });
    const back = await KvStore.open(path.join(dataDir, 'member', 'snap', 'db'));
    try {
      expect(back.rangeCurrent(Buffer.from([0]), Buffer.from([0]), {}).kvs.map(kvSummary)).toEqual(before);
      expect(back.consistentIndex).toBe(0);
      expect((await back.bucket('lease').get(Buffer.from('0000000000000007', 'hex')))?.equals(Buffer.alloc(24, 1))).toBe(true);
      const members = [];
      for await (const m of back.bucket('members').iterate()) members.push(m);
      expect(members).toEqual([]);
    } finally {
      await back.close();
    }
  });
});
