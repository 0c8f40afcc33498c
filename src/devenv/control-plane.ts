// The project's own components as child processes of the dev environment (demo, int and e2e
// tests): watcher, projector, liveness, status writer, and one agent per netns node (run from the machine's namespace with --netns, like test/agent-restart.int.test.ts,
// so it reaches Kafka on loopback and can be SIGKILLed like a crashed DaemonSet pod). Effectful:
// owns exactly the processes it spawned (by PID) and their log files in `logDir`; stop() ends
// them (SIGTERM, then SIGKILL), and they die with this process anyway (setpriv --pdeathsig).
// Each gets its own free port for /healthz, /readyz and /metrics.
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { repoRoot } from './artifacts.ts';
import { freePort } from './free-port.ts';
import type { KafkaPrincipalName } from '../contracts/topic-access.ts';
import type { NetNode } from './netcluster.ts';

/** The API server's --service-cluster-ip-range (src/devenv/apiserver.ts). */
export const SERVICE_CIDR = '10.96.0.0/16';

/**
 * Failover timing for the dev environment: the documented defaults (docs/failover.md) are
 * 100/250/500 ms; on a shared 2-core machine a little more slack keeps a stalled-but-alive
 * agent from being declared lost, at the cost of ~150 ms of failover time.
 */
export const DEV_TIMING = {
  heartbeatInterval: '100ms',
  fenceAfter: '350ms',
  lostAfter: '650ms',
} as const;

export interface ComponentProcess {
  readonly name: string;
  readonly pid: number;
  readonly logFile: string;
  /** Port of /healthz, /readyz and /metrics on 127.0.0.1. */
  readonly healthPort: number;
  readonly child: ChildProcess;
  /** Resolves with 'code N' or the signal name once the process has exited. */
  readonly exited: Promise<string>;
  readonly running: boolean;
  kill(signal: NodeJS.Signals): void;
  /** SIGTERM, then SIGKILL after `graceMs`. */
  stop(graceMs?: number): Promise<void>;
  logTail(lines?: number): string;
  /** One sample from /metrics (labels in Prometheus syntax), undefined if absent or unreachable. */
  metric(name: string, labels?: string): Promise<number | undefined>;
  /** GET /readyz answered 200. */
  ready(): Promise<boolean>;
}

export type ComponentName = 'watcher' | 'projector' | 'liveness' | 'status-writer';

export interface ControlPlaneOptions {
  readonly brokers: readonly string[];
  readonly kubeconfigPath: string;
  /** Where process logs go; default a new temporary directory. */
  readonly logDir?: string;
  /** LOG_LEVEL of the components. Default info. */
  readonly logLevel?: string;
  /** Lease names get this suffix so several control planes on one API server do not elect each other. */
  readonly leaseSuffix?: string;
  /** Liveness' --lost-after. Default DEV_TIMING.lostAfter. */
  readonly lostAfter?: string;
  /** Extra flags per component. */
  readonly extraArgs?: Partial<Record<ComponentName, readonly string[]>>;
  /**
   * The Kafka flags that make a component connect as its own principal (componentCredentials()
   * of src/devenv/kafka-access.ts); `brokers` is then the broker's SASL listener. Default: none,
   * plaintext without authentication.
   */
  readonly kafkaArgs?: (principal: KafkaPrincipalName) => readonly string[];
}

export interface ControlPlane {
  readonly logDir: string;
  readonly components: ReadonlyMap<ComponentName, ComponentProcess>;
  readonly agents: ReadonlyMap<string, ComponentProcess>;
  component(name: ComponentName): ComponentProcess;
  startAgent(node: NetNode): Promise<ComponentProcess>;
  /** SIGKILL the node's agent (a crashed node), resolved once it has exited. */
  killAgent(node: string): Promise<void>;
  /** SIGKILL a component (kill -9, a crash), resolved once it has exited; it stays down. */
  killComponent(name: ComponentName): Promise<void>;
  /** Starts a component again with the flags it first had (after killComponent or a crash). */
  restartComponent(name: ComponentName): Promise<ComponentProcess>;
  stop(): Promise<void>;
  /** Synchronous SIGKILL of everything, for exit and signal handlers. */
  killAllSync(): void;
  /** The last log lines of every process, for failure messages. */
  describe(lines?: number): string;
}

