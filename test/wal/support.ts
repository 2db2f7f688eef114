import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { decodeLengthField, FRAME_BYTES } from '../../server/storage/wal/record';
import { listSegments } from '../../server/storage/wal/segment-files';
import type { WalEntry } from '../../server/storage/wal/wal';

/** Helpers for the WAL tests: temporary dirs, entries with recognisable data, the frames of a segment. */

/** Small segments, so a few hundred entries cross several cuts. */
export const TEST_SEGMENT_BYTES = 64 * 1024;

const dirs: string[] = [];

export function tmpWalDir(prefix = 'cairn-wal-'): string {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  dirs.push(base);
  return path.join(base, 'wal');
}

export function removeTmpDirs(): void {
  if (process.env.CAIRN_TEST_KEEP_TMP === '1') return;
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
}

export function entry(index: number, term = 1, bytes = 40): WalEntry {
  const data = Buffer.alloc(bytes, `e${index}-t${term};`);
  return { index, term, type: 0, data };
}

export function entries(from: number, to: number, term = 1, bytes = 40): WalEntry[] {
  const out: WalEntry[] = [];
  for (let i = from; i <= to; i++) out.push(entry(i, term, bytes));
  return out;
}

/** Comparable form (Buffer vs Uint8Array does not matter, the bytes do). */
export function plain(es: readonly WalEntry[]): { index: number; term: number; type: number; data: string }[] {
  return es.map((e) => ({ index: e.index, term: e.term, type: e.type, data: Buffer.from(e.data).toString('hex') }));
}

export function segmentPaths(dir: string): string[] {
  return listSegments(dir).map((s) => path.join(dir, s.name));
}

/** Start offset and length (length field included) of every record in a segment, parsed independently of the decoder. */
export function frames(file: string): { offset: number; bytes: number }[] {
  const buf = fs.readFileSync(file);
  const out: { offset: number; bytes: number }[] = [];
  let off = 0;
  while (off + FRAME_BYTES <= buf.length) {
    if (buf.readUInt32LE(off) === 0 && buf.readUInt32LE(off + 4) === 0) break;
    const f = decodeLengthField(buf, off);
    if (!f) throw new Error(`bad length field at ${off} in ${file}`);
    const bytes = FRAME_BYTES + f.recordBytes + f.padBytes;
    out.push({ offset: off, bytes });
    off += bytes;
  }
  return out;
}
