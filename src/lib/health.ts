// /healthz, /readyz and /metrics for every long-running component, on one small HTTP server.
// Effectful. Readiness is a callback so each component says what "ready" means for it
// (caches synced, caught up to the log, ...). Metrics come from the prom-client default registry,
// which also gets the component's kseip_build_info (./build-info.ts) here, so no component can
// serve metrics without it.
import { createServer, type Server } from 'node:http';
import { register, collectDefaultMetrics } from 'prom-client';
import { registerBuildInfo } from './build-info.ts';

let defaultMetricsStarted = false;

export interface HealthServer {
  readonly port: number;
  close(): Promise<void>;
}

export async function startHealthServer(opts: {
  /** agent, liveness, projector, status, watcher: the component label of kseip_build_info. */
  component: string;
  port: number;
  host?: string;
  ready: () => boolean;
  live?: () => boolean;
}): Promise<HealthServer> {
  if (!defaultMetricsStarted) {
    collectDefaultMetrics();
    defaultMetricsStarted = true;
  }
  registerBuildInfo(register, opts.component);
  const server: Server = createServer((req, res) => {
    const answer = (ok: boolean) => {
      res.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain' });
      res.end(ok ? 'ok\n' : 'not ready\n');
    };
    if (req.url === '/healthz') return answer(opts.live?.() ?? true);
    if (req.url === '/readyz') return answer(opts.ready());
    if (req.url === '/metrics') {
      register
        .metrics()
        .then((text) => {
          res.writeHead(200, { 'content-type': register.contentType });
          res.end(text);
        })
        .catch((err: unknown) => {
          res.writeHead(500);
          res.end(String(err));
        });
      return;
    }
    res.writeHead(404);
    res.end();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host ?? '0.0.0.0', resolve);
  });
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : opts.port;
  return {
    port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
