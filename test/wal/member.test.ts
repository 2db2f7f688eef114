import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { RecordType } from '../../server/storage/wal/record';
import { connect, must } from '../support/grpc-client';
import { startMember, type Member } from '../support/member';
import { freePorts } from '../support/ports';
import { fatalLines, killIfRunning, spawnCairn, tail, waitExit, type Proc } from '../failstop/process';
import { frames, segmentPaths } from './support';

/**
 * The WAL's repair rules seen from bin/cairn: a member whose WAL has a flipped byte in the middle
 * refuses to start with one fatal line naming the file and offset (etcd: "walpb: crc mismatch"),
 * and one whose last segment ends mid-record (a torn write) starts with every acknowledged write.
 */

const KEYS = 40;
const EXIT_TIMEOUT_MS = 15_000;

const members: Member[] = [];
const procs: Proc[] = [];
afterAll(async () => {
  for (const p of procs) await killIfRunning(p);
  for (const m of members) await m.cleanup();
});

async function memberWithKeys(): Promise<{ m: Member; acked: Map<string, string> }> {
  const m = await startMember({ kind: 'cairn' });
  members.push(m);
  const acked = new Map<string, string>();
  const c = connect(m.endpoint);
  try {
    for (let i = 0; i < KEYS; i++) {
      const key = `wal/${String(i).padStart(4, '0')}`;
      must(await c.put({ key: Buffer.from(key), value: Buffer.from(`v${i}`.repeat(50)) }));
      acked.set(key, `v${i}`.repeat(50));
    }
  } finally {
    c.close();
  }
  return { m, acked };
}

const walDir = (m: Member): string => path.join(m.dataDir, 'member', 'wal');

/** The entry records of a segment (their type byte follows the 8-byte length field). */
function entryFrames(file: string): { offset: number; bytes: number }[] {
  const buf = fs.readFileSync(file);
  return frames(file).filter((f) => buf[f.offset + 8] === RecordType.Entry);
}

describe('bin/cairn on a damaged WAL', () => {
  it('refuses to start on a flipped byte mid-segment, naming file and offset in one fatal line', async () => {
    const { m } = await memberWithKeys();
    await m.stop();
    const [seg] = segmentPaths(walDir(m)).slice(-1);
    const ents = entryFrames(seg);
    const victim = ents[Math.floor(ents.length / 2)];
    const buf = fs.readFileSync(seg);
    buf[victim.offset + victim.bytes - 12] ^= 0xff;
    fs.writeFileSync(seg, buf);

    const [clientPort, peerPort] = await freePorts(2);
    const c = `http://127.0.0.1:${clientPort}`;
    const p = `http://127.0.0.1:${peerPort}`;
    const proc = spawnCairn(
      ['--name', m.name, '--data-dir', m.dataDir, '--listen-client-urls', c, '--advertise-client-urls', c, '--listen-peer-urls', p, '--initial-advertise-peer-urls', p, '--initial-cluster', `${m.name}=${p}`],
      path.join(m.tmpDir, 'corrupt.log'),
      m.tmpDir,
    );
    procs.push(proc);
    const { code, signal } = await waitExit(proc, EXIT_TIMEOUT_MS);
    const log = proc.log();
    expect({ code, signal }, tail(log)).toEqual({ code: 1, signal: null });
    const fatal = fatalLines(log);
    expect(fatal, tail(log)).toHaveLength(1);
    expect(fatal[0].msg).toBe(`wal: crc mismatch: in file '${seg}' at position: ${victim.offset}`);
    expect(fatal[0]).toMatchObject({ file: seg, offset: victim.offset });
    expect(log).not.toContain('elected leader');
  });

  it('starts after a torn write at the end of the last segment, with every acknowledged write', async () => {
    const { m, acked } = await memberWithKeys();
    await m.kill('SIGKILL');
    const [seg] = segmentPaths(walDir(m)).slice(-1);
    const all = frames(seg);
    const end = all[all.length - 1].offset + all[all.length - 1].bytes;
    // Half of a record (a copy of an entry's frame) after the last one, and the file ends there:
    // the write was cut off by the power.
    const ents = entryFrames(seg);
    const src = ents[ents.length - 1];
    const buf = fs.readFileSync(seg);
    const half = buf.subarray(src.offset, src.offset + Math.floor(src.bytes / 2));
    const fd = fs.openSync(seg, 'r+');
    fs.writeSync(fd, half, 0, half.length, end);
    fs.closeSync(fd);
    fs.truncateSync(seg, end + half.length);

    await m.restart();
    expect(m.log()).toContain('wal: repaired a torn write at the end of the last segment');
    const c = connect(m.endpoint);
    try {
      const r = must(await c.range({ key: Buffer.from('wal/'), range_end: Buffer.from('wal0') }));
      expect(new Map(r.kvs.map((kv: { key: Buffer; value: Buffer }) => [kv.key.toString(), kv.value.toString()]))).toEqual(acked);
      must(await c.put({ key: Buffer.from('wal/after'), value: Buffer.from('x') }));
    } finally {
      c.close();
    }
    // The repaired WAL takes appends: a clean restart still replays it.
    await m.restart();
    const c2 = connect(m.endpoint);
    try {
      expect(must(await c2.range({ key: Buffer.from('wal/after') })).kvs.map((kv: { value: Buffer }) => kv.value.toString())).toEqual(['x']);
    } finally {
      c2.close();
    }
  });
});
