/**
 * Member-scoped unique IDs for requests and leases (etcd pkg/idutil): the top 16 bits are the low
 * bits of the member ID, the next 40 the start time in ms, the low 8 bits (and carries) a counter.
 * IDs from different members never collide, and a restarted member starts past its old IDs.
 */
const TS_BITS = 40n;
const CNT_BITS = 8n;
const SUFFIX_BITS = TS_BITS + CNT_BITS;

export class IdGenerator {
  private next: bigint;

  constructor(memberId: bigint, nowMs: number = Date.now()) {
    const prefix = (memberId & 0xffffn) << SUFFIX_BITS;
    const suffix = (BigInt(nowMs) & ((1n << TS_BITS) - 1n)) << CNT_BITS;
    this.next = prefix | suffix;
  }

  nextId(): bigint {
    this.next += 1n;
    return this.next;
  }
}
