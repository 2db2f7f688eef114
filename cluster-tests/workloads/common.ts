/**
 * What every workload shares: the context it runs in, the client loops (several clients per
 * member, each a Jepsen process with one operation in flight), a global op-rate limit, and the
 * conversions from etcd messages to history values.
 */
import { MemberClient, type Msg } from '../client';
import { type Cluster, sleep } from '../cluster';
import type { FinalReadOp, KvSnapshot, ProcessId } from '../history';
import type { Prng } from '../prng';
import type { Recorder } from '../recorder';

/** Per-request deadline: past it the outcome is unknown (`info`). */
export const OP_TIMEOUT_MS = 1_500;
/** Pause between two operations of one client. */
export const CLIENT_THINK_MS = 5;
/** Upper bound on operations per client loop, so a loop ends by itself even if `stopped` never flips. */
export const MAX_OPS_PER_CLIENT = 1_000_000;
/** Default cap on the total operation rate of all clients (ops/s). */
export const DEFAULT_RATE_HZ = 200;
/** Attempts at the final read after faults heal. */
export const FINAL_READ_ATTEMPTS = 20;
export const FINAL_READ_TIMEOUT_MS = 5_000;

export type Outcome = 'ok' | 'fail' | 'info';

export interface WorkloadContext {
  readonly cluster: Cluster;
  readonly rec: Recorder;
  readonly rand: Prng;
  readonly clientsPerMember: number;
  readonly limiter: RateLimiter;
  /** True once the run's time is up: loops finish their current operation and return. */
  stopped(): boolean;
}

export interface Workload {
  readonly name: string;
  /** Run client loops until `ctx.stopped()`. */
  run(ctx: WorkloadContext): Promise<void>;
  /** After every fault healed: record the final read the durability checker uses (if any). */
  finalRead(ctx: WorkloadContext): Promise<void>;
}

/** Spaces operations at least 1/rateHz apart across all clients. */
export class RateLimiter {
  private nextMs = 0;
  private readonly intervalMs: number;

  constructor(rateHz: number) {
    if (!(rateHz > 0)) throw new Error('rate must be positive');
    this.intervalMs = 1000 / rateHz;
  }

  async take(): Promise<void> {
    const now = Date.now();
    const at = Math.max(now, this.nextMs);
    this.nextMs = at + this.intervalMs;
    if (at > now) await sleep(at - now);
  }
}

export interface ClientSlot {
  readonly client: MemberClient;
  readonly member: string;
  readonly rand: Prng;
  process: ProcessId;
}

/**
 * Run `clientsPerMember` loops per member, each calling `step` until the run stops. A step that
 * ends `info` moves its client to a new process id: the old request may still take effect.
 */
export async function runClientLoops(ctx: WorkloadContext, label: string, step: (slot: ClientSlot) => Promise<Outcome>): Promise<void> {
  const slots: ClientSlot[] = [];
  for (const m of ctx.cluster.members) {
    for (let i = 0; i < ctx.clientsPerMember; i++) {
      slots.push({ client: m.newClient(), member: m.name, rand: ctx.rand.fork(`${label} ${m.name} ${i}`), process: ctx.rec.newProcess() });
    }
  }
  await Promise.all(
    slots.map(async (slot) => {
      try {
        for (let n = 0; n < MAX_OPS_PER_CLIENT && !ctx.stopped() && !ctx.rec.full; n++) {
          await ctx.limiter.take();
          if (ctx.stopped()) break;
          const outcome = await step(slot);
          if (outcome === 'info') slot.process = ctx.rec.newProcess();
          await sleep(CLIENT_THINK_MS);
        }
      } finally {
        slot.client.close();
      }
    }),
  );
}

/** Keys in [prefix, prefix + 1): etcd's "with prefix" range end. */
export function prefixEnd(prefix: string): Buffer {
  const b = Buffer.from(prefix);
  b[b.length - 1]++;
  return b;
}

export function toSnapshot(kv: Msg): KvSnapshot {
  return {
    key: Buffer.from(kv.key).toString(),
    value: Buffer.from(kv.value).toString(),
    modRevision: Number(kv.mod_revision),
    createRevision: Number(kv.create_revision),
    version: Number(kv.version),
  };
}

/** Retry a read until it succeeds (the cluster healed before this is called). */
export async function retryRead(ctx: WorkloadContext, f: (c: MemberClient) => Promise<{ ok?: Msg; err?: { details: string } }>): Promise<Msg> {
  let last = '';
  for (let i = 0; i < FINAL_READ_ATTEMPTS; i++) {
    const m = ctx.cluster.members[i % ctx.cluster.members.length];
    const r = await f(m.admin);
    if (r.ok) return r.ok;
    last = r.err?.details ?? '';
    await sleep(500);
  }
  throw new Error(`final read failed ${FINAL_READ_ATTEMPTS} times: ${last}`);
}

/**
 * A linearizable range over every key under `prefix`, recorded as the run's final-read: `as`
 * turns the keys into the completion's payload (`kvs` for registers, `lists` for list-append).
 */
export async function finalReadPrefix(ctx: WorkloadContext, prefix: string, as: (kvs: KvSnapshot[]) => Pick<FinalReadOp, 'kvs' | 'lists'>): Promise<number> {
  const process = ctx.rec.newProcess();
  ctx.rec.op({ f: 'final-read', process, type: 'invoke' });
  const r = await retryRead(ctx, (c) => c.range({ key: Buffer.from(prefix), range_end: prefixEnd(prefix) }, FINAL_READ_TIMEOUT_MS));
  const revision = Number(r.header.revision);
  ctx.rec.op({ f: 'final-read', process, type: 'ok', revision, ...as((r.kvs as Msg[]).map(toSnapshot)) });
  return revision;
}
