import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Logger } from 'pino';
import { WalCorruptionError } from './decoder';
import { RecordType, encodeRecord, frameBytes } from './record';
import { fsyncDir, listSegments, preallocate, segmentName, type SegmentName } from './segment-files';

/**
 * The segments to replay: the existing ones after checking their sequence, or a first segment
 * created for an empty directory (etcd's wal.Create and selectWALFiles / isValidSeq).
 */
export async function openSegments(dir: string, segmentSizeBytes: number, log?: Logger): Promise<{ segments: SegmentName[]; created: boolean }> {
  if (!fs.existsSync(dir)) {
    await fs.promises.mkdir(dir, { recursive: true, mode: 0o700 });
    await fsyncDir(path.dirname(dir));
  }
  const segments = listSegments(dir);
  if (segments.length === 0) {
    segments.push(await createFirstSegment(dir, segmentSizeBytes));
    log?.info({ path: path.join(dir, segments[0].name) }, 'created a new WAL');
    return { segments, created: true };
  }
  for (let i = 1; i < segments.length; i++) {
    // A segment missing between two others (etcd: "wal: file sequence numbers do not increase continuously").
    if (segments[i].seq !== segments[i - 1].seq + 1 || segments[i].index < segments[i - 1].index) {
      throw new WalCorruptionError(`wal: file sequence numbers do not increase continuously (after ${segments[i - 1].name})`, path.join(dir, segments[i].name), 0);
    }
  }
  return { segments, created: false };
}

/**
 * The first segment is preallocated and given its crc record under a `.tmp` name, then renamed and
 * the directory fsynced, so a crash leaves either no segment or a complete one (etcd creates the
 * whole WAL directory under `wal.tmp` and renames it for the same reason).
 */
async function createFirstSegment(dir: string, segmentSizeBytes: number): Promise<SegmentName> {
  const tmp = path.join(dir, 'first.tmp');
  const h = await fs.promises.open(tmp, 'w', 0o600);
  try {
    const buf = Buffer.alloc(frameBytes(0));
    encodeRecord(buf, 0, RecordType.Crc, [], 0);
    await h.write(buf, 0, buf.length, 0);
    await preallocate(h, buf.length, segmentSizeBytes);
  } finally {
    await h.close();
  }
  const seg = { seq: 0, index: 0, name: segmentName(0, 0) };
  await fs.promises.rename(tmp, path.join(dir, seg.name));
  await fsyncDir(dir);
  return seg;
}
