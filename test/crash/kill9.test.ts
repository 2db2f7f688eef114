import { afterAll, describe, expect, it } from 'vitest';
import { startMember, type Member } from '../support/member';
import { waitFor } from '../support/cluster';
import { connect, must } from '../support/grpc-client';

/**
 * Crash safety: SIGKILL a member in the middle of a concurrent write stream, restart it, and check
 * that every acknowledged write is there, at the revision its acknowledgement reported. Each key is
 * written once, so its mod_revision must equal the revision in the Put response header.
 */

const WRITERS = 32;
/** The kill comes once this many writes are acknowledged: in the middle of the stream. */
const KILL_AFTER_ACKS = 500;
const LOAD_DEADLINE_MS = 30_000;

let member: Member | undefined;
afterAll(async () => {
  await member?.cleanup();
});

describe('kill -9 in the middle of a write stream', () => {
  it('loses no acknowledged write, and revisions survive restart', async () => {
    member = await startMember({ kind: 'cairn' });
    const m = member;
    const acked = new Map<string, number>();
    let stop = false;
    let seq = 0;
    const writer = async (): Promise<void> => {
      const c = connect(m.endpoint, { defaultDeadlineMs: 3000 });
      try {
        while (!stop) {
          const key = `crash/${String(seq++).padStart(8, '0')}`;
          const r = await c.put({ key: Buffer.from(key), value: Buffer.from(`v-${key}`) });
          if (r.err) break; // the member died under us; the outcome of this write is unknown
          acked.set(key, Number(r.ok.header.revision));
        }
      } finally {
        c.close();
      }
    };
    const writers = Array.from({ length: WRITERS }, writer);
    await waitFor(`${KILL_AFTER_ACKS} acknowledged writes`, LOAD_DEADLINE_MS, () => acked.size >= KILL_AFTER_ACKS);
    await m.kill('SIGKILL');
    stop = true;
    await Promise.all(writers);
    expect(acked.size).toBeGreaterThan(100);

    await m.restart();
    // A kill leaves no index checkpoint (the open before it removed the last one): a full scan.
    expect(lastIndexSource(m.log())).toBe('scan');
    const c = connect(m.endpoint);
    try {
      const all = must(await c.range({ key: Buffer.from('crash/'), range_end: Buffer.from('crash0') }));
      const found = new Map<string, { value: string; mod: number }>();
      for (const kv of all.kvs) found.set(kv.key.toString(), { value: kv.value.toString(), mod: Number(kv.mod_revision) });
      const missing = [...acked.keys()].filter((k) => !found.has(k));
      expect(missing, 'acknowledged writes missing after kill -9').toEqual([]);
      for (const [key, rev] of acked) {
        expect(found.get(key)).toEqual({ value: `v-${key}`, mod: rev });
      }
      // Revisions stay dense and monotonic: the store continues exactly after the last write.
      const maxAcked = Math.max(...acked.values());
      expect(Number(all.header.revision)).toBeGreaterThanOrEqual(maxAcked);
      const next = must(await c.put({ key: Buffer.from('after-restart'), value: Buffer.from('x') }));
      expect(Number(next.header.revision)).toBe(Number(all.header.revision) + 1);

      // A clean stop writes the checkpoint; the member restarted from it serves the same data.
      c.close();
      await m.stop();
      await m.restart();
      expect(lastIndexSource(m.log())).toBe('checkpoint');
      const c2 = connect(m.endpoint);
      try {
        const again = must(await c2.range({ key: Buffer.from('crash/'), range_end: Buffer.from('crash0') }));
        expect(again.kvs.map((kv) => [kv.key.toString(), kv.value.toString(), Number(kv.mod_revision), Number(kv.version)]))
          .toEqual(all.kvs.map((kv) => [kv.key.toString(), kv.value.toString(), Number(kv.mod_revision), Number(kv.version)]));
        const rewritten = must(await c2.put({ key: Buffer.from('after-restart'), value: Buffer.from('y'), prev_kv: true }));
        expect(Number(rewritten.prev_kv?.version)).toBe(1);
        const check = must(await c2.range({ key: Buffer.from('after-restart') }));
        expect([Number(check.kvs[0].create_revision), Number(check.kvs[0].version)]).toEqual([Number(next.header.revision), 2]);
      } finally {
        c2.close();
      }
    } finally {
      c.close();
    }
  });
});

/** How the newest restart in the log rebuilt the key index ("checkpoint" or "scan"). */
function lastIndexSource(log: string): string | undefined {
  const lines = log.split('\n').filter((l) => l.includes('"restarting member from data directory"'));
  const last = lines[lines.length - 1];
  return last === undefined ? undefined : (JSON.parse(last) as Record<string, string>)['key-index-from'];
}
