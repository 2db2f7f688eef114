/**
 * npm run bench: the same Go clientv3 load (tools/etcdload) against the real etcd and cairn,
 * back to back in one run, so the figures that matter are the ratios (this machine is noisy).
 *
 *   npm run bench -- [--duration 10s] [--rounds 1] [--only put1,put100,range-l,range-s,txn] [--skip-watch] [--tls]
 *
 * --tls: both members serve client mTLS with the same certificates (kubeadm's layout: one CA,
 * --client-cert-auth), and etcdload dials them with a client certificate, as kube-apiserver does.
 *
 * Each target is a fresh single member with its data on the same disk. Results are printed as a
 * markdown table for BENCHMARKS.md.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { startMember, type Member, type MemberTls } from '../test/support/member';
import { makePki } from '../cluster-tests/pki';
import { buildEtcdload, runEtcdload, type LoadResult } from '../test/support/cluster';

interface Scenario {
  id: string;
  label: string;
  args: string[];
}

const SCENARIOS: Scenario[] = [
  { id: 'put1', label: 'put, 1 client', args: ['-op', 'put', '-clients', '1', '-conns', '1'] },
  { id: 'put100', label: 'put, 100 clients / 10 conns', args: ['-op', 'put', '-clients', '100', '-conns', '10'] },
  { id: 'range-l', label: 'range linearizable, 100 clients', args: ['-op', 'range-l', '-clients', '100', '-conns', '10'] },
  { id: 'range-s', label: 'range serializable, 100 clients', args: ['-op', 'range-s', '-clients', '100', '-conns', '10'] },
  { id: 'txn', label: 'txn compare-and-put, 100 clients', args: ['-op', 'txn', '-clients', '100', '-conns', '10'] },
];


function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

const fmt = (n: number, digits = 0): string => (Number.isFinite(n) ? n.toFixed(digits) : 'n/a');

async function main(): Promise<void> {
  const duration = arg('duration', '10s');
  const rounds = Number(arg('rounds', '1'));
  const only = arg('only', SCENARIOS.map((s) => s.id).join(',')).split(',');
  buildEtcdload();
  let tls: MemberTls | undefined;
  let loadTlsArgs: string[] = [];
  if (process.argv.includes('--tls')) {
    const pki = makePki();
    tls = { ca: pki.ca, serverCert: pki.server.cert, serverKey: pki.server.key, clientCert: pki.client.cert, clientKey: pki.client.key };
    loadTlsArgs = ['-cacert', pki.ca, '-cert', pki.client.cert, '-key', pki.client.key];
  }
  const etcd = await startMember({ kind: 'etcd', name: 'bench-etcd', tls });
  const cairn = await startMember({ kind: 'cairn', name: 'bench-cairn', tls });
  const targets: Member[] = [etcd, cairn];
  const rows: string[] = [];
  try {
    for (const s of SCENARIOS.filter((x) => only.includes(x.id))) {
      const acc = new Map<string, LoadResult[]>([['etcd', []], ['cairn', []]]);
      for (let r = 0; r < rounds; r++) {
        // Alternate who goes first so drift in the machine's load does not favour one side.
        const order = r % 2 === 0 ? targets : [...targets].reverse();
        for (const t of order) acc.get(t.kind)?.push(await runEtcdload(t.endpoint, [...s.args, ...loadTlsArgs], duration));
      }
      const mean = (xs: LoadResult[], k: 'qps' | 'p50' | 'p99' | 'errors'): number => xs.reduce((a, x) => a + x[k], 0) / xs.length;
      const e = acc.get('etcd') ?? [];
      const c = acc.get('cairn') ?? [];
      const row = `| ${s.label} | ${fmt(mean(e, 'qps'))} | ${fmt(mean(c, 'qps'))} | **${fmt(mean(c, 'qps') / mean(e, 'qps'), 2)}x** | ${fmt(mean(e, 'p50'), 2)} | ${fmt(mean(c, 'p50'), 2)} | ${fmt(mean(c, 'p50') / mean(e, 'p50'), 2)}x | ${fmt(mean(e, 'p99'), 2)} | ${fmt(mean(c, 'p99'), 2)} | ${mean(e, 'errors') + mean(c, 'errors')} |`;
      rows.push(row);
      process.stderr.write(`${row}\n`);
    }
  } finally {
    await etcd.cleanup();
    await cairn.cleanup();
  }
  const header = [
    `Single member${tls ? ', client mTLS' : ''}, Go clientv3 (etcdload), ${duration} per run, ${rounds} round(s), ${new Date().toISOString().slice(0, 10)}, ${process.version}.`,
    '',
    '| scenario | etcd ops/s | cairn ops/s | throughput ratio | etcd p50 ms | cairn p50 ms | p50 ratio | etcd p99 ms | cairn p99 ms | errors |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  process.stdout.write(`${[...header, ...rows].join('\n')}\n`);
  if (!process.argv.includes('--skip-watch')) {
    const watchBench = path.join(__dirname, 'bench-watch.ts');
    if (fs.existsSync(watchBench)) {
      const mod = (await import(watchBench)) as { benchWatch?: (t: { name: string; endpoint: string }[]) => Promise<string> };
      if (mod.benchWatch) {
        const e2 = await startMember({ kind: 'etcd', name: 'bench-etcd-w' });
        const c2 = await startMember({ kind: 'cairn', name: 'bench-cairn-w' });
        try {
          process.stdout.write(`\n${await mod.benchWatch([{ name: 'etcd', endpoint: e2.endpoint }, { name: 'cairn', endpoint: c2.endpoint }])}\n`);
        } finally {
          await e2.cleanup();
          await c2.cleanup();
        }
      }
    }
  }
}

{
  main().then(
    () => process.exit(0),
    (e: unknown) => {
      process.stderr.write(`${e instanceof Error ? e.stack : String(e)}\n`);
      process.exit(1);
    },
  );
}
