import { createHash } from 'node:crypto';

/**
 * Member and cluster IDs exactly as etcd computes them (membership/member.go, cluster.go), so
 * `etcdctl member list` shows the same IDs for the same flags and clients can tell members apart.
 */

/** First 8 bytes, big-endian, of sha1(sorted peer URLs joined + cluster token [+ unix time]). */
export function computeMemberId(peerUrls: readonly string[], clusterToken: string, addedAtUnixSeconds?: number): bigint {
  const sorted = [...peerUrls].sort();
  let input = sorted.join('') + clusterToken;
  if (addedAtUnixSeconds !== undefined) input += String(addedAtUnixSeconds);
  const digest = createHash('sha1').update(input).digest();
  return digest.readBigUInt64BE(0);
}

/** First 8 bytes, big-endian, of sha1 over the sorted member IDs as big-endian uint64s. */
export function computeClusterId(memberIds: readonly bigint[]): bigint {
  const sorted = [...memberIds].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const buf = Buffer.alloc(8 * sorted.length);
  sorted.forEach((id, i) => buf.writeBigUInt64BE(id, i * 8));
  return createHash('sha1').update(buf).digest().readBigUInt64BE(0);
}

export function idToHex(id: bigint): string {
  return id.toString(16);
}
