/**
 * npm run bench:cluster: a 3-member cairn cluster and a 3-member etcd cluster (Debian's etcd-server,
 * started with the flags of shared/reference/refcluster.sh), both on loopback, in the same run; the
 * same Go clientv3 load (tools/etcdload) and `etcdctl check perf` against each, back to back.
 * The figures that matter are the ratios (this machine is noisy).
 *
 *   npm run bench:cluster -- [--duration 10s] [--rounds 1] [--only put1,put100,range-l,range-s,txn]
 *                            [--check s,m | --check none] [--profile DIR]
 *
 * put at 1 client goes to the leader only (etcd's `benchmark --target-leader`); every other load
 * spreads over all three members (clientv3 balances its connections over the endpoints).
 * --profile DIR: run the cairn members under `node --cpu-prof` (profiles land in DIR when they stop)
 * and print the leader's top self-time functions.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { buildEtcdload, runEtcdload, startCluster, type Cluster, type LoadResult } from '../test/support/cluster';
import { etcdctl } from '../test/support/etcdctl';

interface Scenario {
  id: string;
  label: string;
  args: string[];
  leaderOnly: boolean;
}

const SCENARIOS: Scenario[] = [
  { id: 'put1', label: 'put, 1 client (leader)', args: ['-op', 'put', '-clients', '1', '-conns', '1'], leaderOnly: true },
  { id: 'put100', label: 'put, 100 clients / 10 conns', args: ['-op', 'put', '-clients', '100', '-conns', '10'], leaderOnly: false },
  { id: 'range-l', label: 'range linearizable, 100 clients', args: ['-op', 'range-l', '-clients', '100', '-conns', '10'], leaderOnly: false },
  { id: 'range-s', label: 'range serializable, 100 clients', args: ['-op', 'range-s', '-clients', '100', '-conns', '10'], leaderOnly: false },
  { id: 'txn', label: 'txn compare-and-put, 100 clients', args: ['-op', 'txn', '-clients', '100', '-conns', '10'], leaderOnly: false },
];

/** etcdctl check perf runs 60 s per load; allow for start-up and the final cleanup. */
const CHECK_PERF_TIMEOUT_MS = 180_000;

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

const fmt = (n: number, digits = 0): string => (Number.isFinite(n) ? n.toFixed(digits) : 'n/a');

interface CheckPerf {
  pass: boolean;
  throughput: string;
  slowest: string;
  stddev: string;
  errors: string;
}

/** `etcdctl check perf --load=L` against all endpoints; its PASS/FAIL lines, summarised. */
async function checkPerf(c: Cluster, load: string): Promise<CheckPerf> {
  const r = await etcdctl(c.endpoints(), ['check', 'perf', `--load=${load}`], { timeoutMs: CHECK_PERF_TIMEOUT_MS });
  const out = r.stdout + r.stderr;
  const line = (re: RegExp): string => re.exec(out)?.[1]?.trim() ?? 'n/a';
  return {
    pass: r.code === 0 && /^PASS\s*$/m.test(out),
    throughput: line(/(?:PASS|FAIL): Throughput (?:is|too low:) ([^\n]+)/),
    slowest: line(/Slowest request took (?:too long: )?([^\n]+)/),
    stddev: line(/Stddev (?:is|too high:) ([^\n]+)/),
    errors: [...out.matchAll(/FAIL: ERROR\(([^)]*)\) -> (\d+)/g)].map((m) => `${m[2]}x ${m[1]}`).join(', ') || '0',
  };
}

interface ProfileRow {
  self: number;
  name: string;
}

