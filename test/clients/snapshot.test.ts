import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startMember, CAIRN_BIN, type Member } from '../support/member';
import { etcdctl } from '../support/etcdctl';
import { connect, must } from '../support/grpc-client';

/**
 * `etcdctl snapshot save` against cairn, then `bin/cairn snapshot restore` into a new data dir:
 * the restored member starts a new cluster with the same keys, values, revisions and history.
 */
const members: Member[] = [];
afterAll(async () => {
  for (const m of members) await m.cleanup();
});

describe('snapshot save and restore', () => {
  it('restores keys, revisions and history into a new cluster', async () => {
    const src = await startMember({ kind: 'cairn' });
    members.push(src);
    const c = connect(src.endpoint);
    for (let i = 0; i < 50; i++) must(await c.put({ key: Buffer.from(`snap/${i}`), value: Buffer.from(`v${i}`) }));
    must(await c.put({ key: Buffer.from('snap/0'), value: Buffer.from('v0-2') }));
    must(await c.deleteRange({ key: Buffer.from('snap/1') }));
    const before = must(await c.range({ key: Buffer.from('snap/'), range_end: Buffer.from('snap0') }));
    c.close();

    const file = path.join(src.tmpDir, 'backup.db');
    const saved = await etcdctl(src.endpoint, ['snapshot', 'save', file]);
    expect(saved.code, saved.stderr).toBe(0);
    expect(saved.stdout).toContain(`Snapshot saved at ${file}`);

    // A corrupted copy is refused by the integrity check.
    const bad = `${file}.bad`;
    const bytes = fs.readFileSync(file);
    bytes[100] ^= 0xff;
    fs.writeFileSync(bad, bytes);
    expect(() => execFileSync(process.execPath, [CAIRN_BIN, 'snapshot', 'status', bad], { stdio: 'pipe' })).toThrow(/integrity check failed/);

    const dataDir = path.join(src.tmpDir, 'restored');
    const out = execFileSync(process.execPath, [CAIRN_BIN, 'snapshot', 'restore', file, '--data-dir', dataDir, '--name', 'restored'], { encoding: 'utf8' });
    expect(out).toContain(`${before.count} keys at revision ${before.header.revision}`);

    const restored = await startMember({ kind: 'cairn', name: 'restored', dataDir });
    members.push(restored);
    const r = connect(restored.endpoint);
    try {
      const after = must(await r.range({ key: Buffer.from('snap/'), range_end: Buffer.from('snap0') }));
      expect(after.kvs).toEqual(before.kvs);
      expect(after.header.revision).toBe(before.header.revision);
      // History survives: the first value of snap/0 is readable at its old revision.
      const old = must(await r.range({ key: Buffer.from('snap/0'), revision: before.kvs[0].create_revision }));
      expect(old.kvs[0].value.toString()).toBe('v0');
      // The new cluster continues the revision sequence.
      const next = must(await r.put({ key: Buffer.from('snap/new'), value: Buffer.from('x') }));
      expect(Number(next.header.revision)).toBe(Number(before.header.revision) + 1);
    } finally {
      r.close();
    }
  });
});
