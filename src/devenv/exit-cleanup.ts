// The last-resort cleanup of the dev-environment harnesses (network namespaces, API server
// processes, node containers): a synchronous function run when this process exits or receives
// SIGINT, SIGTERM or SIGHUP. Effectful: installs process handlers, once per cleanup function.
//
// Listening to a signal disables Node's default "die"; once every handler (each harness installs
// its own) has run, the last one re-raises the signal, so the process still dies the way its
// sender expects.
const installed = new Set<() => void>();

export function runOnExit(cleanupSync: () => void): void {
  if (installed.has(cleanupSync)) return;
  installed.add(cleanupSync);
  process.on('exit', cleanupSync);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = (): void => {
      cleanupSync();
      process.off(signal, onSignal);
      if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
    };
    process.on(signal, onSignal);
  }
}
