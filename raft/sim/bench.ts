import { RawNode } from '../raw-node';
import { MemoryStorage } from '../storage';
import { StateType, emptyConfState, type Message, type NodeId, type Ready } from '../types';
import { Rng } from './rng';

/**
 * npm run bench:raft — proposals committed per second through a 3-member in-memory cluster.
 *
 * Each round the client calls propose() once per entry (like the server does per request); the
 * leader batches everything proposed since the last Ready into one MsgApp per follower (up to
 * maxSizePerMsg). Every Ready is "persisted" into a MemoryStorage, messages are delivered in
 * memory, committed entries are counted on the leader. No disk, no network: this measures the
 * consensus core alone.
 */

const MEMBERS = 3;
const PAYLOAD_BYTES = 128;
const DURATION_MS = Number(process.env.BENCH_MS ?? 3000);
/** Compact each log every this many applied entries so memory stays flat. */
const COMPACT_EVERY = 50_000;

interface Member {
  id: NodeId;
  raw: RawNode;
  storage: MemoryStorage;
  applied: number;
}

function setup(): Member[] {
  const rng = new Rng(42);
  const voters = Array.from({ length: MEMBERS }, (_, i) => BigInt(i + 1));
  return voters.map((id) => {
    const storage = new MemoryStorage();
    storage.applySnapshot({ data: new Uint8Array(), metadata: { index: 1, term: 1, confState: { ...emptyConfState(), voters } } });
    storage.setHardState({ term: 1, vote: 0n, commit: 1 });
    const raw = new RawNode({ id, storage, applied: 1, random: () => rng.next(), maxInflightMsgs: 256 });
    return { id, raw, storage, applied: 1 };
  });
}

function run(members: Member[], batch: number, durationMs: number): { entries: number; ms: number } {
  const byId = new Map(members.map((m) => [m.id, m]));
  const queue: Message[] = [];
  const leader = members[0];
  const pump = (): void => {
    for (;;) {
      let progressed = false;
      for (const m of members) {
        while (m.raw.hasReady()) {
          const rd: Ready = m.raw.ready();
          if (rd.snapshot) m.storage.applySnapshot(rd.snapshot);
          if (rd.entries.length > 0) m.storage.append(rd.entries);
          if (rd.hardState) m.storage.setHardState(rd.hardState);
          for (let i = 0; i < rd.messages.length; i++) queue.push(rd.messages[i]);
          if (rd.committedEntries.length > 0) m.applied = rd.committedEntries[rd.committedEntries.length - 1].index;
          m.raw.advance(rd);
          progressed = true;
          if (m.applied - m.storage.firstIndex() > COMPACT_EVERY) m.storage.compact(m.applied - 1000);
        }
      }
      for (let i = 0; i < queue.length; i++) {
        const msg = queue[i];
        byId.get(msg.to)?.raw.step(msg);
        progressed = true;
      }
      queue.length = 0;
      if (!progressed) return;
    }
  };
  leader.raw.campaign();
  pump();
  if (leader.raw.raft.state !== StateType.Leader) throw new Error('bench: member 1 did not become leader');
  const payload = new Uint8Array(PAYLOAD_BYTES).fill(7);
  const startApplied = leader.applied;
  const t0 = performance.now();
  let now = t0;
  while (now - t0 < durationMs) {
    for (let i = 0; i < batch; i++) leader.raw.propose(payload);
    pump();
    now = performance.now();
  }
  return { entries: leader.applied - startApplied, ms: now - t0 };
}

function main(): void {
  // Warm up the JIT, then measure.
  run(setup(), 256, 300);
  const lines: string[] = [];
  for (const batch of [64, 256, 1024]) {
    const r = run(setup(), batch, DURATION_MS);
    const perSec = Math.round((r.entries / r.ms) * 1000);
    lines.push(`raft bench: 3 members, ${PAYLOAD_BYTES}-byte entries, ${batch} proposals per Ready: ${perSec.toLocaleString('en-US')} entries/s committed (${r.entries} in ${(r.ms / 1000).toFixed(2)}s)`);
  }
  process.stdout.write(`${lines.join('\n')}\n`);
}

main();