const nodeBin = path.join(repoRoot, 'node_modules/.bin/node');
const setpriv = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p));

/** Starts `script` with `args` plus `--health-port <free port>`, stdout and stderr into `<logDir>/<name>.log`. */
export async function startComponent(
  name: string,
  script: string,
  args: readonly string[],
  options: { logDir: string; logLevel?: string | undefined },
): Promise<ComponentProcess> {
  const healthPort = await freePort();
  const logFile = path.join(options.logDir, `${name}.log`);
  const out = createWriteStream(logFile, { flags: 'a' });
  const argv = [
    nodeBin,
    '--disable-warning=ExperimentalWarning',
    path.join(repoRoot, script),
    ...args,
    '--health-port',
    String(healthPort),
  ];
  // setpriv execs in place, so the PID stays the component's own.
  const [cmd, ...rest] = setpriv === undefined ? argv : [setpriv, '--pdeathsig', 'KILL', '--', ...argv];
  const child = spawn(cmd!, rest, {
    cwd: repoRoot,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, LOG_LEVEL: options.logLevel ?? 'info' },
  });
  child.stdout.pipe(out, { end: false });
  child.stderr.pipe(out, { end: false });
  const exited = new Promise<string>((resolve) => {
    child.once('exit', (code, signal) => resolve(signal ?? `code ${code}`));
    child.once('error', (err) => resolve(`spawn error ${err.message}`));
  });
  child.once('close', () => out.end());
  const running = (): boolean => child.exitCode === null && child.signalCode === null;
  const proc: ComponentProcess = {
    name,
    pid: child.pid ?? -1,
    logFile,
    healthPort,
    child,
    exited,
    get running() {
      return running();
    },
    kill(signal) {
      if (running()) child.kill(signal);
    },
    async stop(graceMs = 3000) {
      if (!running()) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    },
    logTail(lines = 30) {
      try {
        return readFileSync(logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
      } catch {
        return '(no log)';
      }
    },
    async metric(metricName, labels = '') {
      try {
        const text = await (await fetch(`http://127.0.0.1:${healthPort}/metrics`)).text();
        const line = text.split('\n').find((l) => l.startsWith(`${metricName}${labels} `));
        return line === undefined ? undefined : Number(line.split(' ')[1]);
      } catch {
        return undefined;
      }
    },
    async ready() {
      try {
        return (await fetch(`http://127.0.0.1:${healthPort}/readyz`)).status === 200;
      } catch {
        return false;
      }
    },
  };
  return proc;
}

/** The dev environment's agent flags for `node` (without --health-port), brokers comma-separated. */
export function renderAgentArgs(node: NetNode, brokers: string): string[] {
  return [
    '--node-name',
    node.name,
    '--brokers',
    brokers,
    '--netns',
    node.ns,
    '--uplink',
    node.uplink,
    '--heartbeat-interval',
    DEV_TIMING.heartbeatInterval,
    '--fence-after',
    DEV_TIMING.fenceAfter,
  ];
}

/** Short Leases, so a killed leader's successor takes over within seconds in tests and the demo. */
const fastLease = ['--lease-duration', '3s', '--renew-deadline', '2s', '--retry-period', '250ms'];

