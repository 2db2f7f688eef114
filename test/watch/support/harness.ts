import { afterAll, beforeAll, expect, it } from 'vitest';
import { connect, must, type EtcdClient } from '../../support/grpc-client';
import { startMember, type Member, type MemberKind } from '../../support/member';
import { startInproc } from './inproc';
import { barrier, openWatch, type KvMsg, type RecordingStream, type WatchResponseMsg } from './watch-client';

/**
 * Side-by-side conformance for streams: each scenario runs against the real etcd (reference) and
 * cairn (subject; or a second etcd with CONFORMANCE_SUBJECT=etcd, which checks that the scenario
 * itself is deterministic) and the normalised transcripts must be equal. Revisions are written
 * relative to the scenario's base revision ("B+n"; 0 stays 0), keys relative to its prefix.
 */

/** etcd | cairn (bin/cairn, the default) | inproc (cairn's services in this process, bound directly). */
export const SUBJECT_KIND = (process.env.CONFORMANCE_SUBJECT as MemberKind | 'inproc' | undefined) ?? 'cairn';

/** A started target: a process (etcd, bin/cairn) or an in-process cairn. */
export async function startTarget(kind: MemberKind | 'inproc', extraArgs: string[]): Promise<Member> {
  if (kind !== 'inproc') return startMember({ kind, extraArgs });
  const m = await startInproc(extraArgs);
  return { kind: 'cairn', name: 'inproc', endpoint: m.endpoint, cleanup: () => m.close() } as unknown as Member;
}

export interface Ctx {
  kind: MemberKind | 'inproc';
  member: Member;
  endpoint: string;
  client: EtcdClient;
  prefix: string;
  base: number;
  k(s?: string): Buffer;
  rev(n: number): string;
  put(key: string, value: string, lease?: string): Promise<number>;
  del(key: string, end?: string): Promise<number>;
  watch(metadata?: Record<string, string>): RecordingStream<WatchResponseMsg>;
  norm(r: WatchResponseMsg): unknown;
  normKv(kv: KvMsg | null): unknown;
  relRev(r: string | number): string | number;
  /**
   * Every response the scenario has caused on `s` so far, duplicates and extras included: the
   * responses before a barrier event (see watch-client barrier), cut there so the transcript is
   * what it would be without the barrier. Only when every watcher of `s` is synced.
   */
  settle(s: RecordingStream<WatchResponseMsg>): Promise<WatchResponseMsg[]>;
}

/**
 * The barrier's key, relative to the scenario's prefix: '!' sorts before every key a scenario
 * watches (letters, digits, '/'), so it lies outside every watched range, a range_end of "\x00"
 * from a later key included.
 */
const BARRIER_KEY = '!barrier';

let seq = 0;

export function conformanceSuite(name: string, extraArgs: string[] = []): (title: string, fn: (c: Ctx) => Promise<unknown>, timeoutMs?: number) => void {
  const targets: { kind: MemberKind | 'inproc'; member?: Member; client?: EtcdClient }[] = [{ kind: 'etcd' }, { kind: SUBJECT_KIND }];
  const streams: RecordingStream<unknown>[] = [];
  beforeAll(async () => {
    await Promise.all(
      targets.map(async (t) => {
        t.member = await startTarget(t.kind, extraArgs);
        t.client = connect(t.member.endpoint);
      }),
    );
  }, 60_000);
  afterAll(async () => {
    for (const s of streams) s.close();
    for (const t of targets) {
      t.client?.close();
      await t.member?.cleanup();
    }
  });

  return (title, fn, timeoutMs = 30_000) => {
    const prefix = `/${name}/${++seq}-${title.replace(/[^a-z0-9]+/gi, '-').slice(0, 40)}/`;
    it(
      title,
      async () => {
        const results: unknown[] = [];
        for (const t of targets) {
          const client = t.client!;
          const base = Number(must(await client.range({ key: Buffer.from('health') })).header.revision);
          const relRev = (r: string | number): string | number => {
            const n = Number(r);
            return n === 0 ? 0 : `B${n - base >= 0 ? '+' : ''}${n - base}`;
          };
          const normKv = (kv: KvMsg | null): unknown =>
            kv === null
              ? null
              : {
                  key: kv.key.toString().startsWith(prefix) ? kv.key.toString().slice(prefix.length) : kv.key.toString(),
                  value: kv.value.length > 64 ? `<${kv.value.length} bytes>` : kv.value.toString(),
                  create: relRev(kv.create_revision),
                  mod: relRev(kv.mod_revision),
                  version: Number(kv.version),
                  lease: kv.lease === '0' ? 0 : 'L',
                };
          const c: Ctx = {
            kind: t.kind,
            member: t.member!,
            endpoint: t.member!.endpoint,
            client,
            prefix,
            base,
            k: (s = '') => Buffer.from(prefix + s),
            rev: (n) => String(base + n),
            put: async (key, value, lease) =>
              Number(must(await client.put({ key: Buffer.from(prefix + key), value: Buffer.from(value), lease: lease ?? '0' }), 'put').header.revision),
            del: async (key, end) =>
              Number(
                must(await client.deleteRange({ key: Buffer.from(prefix + key), range_end: end === undefined ? Buffer.alloc(0) : Buffer.from(prefix + end) }), 'delete').header
                  .revision,
              ),
            watch: (md) => {
              const s = openWatch(t.member!.endpoint, md);
              streams.push(s as RecordingStream<unknown>);
              return s;
            },
            norm: (r) => ({
              id: Number(r.watch_id),
              rev: r.header === null ? null : relRev(r.header.revision),
              ...(r.created ? { created: true } : {}),
              ...(r.canceled ? { canceled: true } : {}),
              ...(r.compact_revision !== '0' ? { compact: relRev(r.compact_revision) } : {}),
              ...(r.cancel_reason ? { reason: r.cancel_reason } : {}),
              ...(r.fragment ? { fragment: true } : {}),
              events: r.events.map((e) => ({ type: e.type === 0 ? 'PUT' : 'DELETE', kv: normKv(e.kv), ...(e.prev_kv ? { prev: normKv(e.prev_kv) } : {}) })),
            }),
            normKv,
            relRev,
            settle: (s) => barrier(s, Buffer.from(prefix + BARRIER_KEY), () => c.put(BARRIER_KEY, 'x')),
          };
          results.push(await fn(c));
        }
        expect(results[1]).toEqual(results[0]);
      },
      timeoutMs,
    );
  };
}
