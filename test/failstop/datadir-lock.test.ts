import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { dataDirLockedMessage } from '../../server/storage/datadir-lock';
import { connect, must } from '../support/grpc-client';
import { ETCD_BIN, startMember, trackChild, type Member } from '../support/member';
import { freePorts } from '../support/ports';
import { fatalLines, jsonLines, killIfRunning, spawnCairn, tail, waitExit, waitFor, type Proc } from './process';

/**
 * One process per data dir. A second bin/cairn on a data dir in use exits non-zero at once with
 * etcd 3.4's words for it as its one fatal line, the first member keeps serving, and a SIGKILLed
 * holder leaves no lock behind. The wording is checked against a real etcd 3.4 (which, unlike
 * cairn, waits for the holder to exit and says so after 10 s: etcdserver/backend.go).
 */

const EXIT_TIMEOUT_MS = 10_000;
/** etcd warns once its bbolt open has been blocked for 10 s; allow for a slow start. */
const ETCD_WARNING_TIMEOUT_MS = 25_000;
const ETCD_READY_TIMEOUT_MS = 15_000;

const cleanups: Array<() => Promise<void>> = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

function tmpDir(prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  cleanups.push(async () => {
    if (process.env.CAIRN_TEST_KEEP_TMP !== '1') fs.rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}

function flagsFor(name: string, dataDir: string, clientPort: number, peerPort: number): string[] {
  const c = `http://127.0.0.1:${clientPort}`;
  const p = `http://127.0.0.1:${peerPort}`;
  return [
    '--name', name, '--data-dir', dataDir,
    '--listen-client-urls', c, '--advertise-client-urls', c,
    '--listen-peer-urls', p, '--initial-advertise-peer-urls', p, '--initial-cluster', `${name}=${p}`,
  ];
}

describe('data dir lock', () => {
  it('refuses a second cairn on a data dir in use with etcd\'s message, and dies with its holder', async () => {
    const first: Member = await startMember({ kind: 'cairn' });
    cleanups.push(() => first.cleanup());
    const dir = tmpDir('cairn-failstop-lock-');
    const [clientPort, peerPort] = await freePorts(2);
    let second: Proc | undefined = spawnCairn(flagsFor(first.name, first.dataDir, clientPort, peerPort), path.join(dir, 'second.log'), dir);
    cleanups.push(() => killIfRunning(second));
    const s = second;
    const { code, signal } = await waitExit(s, EXIT_TIMEOUT_MS);
    const log = s.log();
    expect(signal, tail(log)).toBeNull();
    expect(code, tail(log)).toBe(1);
    const fatal = fatalLines(log);
    expect(fatal, tail(log)).toHaveLength(1);
    expect(fatal[0].msg).toBe(`another etcd process is using "${path.join(first.dataDir, 'member', 'snap', 'db')}" and holds the file lock`);
    expect(fatal[0]['data-dir']).toBe(first.dataDir);
    // Nothing but log records: no stack trace on stderr.
    const nonJson = log.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('{'));
    expect(nonJson).toEqual([]);
    expect(jsonLines(log).filter((l) => l.level >= 50)).toHaveLength(1);

    // The holder was not disturbed.
    const c = connect(first.endpoint);
    try {
      must(await c.put({ key: Buffer.from('lock/after-second'), value: Buffer.from('ok') }));
      const r = must(await c.range({ key: Buffer.from('lock/after-second') }));
      expect(r.kvs.map((kv: { value: Buffer }) => kv.value.toString())).toEqual(['ok']);
    } finally {
      c.close();
    }

    // SIGKILL leaves no lock behind: a new process starts on the dir and still has the data.
    await first.kill('SIGKILL');
    await first.restart();
    const c2 = connect(first.endpoint);
    try {
      const r = must(await c2.range({ key: Buffer.from('lock/after-second') }));
      expect(r.kvs.map((kv: { value: Buffer }) => kv.value.toString())).toEqual(['ok']);
    } finally {
      c2.close();
    }
    second = undefined;
  });

  it('uses the words etcd 3.4 logs for a data dir held by another etcd', async () => {
    expect(fs.existsSync(ETCD_BIN), `${ETCD_BIN} missing: apt-get install -y etcd-server`).toBe(true);
    const dir = tmpDir('cairn-failstop-etcdlock-');
    const dataDir = path.join(dir, 'data');
    const [c1, p1, c2, p2] = await freePorts(4);
    const spawnEtcd = (clientPort: number, peerPort: number, logName: string): Proc => {
      const logFile = path.join(dir, logName);
      const fd = fs.openSync(logFile, 'a');
      const child = spawn(ETCD_BIN, flagsFor('e1', dataDir, clientPort, peerPort), { stdio: ['ignore', fd, fd], cwd: dir });
      fs.closeSync(fd);
      trackChild(child);
      const proc: Proc = {
        child,
        logFile,
        exitedAt: undefined,
        get running() {
          return child.exitCode === null && child.signalCode === null;
        },
        log: () => fs.readFileSync(logFile, 'utf8'),
      };
      cleanups.push(() => killIfRunning(proc));
      return proc;
    };
    const holder = spawnEtcd(c1, p1, 'holder.log');
    await waitFor(() => !holder.running || holder.log().includes('ready to serve client requests'), ETCD_READY_TIMEOUT_MS, () => tail(holder.log()));
    expect(holder.running, tail(holder.log())).toBe(true);
    const blocked = spawnEtcd(c2, p2, 'blocked.log');
    // The default (capnslog) logger: `etcdserver: another etcd process is using "<db>" and holds
    // the file lock, or loading backend file is taking >10 seconds`.
    await waitFor(() => blocked.log().includes('holds the file lock'), ETCD_WARNING_TIMEOUT_MS, () => tail(blocked.log()));
    expect(blocked.log()).toContain(`${dataDirLockedMessage(dataDir)}, or loading backend file is taking >10 seconds`);
    expect(blocked.running).toBe(true); // etcd waits; cairn exits (see server/storage/datadir-lock.ts)
  });
});
