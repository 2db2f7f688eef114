import * as prom from 'prom-client';

/**
 * Small constructors for etcd's metric families. Every family is registered on the member's own
 * registry (several members may share a process in tests and when embedded).
 */
export const exp = prom.exponentialBuckets;

export function gauge(r: prom.Registry, name: string, help: string, collect?: (g: prom.Gauge) => void): prom.Gauge {
  return new prom.Gauge({ name, help, registers: [r], ...(collect ? { collect(this: prom.Gauge) { collect(this); } } : {}) });
}

export function counter(r: prom.Registry, name: string, help: string): prom.Counter {
  return new prom.Counter({ name, help, registers: [r] });
}

/** One series of a counter on a hot path: counts into a plain number (see hotCounterVec). */
export interface CounterSeries {
  inc(by?: number): void;
}

/** A labelled counter with series that cost a number addition per inc() instead of a label hash. */
export type HotCounter<L extends string> = prom.Counter<L> & { series(labels: prom.LabelValues<L>): CounterSeries };

/**
 * A counterVec for per-request counting (grpc_server_*, etcd_server_client_requests_total):
 * prom-client hashes and validates the label object on every inc(), even through labels(), which
 * was ~3 % of a put's main-thread time (issue 12, hot path). A series made once by series() counts
 * into a plain number, and the counter's collect() hands what it counted to prom-client when the
 * counter is read (every /metrics scrape and get()), so a scrape sees exactly what was counted.
 */
export function hotCounterVec<L extends string>(r: prom.Registry, name: string, help: string, labelNames: readonly L[]): HotCounter<L> {
  const pending: Array<{ labels: prom.LabelValues<L>; n: number }> = [];
  const c = new prom.Counter<L>({
    name,
    help,
    labelNames,
    registers: [r],
    collect(this: prom.Counter<L>) {
      for (const p of pending) {
        if (p.n === 0) continue;
        const n = p.n;
        p.n = 0;
        this.inc(p.labels, n);
      }
    },
  });
  return Object.assign(c, {
    series(labels: prom.LabelValues<L>): CounterSeries {
      const p = { labels: { ...labels }, n: 0 };
      c.inc(p.labels, 0); // validates the labels once, and the series exists from now on, as after labels().inc()
      pending.push(p);
      return {
        inc(by = 1): void {
          p.n += by;
        },
      };
    },
  });
}

export function histogram(r: prom.Registry, name: string, help: string, buckets: number[]): prom.Histogram {
  return new prom.Histogram({ name, help, buckets, registers: [r] });
}

export function gaugeVec<L extends string>(r: prom.Registry, name: string, help: string, labelNames: readonly L[]): prom.Gauge<L> {
  return new prom.Gauge<L>({ name, help, labelNames, registers: [r] });
}

export function counterVec<L extends string>(r: prom.Registry, name: string, help: string, labelNames: readonly L[]): prom.Counter<L> {
  return new prom.Counter<L>({ name, help, labelNames, registers: [r] });
}

export function histogramVec<L extends string>(r: prom.Registry, name: string, help: string, labelNames: readonly L[], buckets: number[]): prom.Histogram<L> {
  return new prom.Histogram<L>({ name, help, labelNames, buckets, registers: [r] });
}
