import * as prom from 'prom-client';
import { describe, expect, it } from 'vitest';
import { hotCounterVec } from '../../server/etcdserver/metrics/families';

/** What a scrape of the registry says for one series of the counter. */
async function scraped(r: prom.Registry, name: string, labels: Record<string, string>): Promise<number | undefined> {
  const m = (await r.getMetricsAsJSON()).find((x) => x.name === name);
  const v = m?.values.find((x) => Object.entries(labels).every(([k, want]) => x.labels[k] === want));
  return v?.value;
}

describe('hotCounterVec', () => {
  it('a series counts what inc() was called for, as the scrape sees it, across scrapes and beside prom-client inc()', async () => {
    const r = new prom.Registry();
    const c = hotCounterVec(r, 'test_calls_total', 'calls', ['method', 'code']);
    const ok = c.series({ method: 'Put', code: 'OK' });
    expect(await scraped(r, 'test_calls_total', { method: 'Put', code: 'OK' })).toBe(0);
    for (let i = 0; i < 5; i++) ok.inc();
    ok.inc(3);
    c.inc({ method: 'Put', code: 'OK' }, 2); // prom-client's own path lands in the same series
    expect(await scraped(r, 'test_calls_total', { method: 'Put', code: 'OK' })).toBe(10);
    ok.inc();
    expect(await scraped(r, 'test_calls_total', { method: 'Put', code: 'OK' })).toBe(11);
    expect(await r.metrics()).toContain('test_calls_total{method="Put",code="OK"} 11');
    // A second handle on the same labels adds to the same series.
    c.series({ method: 'Put', code: 'OK' }).inc(4);
    expect(await scraped(r, 'test_calls_total', { method: 'Put', code: 'OK' })).toBe(15);
    expect(await scraped(r, 'test_calls_total', { method: 'Range', code: 'OK' })).toBeUndefined();
  });

  it('refuses a label it does not have when the series is made, as prom-client does on inc()', () => {
    const r = new prom.Registry();
    const c = hotCounterVec(r, 'test_calls_total', 'calls', ['method']);
    expect(() => c.series({ method: 'Put', other: 'x' } as never)).toThrow();
  });
});
