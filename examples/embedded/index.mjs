// @ts-check
/**
 * Embedding cairn in a Node program: start a member in a temporary data dir, wait until it is
 * ready, put and get a key with the npm `etcd3` client, print leader changes, stop.
 *
 *   npm run build && node examples/embedded/index.mjs
 *
 * Inside this repository `cairn` resolves to the package itself (Node's self-reference through
 * package.json "exports"). cairn is not on the npm registry (package.json is "private", so it
 * cannot be published by accident, and `npm install cairn` would fetch someone else's package):
 * in your own project install it from a checkout, `npm pack` there (builds dist/) and then
 * `npm install /path/to/cairn-<version>.tgz etcd3`, or from git,
 * `npm install git+https://<host>/<path>/cairn.git etcd3` (npm runs its `prepare` build), and copy
 * this file.
 * CLIENT_PORT and PEER_PORT (default 2379 / 2380) choose the ports.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { memberConfig, startMember } from 'cairn';
import { Etcd3 } from 'etcd3';

const clientUrl = `http://127.0.0.1:${process.env.CLIENT_PORT ?? 2379}`;
const peerUrl = `http://127.0.0.1:${process.env.PEER_PORT ?? 2380}`;
const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-example-'));

const member = await startMember(
  memberConfig({
    name: 'example',
    dataDir,
    listenClientUrls: clientUrl,
    advertiseClientUrls: clientUrl,
    listenPeerUrls: peerUrl,
    initialAdvertisePeerUrls: peerUrl,
    logLevel: 'error',
  }),
);
console.log(`member ${member.server.memberId.toString(16)} listening on ${clientUrl}`);
member.on('leaderChanged', ({ leader, term, isLeader }) => console.log(`leader changed: ${leader} term ${term} (this member: ${isLeader})`));
member.on('stopped', ({ error }) => console.log(error ? `stopped: ${error.message}` : 'stopped'));

await member.ready;
console.log('ready');

const client = new Etcd3({ hosts: clientUrl });
await client.put('greeting').value('hello');
console.log(`get greeting -> ${await client.get('greeting').string()}`);
client.close();

await member.close();
fs.rmSync(dataDir, { recursive: true, force: true });
