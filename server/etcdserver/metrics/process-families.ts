import * as fs from 'node:fs';
import * as prom from 'prom-client';
import { counterVec, gauge } from './families';

/** Go's process collector reports an unlimited address space as the largest uint64, as a float. */
const UNLIMITED = 18446744073709551615;

/** A limit from /proc/self/limits (soft value); undefined where /proc is missing. */
function procLimit(row: string): number | undefined {
  try {
    const line = fs.readFileSync('/proc/self/limits', 'utf8').split('\n').find((l) => l.startsWith(row));
    const soft = line?.slice(row.length).trim().split(/\s+/)[0];
    if (soft === undefined) return undefined;
    return soft === 'unlimited' ? UNLIMITED : Number(soft);
  } catch {
    return undefined;
  }
}

function openFds(): number | undefined {
  try {
    return fs.readdirSync('/proc/self/fd').length;
  } catch {
    return undefined;
  }
}

/**
 * Process and runtime families. prom-client's defaults give process_* (cpu, memory, fds, start
 * time) and nodejs_* (event loop, heap, GC), which stand in for Go's go_* runtime families.
 * Added here: the process_* family Go has and prom-client lacks, etcd's os_fd_* (pkg/runtime,
 * etcdserver/metrics.go monitorFileDescriptor) and promhttp's scrape counters.
 */
export function processFamilies(r: prom.Registry) {
  prom.collectDefaultMetrics({ register: r });
  const set = (v: number | undefined) => (g: prom.Gauge) => {
    if (v !== undefined) g.set(v);
  };
  const scrapes = counterVec(r, 'promhttp_metric_handler_requests_total', 'Total number of scrapes by HTTP status code.', ['code']);
  // promhttp starts the codes it can answer with at 0.
  for (const code of ['200', '500', '503']) scrapes.inc({ code }, 0);
  return {
    virtualMemoryMax: gauge(r, 'process_virtual_memory_max_bytes', 'Maximum amount of virtual memory available in bytes.', (g) => set(procLimit('Max address space'))(g)),
    fdUsed: gauge(r, 'os_fd_used', 'The number of used file descriptors.', (g) => set(openFds())(g)),
    fdLimit: gauge(r, 'os_fd_limit', 'The file descriptor limit.', (g) => set(procLimit('Max open files'))(g)),
    scrapesInFlight: gauge(r, 'promhttp_metric_handler_requests_in_flight', 'Current number of scrapes being served.'),
    scrapes,
  };
}

export type ProcessFamilies = ReturnType<typeof processFamilies>;
