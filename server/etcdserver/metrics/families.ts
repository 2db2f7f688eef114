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
