import * as net from 'node:net';

/**
 * Free-port allocation for process-level tests.
 *
 * Ports come from the kernel (bind port 0 on 127.0.0.1), so test files running in parallel
 * forks do not need a shared registry. All sockets of one request are held open at once, so
 * the returned ports are pairwise distinct; they are then closed and handed to the caller.
 * A tiny race remains (another process may grab the port before the server binds it), so
 * member.ts retries a start that fails with "address already in use".
 */

/** Ports handed out by this process, so one worker never gives out the same port twice. */
const issued = new Set<number>();

function listenOnce(): Promise<net.Server> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen({ port: 0, host: '127.0.0.1', exclusive: true }, () => resolve(srv));
  });
}

function close(srv: net.Server): Promise<void> {
  return new Promise((resolve) => srv.close(() => resolve()));
}

/** `count` distinct free TCP ports on 127.0.0.1. */
export async function freePorts(count: number): Promise<number[]> {
  const held: net.Server[] = [];
  const ports: number[] = [];
  try {
    let attempts = 0;
    while (ports.length < count) {
      if (++attempts > count * 20) throw new Error(`could not allocate ${count} free ports`);
      const srv = await listenOnce();
      held.push(srv);
      const port = (srv.address() as net.AddressInfo).port;
      if (issued.has(port)) continue; // keep it held so the kernel moves on
      ports.push(port);
    }
  } finally {
    await Promise.all(held.map(close));
  }
  for (const p of ports) issued.add(p);
  return ports;
}

/** One free port. */
export async function freePort(): Promise<number> {
  return (await freePorts(1))[0];
}

/** The ports one etcd/cairn member needs: a client port and a peer port. */
export async function memberPorts(): Promise<{ client: number; peer: number }> {
  const [client, peer] = await freePorts(2);
  return { client, peer };
}
