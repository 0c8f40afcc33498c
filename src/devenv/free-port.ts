// A TCP port on 127.0.0.1 that was free a moment ago, for child processes that need a known
// health/metrics port. Racy by nature; good enough for one test process on one machine.
import { createServer, type AddressInfo } from 'node:net';

export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}