export async function startControlPlane(opts: ControlPlaneOptions): Promise<ControlPlane> {
  const brokers = opts.brokers.join(',');
  const logDir = opts.logDir ?? mkdtempSync(path.join(tmpdir(), 'kseip-control-plane-'));
  const suffix = opts.leaseSuffix === undefined ? '' : `-${opts.leaseSuffix}`;
  const extra = (name: ComponentName): readonly string[] => opts.extraArgs?.[name] ?? [];
  const lease = (name: ComponentName): string[] => [
    '--lease-namespace',
    'default',
    '--lease-name',
    `kseip-${name}${suffix}`,
    ...fastLease,
  ];
  const kafkaArgs = (principal: KafkaPrincipalName): readonly string[] => opts.kafkaArgs?.(principal) ?? [];
  // The component names are the principal names (src/contracts/topic-access.ts).
  const startOne = (name: ComponentName, script: string, args: readonly string[]) =>
    startComponent(name, script, [...args, ...kafkaArgs(name), ...extra(name)], {
      logDir,
      logLevel: opts.logLevel,
    });
  const components = new Map<ComponentName, ComponentProcess>();
  const agents = new Map<string, ComponentProcess>();
  const specs = new Map<ComponentName, () => Promise<ComponentProcess>>();
  const start = (name: ComponentName, script: string, args: readonly string[]): Promise<ComponentProcess> => {
    const run = (): Promise<ComponentProcess> => startOne(name, script, args);
    specs.set(name, run);
    return run();
  };
  const started = await Promise.all([
    start('watcher', 'src/watcher/main.ts', [
      '--kubeconfig',
      opts.kubeconfigPath,
      '--brokers',
      brokers,
      ...lease('watcher'),
    ]),
    start('projector', 'src/projector/main.ts', [
      '--brokers',
      brokers,
      // A restarted projector must not wait a minute for its predecessor's transaction.
      '--transaction-timeout',
      '10s',
    ]),
    start('liveness', 'src/liveness/main.ts', [
      '--brokers',
      brokers,
      '--lost-after',
      opts.lostAfter ?? DEV_TIMING.lostAfter,
    ]),
    start('status-writer', 'src/status/main.ts', [
      '--kubeconfig',
      opts.kubeconfigPath,
      '--brokers',
      brokers,
      ...lease('status-writer'),
      '--min-interval',
      '100ms',
    ]),
  ]);
  for (const proc of started) components.set(proc.name as ComponentName, proc);

  const all = (): ComponentProcess[] => [...agents.values(), ...components.values()];
  return {
    logDir,
    components,
    agents,
    component(name) {
      const proc = components.get(name);
      if (proc === undefined) throw new Error(`no ${name} process`);
      return proc;
    },
    async startAgent(node) {
      const agent = await startComponent(
        `agent-${node.name}`,
        'src/agents/main.ts',
        [...renderAgentArgs(node, brokers), ...kafkaArgs('agent')],
        {
          logDir,
          logLevel: opts.logLevel,
        },
      );
      agents.set(node.name, agent);
      return agent;
    },
    async killAgent(node) {
      const agent = agents.get(node);
      if (agent === undefined) throw new Error(`no agent for node ${node}`);
      agent.kill('SIGKILL');
      await agent.exited;
      agents.delete(node);
    },
    async killComponent(name) {
      const proc = components.get(name);
      if (proc === undefined) throw new Error(`no ${name} process`);
      proc.kill('SIGKILL');
      await proc.exited;
    },
    async restartComponent(name) {
      const run = specs.get(name);
      if (run === undefined) throw new Error(`no ${name} process was ever started`);
      const old = components.get(name);
      if (old?.running === true) throw new Error(`${name} (pid ${old.pid}) is still running`);
      const proc = await run();
      components.set(name, proc);
      return proc;
    },
    async stop() {
      // Agents first (a plain SIGTERM keeps their dataplane; the namespaces go anyway).
      await Promise.all([...agents.values()].map((a) => a.stop()));
      await Promise.all([...components.values()].map((c) => c.stop()));
    },
    killAllSync() {
      for (const p of all()) p.kill('SIGKILL');
    },
    describe(lines = 25) {
      return all()
        .map(
          (p) =>
            `--- ${p.name} (pid ${p.pid}, ${p.running ? 'running' : 'exited'}) log:\n${p.logTail(lines)}`,
        )
        .join('\n');
    },
  };
}