/** Top self-time functions of a V8 .cpuprofile. */
function summariseProfile(file: string, top = 15): { rows: ProfileRow[]; totalMs: number } {
  const p = JSON.parse(fs.readFileSync(file, 'utf8')) as {
    nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number } }[];
    samples: number[];
    timeDeltas: number[];
  };
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<string, number>();
  let total = 0;
  for (let i = 0; i < p.samples.length; i++) {
    const n = byId.get(p.samples[i]);
    const dt = (p.timeDeltas[i] ?? 0) / 1000;
    total += dt;
    if (!n) continue;
    const f = n.callFrame;
    const where = f.url ? `${f.url.replace(/^.*\/(node_modules|dist)\//, '$1/').replace(/^file:\/\//, '')}:${f.lineNumber + 1}` : '';
    const key = `${f.functionName || '(anonymous)'} ${where}`.trim();
    self.set(key, (self.get(key) ?? 0) + dt);
  }
  const rows = [...self.entries()].map(([name, s]) => ({ name, self: s })).sort((a, b) => b.self - a.self).slice(0, top);
  return { rows, totalMs: total };
}

interface FsyncCounters {
  count: number;
  sum: number;
}

/** The leader's etcd_disk_wal_fsync_duration_seconds count and sum (both servers export it). */
async function leaderFsync(c: Cluster): Promise<FsyncCounters> {
  const leader = await c.leader();
  const text = await (await fetch(`${leader.clientUrl}/metrics`)).text();
  const v = (k: string): number => Number(new RegExp(`^etcd_disk_wal_fsync_duration_seconds_${k} ([0-9.e+-]+)$`, 'm').exec(text)?.[1] ?? NaN);
  return { count: v('count'), sum: v('sum') };
}

