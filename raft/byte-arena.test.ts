import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ARENA_MAX_COPY_BYTES, ByteArena } from './byte-arena';

/**
 * Run in a child with --expose-gc, on the compiled module (npm test builds dist/ first): fills
 * arenas of the default chunk size with `mb` MiB of 1000-byte payloads after a first round was
 * filled and freed (as a member's log is, compaction after compaction), drops them, and reports
 * RssAnon before, full and once it fell back (or after `deadlineMs`), in MiB.
 */
const RSS_PROBE = `
const { ByteArena } = require(process.argv[1]);
const [mb, deadlineMs] = [Number(process.argv[2]), Number(process.argv[3])];
const rss = () => Number(/RssAnon:\\s+(\\d+)/.exec(require('fs').readFileSync('/proc/self/status', 'utf8'))[1]) / 1024;
const payload = Buffer.alloc(1000, 1);
function fill(n) {
  const a = new ByteArena();
  const out = new Array(Math.ceil((n * 1024 * 1024) / payload.length));
  for (let i = 0; i < out.length; i++) out[i] = a.copy(payload);
  return out;
}
let held = fill(mb / 4);
held = null;
gc();
const before = rss();
held = fill(mb);
const full = rss();
held = null;
const start = Date.now();
(function poll() {
  gc();
  const now = rss();
  if (now < before + mb / 4 || Date.now() - start > deadlineMs) return console.log(JSON.stringify({ before, full, after: now }));
  setTimeout(poll, 20);
})();
`;

describe('ByteArena', () => {
  it('copies bytes into a shared chunk, sharing no memory with the source', () => {
    const arena = new ByteArena(1024);
    const src = Buffer.allocUnsafe(100).fill(7);
    const a = arena.copy(src);
    src.fill(9);
    expect([...a]).toEqual(new Array(100).fill(7));
    const b = arena.copy(Buffer.from('hello'));
    // Consecutive copies sit one after the other in the same chunk.
    expect(b.buffer).toBe(a.buffer);
    expect(b.byteOffset).toBe(a.byteOffset + 100);
    expect(b.toString()).toBe('hello');
    expect(a.buffer.byteLength).toBe(1024);
  });

  it('starts a new chunk when the current one cannot hold the copy, leaving earlier copies intact', () => {
    const arena = new ByteArena(256);
    const first = arena.copy(Buffer.alloc(200, 1));
    const second = arena.copy(Buffer.alloc(100, 2));
    expect(second.buffer).not.toBe(first.buffer);
    expect([...first].every((x) => x === 1)).toBe(true);
    expect([...second].every((x) => x === 2)).toBe(true);
  });

  it('gives large payloads a buffer of their own, and empty ones no memory', () => {
    const arena = new ByteArena();
    const big = arena.copy(Buffer.alloc(ARENA_MAX_COPY_BYTES + 1, 3));
    expect(big.buffer.byteLength).toBe(ARENA_MAX_COPY_BYTES + 1);
    expect(arena.copy(new Uint8Array(0)).length).toBe(0);
  });

  it('gives a freed chunk\'s memory back to the system (glibc maps each chunk on its own)', () => {
    const mb = 256;
    const modulePath = path.resolve(__dirname, '../dist/raft/byte-arena.js');
    const out = execFileSync(process.execPath, ['--expose-gc', '-e', RSS_PROBE, modulePath, String(mb), '10000'], { encoding: 'utf8' });
    const { before, full, after } = JSON.parse(out) as { before: number; full: number; after: number };
    expect(full - before).toBeGreaterThan(mb / 2);
    // With chunks below glibc's mmap threshold cap (1 MiB before), ~200 of the 256 MiB stayed.
    expect(after).toBeLessThan(before + mb / 4);
  });
});
