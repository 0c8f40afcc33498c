// A tiny HTTP "whoami" server for the network-namespace cluster (netcluster.ts). Effectful: it is a
// process of its own, started with `ip netns exec <ns> node whoami-server.ts --port P --log FILE`.
// Every request is answered with the address the server saw, as one JSON line
// `{"src","srcPort","dst","dstPort"}`, and the same observation (plus the time and an optional
// `?tag=`) is appended to FILE *before* the answer is sent. That file is the ground truth later
// audit tests compare the control plane's claims against: what an upstream firewall really saw.
// It listens on 0.0.0.0 because the namespace is isolated: every address the host holds answers.
// Prints `listening <port>` on stdout once ready; exits on SIGTERM/SIGINT.
import { appendFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '8080' },
    log: { type: 'string' },
  },
});
const port = Number(values.port);
const logFile = values.log;

/** Node reports IPv4 peers of a dual-stack socket as `::ffff:a.b.c.d`; firewalls see `a.b.c.d`. */
function plainIpv4(address: string | undefined): string {
  return (address ?? '').replace(/^::ffff:/, '');
}

const server = createServer((req, res) => {
  const tag = new URL(req.url ?? '/', 'http://whoami').searchParams.get('tag');
  const seen = {
    src: plainIpv4(req.socket.remoteAddress),
    srcPort: req.socket.remotePort ?? 0,
    dst: plainIpv4(req.socket.localAddress),
    dstPort: req.socket.localPort ?? 0,
  };
  if (logFile !== undefined) {
    // Synchronous on purpose: the observation is on disk before the client can act on the answer.
    const observation = { time: new Date().toISOString(), ...seen, ...(tag === null ? {} : { tag }) };
    appendFileSync(logFile, JSON.stringify(observation) + '\n');
  }
  res.writeHead(200, { 'content-type': 'application/json', connection: 'close' });
  res.end(JSON.stringify(seen) + '\n');
});

server.listen(port, '0.0.0.0', () => {
  process.stdout.write(`listening ${port}\n`);
});

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    server.close();
    server.closeAllConnections();
    process.exit(0);
  });
}
