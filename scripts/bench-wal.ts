/**
 * npm run bench:wal: what one synced Ready costs in the WAL, the old way (a LevelDB batch with
 * sync, as server/storage/wal was before the segment WAL) and the new one (records appended to a
 * preallocated segment, fdatasync), on the same disk, back to back.
 *
 *   npm run bench:wal -- [--saves 2000] [--entry-bytes 256] [--concurrent 64] [--dir /tmp]
 *
 * "sequential": one save at a time (the Ready loop's shape: the next Ready waits for this one);
 * "concurrent": that many saves issued at once, so the new WAL's group commit shares fsyncs.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Level } from 'level';
import { Wal, type WalEntry } from '../server/storage/wal/wal';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

const SAVES = Number(arg('saves', '2000'));
const ENTRY_BYTES = Number(arg('entry-bytes', '256'));
const CONCURRENT = Number(arg('concurrent', '64'));
const BASE = arg('dir', os.tmpdir());

interface Target {
  name: string;
  save(e: WalEntry): Promise<void>;
  close(): Promise<void>;
}

const u64 = (n: number | bigint): Buffer => {
  const b = Buffer.allocUnsafe(8);
  b.writeBigUInt64BE(BigInt(n));
  return b;
};

/** The old WAL's save: entry and hard state in one LevelDB batch, sync. */
async function leveldbTarget(dir: string): Promise<Target> {
  const db = new Level<Buffer, Buffer>(dir, { keyEncoding: 'buffer', valueEncoding: 'buffer' });
  await db.open();
  return {
    name: 'LevelDB batch, sync (old)',
    save: (e) =>
      db.batch(
        [
          { type: 'put', key: Buffer.concat([Buffer.from('e'), u64(e.index)]), value: Buffer.concat([u64(e.term), Buffer.from([e.type]), e.data]) },
          { type: 'put', key: Buffer.from('h'), value: Buffer.concat([u64(e.term), u64(0), u64(e.index)]) },
        ],
        { sync: true },
      ),
    close: () => db.close(),
  };
}

async function segmentTarget(dir: string): Promise<Target> {
  const w = await Wal.open(dir);
  return {
    name: 'segment WAL, fdatasync (new)',
    save: (e) => w.save({ entries: [e], hardState: { term: e.term, vote: 0n, commit: e.index }, sync: true }),
    close: () => w.close(),
  };
}

const entry = (index: number): WalEntry => ({ index, term: 1, type: 0, data: Buffer.alloc(ENTRY_BYTES, index % 251) });

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

async function sequential(t: Target): Promise<{ p50: number; p99: number; perSec: number }> {
  const ms: number[] = [];
  const start = process.hrtime.bigint();
  for (let i = 1; i <= SAVES; i++) {
    const s = process.hrtime.bigint();
    await t.save(entry(i));
    ms.push(Number(process.hrtime.bigint() - s) / 1e6);
  }
  const total = Number(process.hrtime.bigint() - start) / 1e9;
  ms.sort((a, b) => a - b);
  return { p50: pct(ms, 0.5), p99: pct(ms, 0.99), perSec: SAVES / total };
}

async function concurrent(t: Target, from: number): Promise<number> {
  const start = process.hrtime.bigint();
  let next = from;
  const worker = async (): Promise<void> => {
    while (next < from + SAVES) await t.save(entry(next++));
  };
  await Promise.all(Array.from({ length: CONCURRENT }, worker));
  return SAVES / (Number(process.hrtime.bigint() - start) / 1e9);
}

async function main(): Promise<void> {
  const rows: string[] = [];
  for (const make of [leveldbTarget, segmentTarget]) {
    const dir = fs.mkdtempSync(path.join(BASE, 'cairn-bench-wal-'));
    try {
      const t = await make(path.join(dir, 'wal'));
      const seq = await sequential(t);
      const conc = await concurrent(t, SAVES + 1);
      await t.close();
      rows.push(`| ${t.name} | ${seq.p50.toFixed(3)} | ${seq.p99.toFixed(3)} | ${seq.perSec.toFixed(0)} | ${conc.toFixed(0)} |`);
      process.stderr.write(`${rows[rows.length - 1]}\n`);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }
  process.stdout.write(`\n${SAVES} saves of one ${ENTRY_BYTES}-byte entry + hard state; concurrent: ${CONCURRENT} at once\n\n`);
  process.stdout.write('| WAL | sequential p50 ms | sequential p99 ms | sequential saves/s | concurrent saves/s |\n|---|---:|---:|---:|---:|\n');
  process.stdout.write(`${rows.join('\n')}\n`);
}

main().catch((e: unknown) => {
  process.stderr.write(`${String(e)}\n`);
  process.exit(1);
});