async function main(): Promise<void> {
  const duration = arg('duration', '10s');
  const rounds = Number(arg('rounds', '1'));
  const only = arg('only', SCENARIOS.map((s) => s.id).join(',')).split(',');
  const checks = arg('check', 's,m') === 'none' ? [] : arg('check', 's,m').split(',');
  const profileDir = arg('profile', '');
  buildEtcdload();

  // refcluster.sh's flags: etcd's defaults (100 ms heartbeat, 1 s election, snapshot-count as built in).
  const etcd = await startCluster({ kind: 'etcd', names: ['r1', 'r2', 'r3'], token: 'ref' });
  const nodeArgs: string[] = [];
  if (profileDir) {
    fs.mkdirSync(profileDir, { recursive: true });
    nodeArgs.push('--cpu-prof', `--cpu-prof-dir=${path.resolve(profileDir)}`);
  }
  const cairn = await startCluster({ kind: 'cairn', names: ['r1', 'r2', 'r3'], token: 'ref', nodeArgs });
  const targets: [string, Cluster][] = [
    ['etcd', etcd],
    ['cairn', cairn],
  ];
  const rows: string[] = [];
  const checkRows: string[] = [];
  const fsyncRows: string[] = [];
  let cairnLeaderPid = -1;
  try {
    for (const s of SCENARIOS.filter((x) => only.includes(x.id))) {
      const acc = new Map<string, LoadResult[]>([['etcd', []], ['cairn', []]]);
      for (let r = 0; r < rounds; r++) {
        // Alternate who goes first so drift in the machine's load does not favour one side.
        const order = r % 2 === 0 ? targets : [...targets].reverse();
        for (const [name, c] of order) {
          const eps = s.leaderOnly ? (await c.leader()).endpoint : c.endpoints();
          const f0 = await leaderFsync(c);
          const res = await runEtcdload(eps, s.args, duration);
          acc.get(name)?.push(res);
          const f1 = await leaderFsync(c);
          const n = f1.count - f0.count;
          if (s.args.includes('put') || s.args.includes('txn')) {
            fsyncRows.push(`| ${s.label} | ${name} | ${fmt(res.ops / n, 1)} | ${fmt((1000 * (f1.sum - f0.sum)) / n, 2)} | ${fmt(n / (res.ops / res.qps), 0)} |`);
          }
        }
      }
      const mean = (xs: LoadResult[], k: 'qps' | 'p50' | 'p99' | 'errors'): number => xs.reduce((a, x) => a + x[k], 0) / xs.length;
      const e = acc.get('etcd') ?? [];
      const c = acc.get('cairn') ?? [];
      const row = `| ${s.label} | ${fmt(mean(e, 'qps'))} | ${fmt(mean(c, 'qps'))} | **${fmt(mean(c, 'qps') / mean(e, 'qps'), 2)}x** | ${fmt(mean(e, 'p50'), 2)} | ${fmt(mean(c, 'p50'), 2)} | ${fmt(mean(c, 'p50') / mean(e, 'p50'), 2)}x | ${fmt(mean(e, 'p99'), 2)} | ${fmt(mean(c, 'p99'), 2)} | ${mean(e, 'errors')} / ${mean(c, 'errors')} |`;
      rows.push(row);
      process.stderr.write(`${row}\n`);
    }
    for (const load of checks) {
      const res: Record<string, CheckPerf> = {};
      for (const [name, c] of targets) {
        res[name] = await checkPerf(c, load);
        process.stderr.write(`check perf --load=${load} ${name}: ${JSON.stringify(res[name])}\n`);
      }
      const cell = (p: CheckPerf): string => `${p.pass ? 'PASS' : '**FAIL**'}: ${p.throughput}; slowest ${p.slowest}; stddev ${p.stddev}; errors ${p.errors}`;
      checkRows.push(`| \`check perf --load=${load}\` | ${cell(res.etcd)} | ${cell(res.cairn)} |`);
    }
    cairnLeaderPid = (await cairn.leader()).pid;
  } finally {
    await etcd.cleanup();
    await cairn.cleanup();
  }
  const cpu = (() => {
    try {
      return execFileSync('sh', ['-c', "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"], { encoding: 'utf8' }).trim();
    } catch {
      return 'unknown CPU';
    }
  })();
  const out = [
    `3 members each on loopback (one machine: ${cpu}, 2 cores, all six members share it), Go clientv3 (etcdload), ${duration} per run, ${rounds} round(s), ${new Date().toISOString().slice(0, 10)}, ${process.version}, etcd ${execFileSync('/usr/bin/etcd', ['--version'], { encoding: 'utf8' }).split('\n')[0].replace(/^etcd Version: /, '')}.`,
    '',
    '| scenario | etcd ops/s | cairn ops/s | throughput ratio | etcd p50 ms | cairn p50 ms | p50 ratio | etcd p99 ms | cairn p99 ms | errors (etcd / cairn) |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...rows,
  ];
  if (fsyncRows.length > 0) {
    out.push('', 'Leader WAL fsyncs during each write run (etcd_disk_wal_fsync_duration_seconds on the leader):', '');
    out.push('| scenario | server | writes per fsync | mean fsync ms | fsyncs/s |', '|---|---|---:|---:|---:|', ...fsyncRows);
  }
  if (checkRows.length > 0) out.push('', '| etcdctl | etcd | cairn |', '|---|---|---|', ...checkRows);
  process.stdout.write(`${out.join('\n')}\n`);
  if (profileDir) {
    const file = fs.readdirSync(profileDir).find((f) => f.includes(`.${cairnLeaderPid}.`) && f.endsWith('.cpuprofile'));
    if (file) {
      const { rows: prof, totalMs } = summariseProfile(path.join(profileDir, file));
      process.stdout.write(`\ncairn leader CPU profile (${file}, ${fmt(totalMs / 1000, 1)} s sampled), top self time:\n\n| self ms | % | function |\n|---:|---:|---|\n`);
      for (const r of prof) process.stdout.write(`| ${fmt(r.self)} | ${fmt((100 * r.self) / totalMs, 1)} | \`${r.name}\` |\n`);
    } else {
      process.stdout.write(`\n(no profile for the cairn leader, pid ${cairnLeaderPid}, in ${profileDir})\n`);
    }
  }
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    process.stderr.write(`${e instanceof Error ? e.stack : String(e)}\n`);
    process.exit(1);
  },
);
