import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Etcd3 } from 'etcd3';
import { freePorts } from '../support/ports';
import { REPO_ROOT } from '../support/member';

/**
 * cairn as a library: the package's entry point (package.json "main", the built dist/) starts a
 * member in this process from etcd's flags, real clients use it, and close() releases its data dir.
 */

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

interface EmbedApi {
  startMember(cfg: unknown): Promise<{ close(): Promise<void>; clientAddresses: { host: string; port: number }[] }>;
  buildConfig(flags: unknown): unknown;
  parseFlags(argv: string[], env: NodeJS.ProcessEnv): unknown;
}

describe('embedding a member with one import', () => {
  it("require('cairn') starts a member that the npm etcd3 client can use, and restarts from its data dir", async () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { main: string };
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const cairn = require(path.join(REPO_ROOT, pkg.main)) as EmbedApi;
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-embed-'));
    dirs.push(dir);
    const [client, peer] = await freePorts(2);
    const flags = [
      '--name', 'embedded', '--data-dir', path.join(dir, 'data'),
      '--listen-client-urls', `http://127.0.0.1:${client}`, '--advertise-client-urls', `http://127.0.0.1:${client}`,
      '--listen-peer-urls', `http://127.0.0.1:${peer}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${peer}`,
      '--initial-cluster', `embedded=http://127.0.0.1:${peer}`, '--log-level', 'error',
    ];
    const start = () => cairn.startMember(cairn.buildConfig(cairn.parseFlags(flags, {})));
    let member = await start();
    expect(member.clientAddresses).toEqual([{ host: '127.0.0.1', port: client }]);
    const etcd = new Etcd3({ hosts: `http://127.0.0.1:${client}` });
    await etcd.put('embedded/key').value('v1');
    expect(await etcd.get('embedded/key').string()).toBe('v1');
    etcd.close();
    await member.close();

    member = await start();
    const again = new Etcd3({ hosts: `http://127.0.0.1:${client}` });
    expect(await again.get('embedded/key').string()).toBe('v1');
    again.close();
    await member.close();
  });

  it('a member whose client port is taken rejects, and releases its data dir for the next try', async () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { main: string };
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const cairn = require(path.join(REPO_ROOT, pkg.main)) as EmbedApi;
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-embed-'));
    dirs.push(dir);
    const [taken, free, peer] = await freePorts(3);
    const blocker = net.createServer().listen(taken, '127.0.0.1');
    await new Promise((r) => blocker.once('listening', r));
    const flags = (client: number): string[] => [
      '--name', 'embedded', '--data-dir', path.join(dir, 'data'),
      '--listen-client-urls', `http://127.0.0.1:${client}`, '--advertise-client-urls', `http://127.0.0.1:${client}`,
      '--listen-peer-urls', `http://127.0.0.1:${peer}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${peer}`,
      '--initial-cluster', `embedded=http://127.0.0.1:${peer}`, '--log-level', 'error',
    ];
    try {
      await expect(cairn.startMember(cairn.buildConfig(cairn.parseFlags(flags(taken), {})))).rejects.toThrow(/EADDRINUSE/);
    } finally {
      blocker.close();
    }
    const member = await cairn.startMember(cairn.buildConfig(cairn.parseFlags(flags(free), {})));
    await member.close();
  });
});
