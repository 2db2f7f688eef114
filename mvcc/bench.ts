/**
 * Put throughput through write()/end(), the apply loop's hot path.
 * Build, then: node dist/mvcc/bench.js [puts] [keys] [valueBytes] [putsPerTxn] [valueCacheBytes]
 * (valueCacheBytes 0 turns the value cache off; absent = DEFAULT_VALUE_CACHE_BYTES).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KvStore } from './kv-store';

/** Linux's USER_HZ (`getconf CLK_TCK`), the unit of /proc's utime and stime. */
const CLOCK_TICKS_PER_SECOND = 100;

async function main(): Promise<void> {
  const [puts = 200_000, keyCount = 100_000, valueBytes = 128, perTxn = 1, valueCacheBytes] = process.argv.slice(2).map(Number);
  const dir = mkdtempSync(join(tmpdir(), 'cairn-mvcc-bench-'));
  const store = await KvStore.open(join(dir, 'db'), valueCacheBytes === undefined ? {} : { valueCacheBytes });
  const keys = Array.from({ length: keyCount }, (_, i) => Buffer.from(`/registry/pods/default/pod-${i}`));
  const value = Buffer.alloc(valueBytes, 0x61);
  let index = 0;
  const started = process.hrtime.bigint();
  // CPU time as well as wall time: on a shared, loaded machine the wall-clock rate mostly measures
  // the other processes. The main thread's (the apply loop's) and the whole process's (LevelDB's
  // threads too).
  const cpuStarted = process.cpuUsage();
  const mainCpuStarted = mainThreadCpuSeconds();
  let lastYield = started;
  for (let i = 0; i < puts; i += perTxn) {
    const w = store.write();
    for (let j = 0; j < perTxn; j++) w.put(keys[(i + j) % keyCount], value);
    w.end({ consistentIndex: ++index });
    // Let timers and LevelDB callbacks run, as the real apply loop would between raft batches.
    const now = process.hrtime.bigint();
    if (now - lastYield > 5_000_000n) {
      await new Promise((r) => setImmediate(r));
      lastYield = now;
    }
  }
  const applied = process.hrtime.bigint();
  const applyCpu = process.cpuUsage(cpuStarted);
  const applyMainCpu = mainThreadCpuSeconds() - mainCpuStarted;
  await store.forceCommit();
  const flushed = process.hrtime.bigint();
  const applySec = Number(applied - started) / 1e9;
  const totalSec = Number(flushed - started) / 1e9;
  console.log(JSON.stringify({
    puts, keyCount, valueBytes, perTxn, valueCacheBytes: valueCacheBytes ?? 'default',
    applyPutsPerSec: Math.round(puts / applySec),
    putsPerSecIncludingFlush: Math.round(puts / totalSec),
    applyPutsPerCpuSec: Math.round(puts / ((applyCpu.user + applyCpu.system) / 1e6)),
    applyPutsPerMainThreadCpuSec: Number.isNaN(applyMainCpu) ? undefined : Math.round(puts / applyMainCpu),
    rev: store.rev,
    heapMiB: Math.round(process.memoryUsage().heapUsed / 2 ** 20),
    heapAfterGcMiB: gcHeapMiB(),
    externalMiB: Math.round(process.memoryUsage().external / 2 ** 20),
  }));
  await store.close();
  rmSync(dir, { recursive: true, force: true });
}

void main();

/** Heap in use after a full GC when run with --expose-gc, else undefined. */
function gcHeapMiB(): number | undefined {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) return undefined;
  gc();
  return Math.round(process.memoryUsage().heapUsed / 2 ** 20);
}

/** CPU seconds (user + system) of the main thread, from /proc (Linux; NaN elsewhere). */
function mainThreadCpuSeconds(): number {
  try {
    const stat = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8');
    // Fields after the parenthesised command name: state is field 3, utime 14, stime 15 (clock ticks).
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SECOND;
  } catch {
    return Number.NaN;
  }
}
