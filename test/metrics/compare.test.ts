import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMember, type Member } from '../support/member';
import { ABSENT_IN_CAIRN, compared } from './allowlist';
import { labelNames, scrape, valueOf, type Scrape } from './prom-text';
import { runWorkload } from './workload';
import { GRPC_CODE_NAMES } from '../../server/v3rpc/grpc-metrics';

/**
 * The same etcdctl workload against a fresh etcd 3.4 and a fresh cairn, then both /metrics compared:
 * family names, types, help and label-name sets, the grpc_* label values of the calls both saw,
 * and the counters the workload must have moved on cairn.
 */
describe('metrics: cairn /metrics against etcd 3.4 after the same workload', () => {
  let etcd: Member;
  let cairn: Member;
  let want: Scrape;
  let got: Scrape;

  beforeAll(async () => {
    // --metrics=extensive adds grpc_server_handling_seconds on both (etcdGRPCRequestsSlow uses it).
    const extraArgs = ['--metrics=extensive'];
    [etcd, cairn] = await Promise.all([startMember({ kind: 'etcd', extraArgs }), startMember({ kind: 'cairn', extraArgs })]);
    await Promise.all([runWorkload(etcd.endpoint), runWorkload(cairn.endpoint)]);
    [want, got] = await Promise.all([scrape(etcd.clientUrl), scrape(cairn.clientUrl)]);
  }, 90_000);

  afterAll(async () => {
    await Promise.all([etcd?.cleanup(), cairn?.cleanup()]);
  });

  it('has every family etcd has, with its type, help and label names, except the documented absences', () => {
    const missing: string[] = [];
    for (const f of want.values()) {
      if (!compared(f.name) || f.name in ABSENT_IN_CAIRN) continue;
      const mine = got.get(f.name);
      if (!mine) {
        missing.push(f.name);
        continue;
      }
      expect({ name: f.name, type: mine.type, help: mine.help }).toEqual({ name: f.name, type: f.type, help: f.help });
      // Label names are visible only on samples: compare where both have some.
      if (f.samples.length > 0 && mine.samples.length > 0) expect({ name: f.name, labels: labelNames(mine) }).toEqual({ name: f.name, labels: labelNames(f) });
    }
    expect(missing).toEqual([]);
    // Each documented absence is real: etcd has the family, cairn does not.
    for (const name of Object.keys(ABSENT_IN_CAIRN)) {
      expect(got.has(name), `${name} is allowlisted as absent but cairn exposes it`).toBe(false);
    }
  });

  it('labels gRPC calls as go-grpc-prometheus does: the same unary series with the same code names', () => {
    const unary = (s: Scrape, metric: string) =>
      [...(s.get(metric)?.samples ?? [])]
        .filter((x) => x.value > 0 && x.labels.grpc_type === 'unary')
        .map((x) => `${x.labels.grpc_service}/${x.labels.grpc_method} ${x.labels.grpc_code ?? ''}`)
        .sort();
    for (const metric of ['grpc_server_started_total', 'grpc_server_handled_total', 'grpc_server_msg_received_total', 'grpc_server_msg_sent_total']) {
      expect({ metric, series: unary(got, metric) }).toEqual({ metric, series: unary(want, metric) });
    }
    // Every code is a name (as etcd's alerts filter grpc_code!="OK"), never a number.
    for (const s of got.get('grpc_server_handled_total')!.samples) expect(GRPC_CODE_NAMES).toContain(s.labels.grpc_code);
    // etcd pre-initializes every method of its services under every code at 0; so does cairn.
    const series = (s: Scrape) => new Set(s.get('grpc_server_handled_total')!.samples.filter((x) => x.labels.grpc_service === 'etcdserverpb.KV').map((x) => `${x.labels.grpc_method} ${x.labels.grpc_code} ${x.labels.grpc_type}`));
    expect([...series(got)].sort()).toEqual([...series(want)].sort());
  });

  it('counts finished streams: the watch the client ended, and the keepalive stream', () => {
    const watch = { grpc_type: 'bidi_stream', grpc_service: 'etcdserverpb.Watch', grpc_method: 'Watch' };
    // The client went away: cairn ends the watch Canceled. etcd returns the Recv error (Canceled)
    // or, when its stream context wins the select, ErrGRPCNoLeader (Unavailable).
    expect(valueOf(want, 'grpc_server_handled_total', watch)).toBe(1);
    expect(valueOf(want, 'grpc_server_handled_total', { ...watch, grpc_code: 'Canceled' }) + valueOf(want, 'grpc_server_handled_total', { ...watch, grpc_code: 'Unavailable' })).toBe(1);
    expect(valueOf(got, 'grpc_server_handled_total', { ...watch, grpc_code: 'Canceled' })).toBe(1);
    expect(valueOf(got, 'grpc_server_handled_total', watch)).toBe(1);
    expect(valueOf(got, 'grpc_server_started_total', watch)).toBe(1);
    expect(valueOf(got, 'grpc_server_msg_sent_total', watch)).toBeGreaterThanOrEqual(2);
    const keepAlive = { grpc_type: 'bidi_stream', grpc_service: 'etcdserverpb.Lease', grpc_method: 'LeaseKeepAlive' };
    // How the keepalive stream ends (client half-close: OK; connection gone: Unavailable, etcd's
    // ErrGRPCNoLeader for a cancelled context) depends on which event wins in both servers, so
    // only that it was counted as finished is compared.
    expect(valueOf(want, 'grpc_server_handled_total', keepAlive)).toBe(1);
    expect(valueOf(got, 'grpc_server_handled_total', keepAlive)).toBe(1);
    expect(valueOf(got, 'etcd_server_client_requests_total', { type: 'stream' })).toBe(valueOf(want, 'etcd_server_client_requests_total', { type: 'stream' }));
    expect(valueOf(got, 'etcd_server_client_requests_total', { type: 'unary' })).toBe(valueOf(want, 'etcd_server_client_requests_total', { type: 'unary' }));
  });

  it('moves the counters the workload must move', () => {
    expect(valueOf(got, 'etcd_server_proposals_committed_total')).toBeGreaterThanOrEqual(valueOf(got, 'etcd_server_proposals_applied_total'));
    expect(valueOf(got, 'etcd_server_proposals_applied_total')).toBeGreaterThan(8);
    expect(valueOf(got, 'etcd_disk_backend_commit_duration_seconds_count')).toBeGreaterThan(0);
    expect(valueOf(got, 'etcd_disk_wal_fsync_duration_seconds_count')).toBeGreaterThan(0);
    expect(valueOf(got, 'etcd_disk_wal_write_bytes_total')).toBeGreaterThan(0);
    expect(valueOf(got, 'etcd_disk_backend_defrag_duration_seconds_count')).toBe(1);
    expect(valueOf(got, 'etcd_mvcc_hash_rev_duration_seconds_count')).toBe(1);
    expect(valueOf(got, 'etcd_debugging_mvcc_db_compaction_total_duration_milliseconds_count')).toBe(1);
    expect(valueOf(got, 'etcd_debugging_mvcc_events_total')).toBeGreaterThan(0);
    expect(valueOf(got, 'etcd_debugging_lease_granted_total')).toBe(1);
    expect(valueOf(got, 'etcd_debugging_lease_renewed_total')).toBe(1);
    expect(valueOf(got, 'etcd_server_has_leader')).toBe(1);
    expect(valueOf(got, 'etcd_network_client_grpc_received_bytes_total')).toBeGreaterThan(0);
    expect(valueOf(want, 'grpc_server_handling_seconds_count', { grpc_method: 'Put' })).toBe(4);
    expect(valueOf(got, 'grpc_server_handling_seconds_count', { grpc_method: 'Put' })).toBe(4);
    // Same operations, same counts as etcd's metricsTxnWrite: puts, deletes, the txn with one put.
    for (const name of ['etcd_debugging_mvcc_db_compaction_keys_total', 'etcd_mvcc_put_total', 'etcd_mvcc_delete_total', 'etcd_debugging_mvcc_current_revision', 'etcd_debugging_mvcc_compact_revision', 'etcd_debugging_mvcc_keys_total']) {
      expect({ name, value: valueOf(got, name) }).toEqual({ name, value: valueOf(want, name) });
    }
  });
});
