import { describe, expect, it } from 'vitest';
import { ARENA_MAX_COPY_BYTES, ByteArena } from './byte-arena';

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
});
