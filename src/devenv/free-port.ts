// TCP ports on 127.0.0.1 that were free a moment ago, for child processes that need known ports
// (health/metrics, a broker's listeners, etcd and the API server). Racy by nature: another
// process can take a port between our close and the child's bind, so callers that start a
// listener retry on "address in use". Good enough for test processes on one machine.
import { createServer, type AddressInfo, type Server } from 'node:net';

/** `n` distinct ports: every probe listener stays open until all n are known. */
export async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<Server>((resolve, reject) => {
          const server = createServer();
          server.once('error', reject);
          server.listen(0, '127.0.0.1', () => resolve(server));
        }),
    ),
  );
  const ports = servers.map((s) => (s.address() as AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  return ports;
}

export async function freePort(): Promise<number> {
  const [port] = await freePorts(1);
  return port!;
}
