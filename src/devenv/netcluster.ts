// The network-namespace cluster harness: "nodes", "pods", an upstream router and an "external"
// host, each a Linux network namespace, wired like a small real cluster so that kernel int tests,
// e2e tests and the demo exercise the real packet path. Effectful: it creates namespaces, links,
// routes, nftables tables and processes, and owns exactly those it created (recorded by name and
// PID under .cache/runs/netcluster-<runId>.json) and nothing else. It never touches the machine's
// own network namespace, and no namespace has a route to the machine's real network.
//
// Topology (node i = 1, 2, ...):
//
//   ext ns:    eth0 203.0.113.10/24 (+ extra external IPs), default via 203.0.113.1, whoami :8080
//                 |
//   router ns: ext0 203.0.113.1/24; bridge br0 = 10.240.0.1/24 + 198.51.100.1/24 (egress range
//              ON-LINK, so an egress IP held as a /32 by any node is found by ARP and moved by
//              gratuitous ARP); port p<i> per node; ip_forward; no masquerade, no pod routes.
//                 |
//   node ns:   eth0 10.240.0.(10+i)/24, default via 10.240.0.1; bridge cni0 10.244.i.1/24;
//              routes to other nodes' pod CIDRs (host-gw: via their node IP; vxlan: flannel.1,
//              VNI 1, UDP 8472, onlink routes + permanent neighbour/fdb entries as flannel does);
//              the CNI's own masquerade in `table ip cni-nat`.
//                 |
//   pod ns:    eth0 10.244.i.k/24 (veth whose peer is on cni0), default via 10.244.i.1.
//
// Pods leave the cluster only through the CNI masquerade (or, later, the egress gateway's SNAT),
// exactly as in a real cluster: the router and the external host know nothing of pod CIDRs.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  createWriteStream,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import { constants as osConstants } from 'node:os';
import path from 'node:path';
import { isRight } from 'fp-ts/lib/Either.js';
import * as t from 'io-ts';
import { createLogger, type Logger } from '../lib/log.ts';
import { cacheDir, repoRoot } from './artifacts.ts';
import { runOnExit } from './exit-cleanup.ts';

// ---------------------------------------------------------------------------------------------
// Addresses. Node and pod ranges exist only inside this harness's namespaces.

export const NODE_SUBNET = '10.240.0.0/24';
export const ROUTER_NODE_IP = '10.240.0.1';
export const CLUSTER_POD_CIDR = '10.244.0.0/16';
export const EGRESS_RANGE = '198.51.100.0/24';
export const ROUTER_EGRESS_IP = '198.51.100.1';
export const ROUTER_EXTERNAL_IP = '203.0.113.1';
export const EXTERNAL_HOST_IP = '203.0.113.10';
/** A second external address: a destination tests can leave *out* of a policy. */
export const EXTERNAL_OTHER_IP = '203.0.113.20';
export const WHOAMI_PORT = 8080;
/** flannel's VXLAN defaults on Linux: VNI 1 on UDP 8472 (not 4789, which the agent may use). */
export const FLANNEL_VNI = 1;
export const FLANNEL_VXLAN_PORT = 8472;
const VXLAN_OVERHEAD = 50;
const MAX_NODE_INDEX = 200;

export type PodNetwork = 'host-gw' | 'vxlan';

export interface NetClusterOptions {
  readonly nodes: number;
  readonly podNetwork: PodNetwork;
  /** 4-8 lowercase hex/alnum chars; random when absent. Prefixes every namespace name. */
  readonly runId?: string;
  /** Addresses the external host holds (all answer whoami). Default: .10 and .20 of 203.0.113/24. */
  readonly externalIps?: readonly string[];
  /** Pods' MTU. Default as flannel: 1500 for host-gw, 1450 (1500 - VXLAN overhead) for vxlan. */
  readonly podMtu?: number;
  /**
   * Nodes' net.ipv4.conf.{all,default}.rp_filter. Default 2 (loose), what systemd-based distros
   * ship. The kernel uses max(all, <dev>), so with 1 (strict) a per-device 0 cannot loosen it.
   */
  readonly nodeRpFilter?: 0 | 1 | 2;
  readonly log?: Logger;
  /** Keep the run directory (process logs, whoami log) after destroy(). Default false. */
  readonly keepRunDir?: boolean;
}

export interface NetNode {
  readonly name: string;
  readonly index: number;
  /** Network namespace name; run a node agent with `ip netns exec <ns> ...`. */
  readonly ns: string;
  /** The node IP on its uplink `eth0`. */
  readonly ip: string;
  readonly uplink: 'eth0';
  readonly uplinkMac: string;
  readonly podCidr: string;
  /** cni0's address: the pods' default gateway. */
  readonly podGatewayIp: string;
  /** The router's bridge port for this node (killNode sets it down). */
  readonly routerPort: string;
  /** flannel.1's MAC (vxlan mode only). */
  readonly vxlanMac: string | undefined;
  readonly killed: boolean;
}

export interface NetPod {
  readonly name: string;
  readonly node: string;
  readonly ns: string;
  readonly ip: string;
  /** The veth end on the node, attached to cni0. */
  readonly hostVeth: string;
}

export interface ExecResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export interface ExecOptions {
  /** Throw (with stderr) when the command exits non-zero. Default false. */
  readonly check?: boolean;
  readonly input?: string;
  readonly timeoutMs?: number;
}

export interface SpawnOptions {
  /** Base name of the log file in the run directory (stdout and stderr both go there). */
  readonly name: string;
  readonly env?: NodeJS.ProcessEnv;
  /** Resolve only once stdout/stderr matched this; fail if the process exits first. */
  readonly readyPattern?: RegExp;
  readonly readyTimeoutMs?: number;
}

export interface ManagedProcess {
  readonly pid: number;
  readonly ns: string;
  readonly argv: readonly string[];
  readonly logFile: string;
  readonly child: ChildProcess;
  /** Resolves with the exit code (null when killed by a signal). */
  readonly exited: Promise<number | null>;
  /** SIGTERM, then SIGKILL after a grace period. */
  stop(): Promise<void>;
}

export interface WhoamiOptions {
  readonly port?: number;
  readonly timeoutMs?: number;
  /** Recorded with the observation, to tell requests apart in the ground-truth log. */
  readonly tag?: string;
}

/** What the whoami server saw of one connection (the answer and the ground-truth log line). */
export interface WhoamiReply {
  readonly src: string;
  readonly srcPort: number;
  readonly dst: string;
  readonly dstPort: number;
}

const ObservationCodec = t.intersection([
  t.type({ time: t.string, src: t.string, srcPort: t.number, dst: t.string, dstPort: t.number }),
  t.partial({ tag: t.string }),
]);
export type Observation = t.TypeOf<typeof ObservationCodec>;
const WhoamiReplyCodec = t.type({ src: t.string, srcPort: t.number, dst: t.string, dstPort: t.number });

export type BridgeCutMode = 'reset' | 'blackhole';

export interface TcpBridge {
  readonly ns: string;
  readonly port: number;
  readonly socketPath: string;
  /**
   * Simulate losing contact. 'reset' (default): live relayed connections are closed and new ones
   * are closed at once. 'blackhole': bytes stop flowing both ways but connections stay open, so
   * clients wait for their own timeouts, as with a silent network partition.
   */
  cut(mode?: BridgeCutMode): void;
  /** Let connections through again; connections held by a blackhole are closed. */
  restore(): void;
  readonly isCut: boolean;
  close(): Promise<void>;
}

export interface NetCluster {
  readonly runId: string;
  readonly runDir: string;
  readonly podNetwork: PodNetwork;
  readonly router: { readonly ns: string; readonly bridge: 'br0'; readonly nodeSideIp: string };
  readonly external: { readonly ns: string; readonly ips: readonly string[]; readonly whoamiPort: number };
  nodes(): NetNode[];
  node(name: string): NetNode;
  pods(): NetPod[];
  pod(name: string): NetPod;
  /** Every namespace this cluster currently owns. */
  namespaces(): string[];
  addNode(options?: { name?: string }): Promise<NetNode>;
  /**
   * A node whose network namespace belongs to another process, e.g. a real node's container
   * (src/devenv/real-nodes.ts): the namespace of `pid` is named like a node's and gets only the
   * uplink (its own CNI does the rest, so no cni0, pod routes or CNI masquerade are added).
   * removeNode drops the name again, which lets the namespace die with its process.
   */
  attachNode(name: string, pid: number): Promise<NetNode>;
  removeNode(name: string): Promise<void>;
  /** Power off as seen from the network: the router's port goes down; by default the node's TCP bridges are cut too. */
  killNode(name: string, options?: { cutBridges?: boolean }): Promise<void>;
  reviveNode(name: string): Promise<void>;
  addPod(nodeName: string, podName: string, options?: { ip?: string }): Promise<NetPod>;
  removePod(podName: string): Promise<void>;
  /** Pod churn: the pod is deleted and re-created on the same node with another IP (the next free one unless given). */
  setPodIp(podName: string, ip?: string): Promise<NetPod>;
  exec(ns: string, argv: readonly string[], options?: ExecOptions): Promise<ExecResult>;
  /** A long-running process inside a namespace, killed by destroy(). */
  spawn(ns: string, argv: readonly string[], options: SpawnOptions): Promise<ManagedProcess>;
  /** The source address the whoami server at dstIp saw for a request from `ns`. Throws if unreachable. */
  whoami(ns: string, dstIp: string, options?: WhoamiOptions): Promise<string>;
  whoamiReply(ns: string, dstIp: string, options?: WhoamiOptions): Promise<WhoamiReply>;
  /** The external host's ground-truth log, oldest first. */
  observations(): Promise<Observation[]>;
  /** Another whoami server, e.g. inside a pod; its observations go to its own log file. */
  startWhoami(
    ns: string,
    options?: { port?: number },
  ): Promise<ManagedProcess & { readonly observationsFile: string }>;
  /** `iperf3 -s` (default in the external namespace, port 5201). */
  startIperf3(ns?: string, options?: { port?: number }): Promise<ManagedProcess & { readonly port: number }>;
  /**
   * <bindIp ?? 127.0.0.1>:<port> inside `ns` forwards to 127.0.0.1:<hostPort ?? port> in the
   * machine's namespace (bindIp: an address `ns` holds, e.g. the router's node-side address, so
   * that other namespaces reach it too).
   */
  bridgeTcpIntoNamespace(
    ns: string,
    port: number,
    options?: { hostPort?: number; bindIp?: string },
  ): Promise<TcpBridge>;
  destroy(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// Pure rendering of addresses, names and ip/nft/bridge batch text.

interface NodePlan {
  readonly name: string;
  readonly index: number;
  readonly ns: string;
  readonly ip: string;
  readonly uplinkMac: string;
  readonly podCidr: string;
  readonly podGatewayIp: string;
  readonly cniMac: string;
  readonly routerPort: string;
  readonly vxlanMac: string;
}

const hex2 = (n: number): string => n.toString(16).padStart(2, '0');

/** Deterministic, locally administered unicast MACs (first octet 02/0e), readable in tcpdump. */
export function planNode(nsPrefix: string, name: string, index: number): NodePlan {
  if (!Number.isInteger(index) || index < 1 || index > MAX_NODE_INDEX) {
    throw new Error(`node index ${index} out of range 1..${MAX_NODE_INDEX}`);
  }
  return {
    name,
    index,
    ns: `${nsPrefix}-${name}`,
    ip: `10.240.0.${10 + index}`,
    uplinkMac: `02:00:0a:f0:00:${hex2(10 + index)}`,
    podCidr: `10.244.${index}.0/24`,
    podGatewayIp: `10.244.${index}.1`,
    cniMac: `02:00:0a:f4:${hex2(index)}:01`,
    routerPort: `p${index}`,
    vxlanMac: `0e:00:0a:f4:${hex2(index)}:00`,
  };
}

export function renderRouterBatch(extNs: string): string {
  return [
    'link set lo up',
    'link add br0 type bridge',
    'link set br0 up',
    `address add ${ROUTER_NODE_IP}/24 dev br0`,
    `address add ${ROUTER_EGRESS_IP}/24 dev br0`,
    `link add ext0 type veth peer name eth0 netns ${extNs}`,
    `address add ${ROUTER_EXTERNAL_IP}/24 dev ext0`,
    'link set ext0 up',
  ].join('\n');
}

/** Router side of a node's uplink: the veth is created here with its peer born in the node ns. */
export function renderRouterPortBatch(node: NodePlan): string {
  return [
    `link add ${node.routerPort} type veth peer name eth0 netns ${node.ns}`,
    `link set ${node.routerPort} master br0`,
    `link set ${node.routerPort} up`,
  ].join('\n');
}

export function renderExternalBatch(ips: readonly string[]): string {
  return [
    'link set lo up',
    ...ips.map((ip) => `address add ${ip}/24 dev eth0`),
    'link set eth0 up',
    `route add default via ${ROUTER_EXTERNAL_IP} dev eth0`,
  ].join('\n');
}

/** A node's uplink: the part every node has, simulated or a real node's container. */
export function renderUplinkBatch(node: NodePlan): string {
  return [
    'link set lo up',
    `link set eth0 address ${node.uplinkMac}`,
    `address add ${node.ip}/24 dev eth0`,
    'link set eth0 up',
    `route add default via ${ROUTER_NODE_IP} dev eth0`,
  ].join('\n');
}

export function renderNodeBatch(node: NodePlan, mode: PodNetwork, podMtu: number): string {
  const lines = [
    renderUplinkBatch(node),
    // An explicit MAC pins the bridge's address: otherwise it follows the lowest port MAC and
    // changes as pods come and go, leaving pods with a stale gateway neighbour entry.
    `link add cni0 mtu ${podMtu} address ${node.cniMac} type bridge`,
    `address add ${node.podGatewayIp}/24 dev cni0`,
    'link set cni0 up',
  ];
  if (mode === 'vxlan') {
    lines.push(
      `link add flannel.1 address ${node.vxlanMac} mtu ${1500 - VXLAN_OVERHEAD} type vxlan id ${FLANNEL_VNI}` +
        ` local ${node.ip} dev eth0 dstport ${FLANNEL_VXLAN_PORT} nolearning`,
      // flannel gives flannel.1 the pod network address (.0) as /32: the node's own traffic to
      // remote pods then leaves with that source, and the .0 is the next hop other nodes use.
      `address add ${node.podCidr.replace('/24', '/32')} dev flannel.1`,
      'link set flannel.1 up',
    );
  }
  return lines.join('\n');
}

const vxlanNextHop = (peer: NodePlan): string => peer.podCidr.replace('/24', '');

/** On `self`, the routes that reach `peers`' pod CIDRs (ip batch). */
export function renderPeerRoutes(mode: PodNetwork, peers: readonly NodePlan[]): string {
  return peers
    .flatMap((peer) =>
      mode === 'host-gw'
        ? [`route replace ${peer.podCidr} via ${peer.ip} dev eth0`]
        : [
            // Permanent neighbour + fdb entries, as flanneld programs them: no ARP or flooding
            // ever crosses the overlay.
            `neigh replace ${vxlanNextHop(peer)} lladdr ${peer.vxlanMac} dev flannel.1 nud permanent`,
            `route replace ${peer.podCidr} via ${vxlanNextHop(peer)} dev flannel.1 onlink`,
          ],
    )
    .join('\n');
}

/** bridge batch for vxlan: which node IP owns each peer's flannel.1 MAC. */
export function renderPeerFdb(peers: readonly NodePlan[]): string {
  return peers
    .map((peer) => `fdb replace ${peer.vxlanMac} dev flannel.1 dst ${peer.ip} self permanent`)
    .join('\n');
}

export function renderPeerRemoval(mode: PodNetwork, peer: NodePlan): string {
  return mode === 'host-gw'
    ? `route del ${peer.podCidr}`
    : [`route del ${peer.podCidr}`, `neigh del ${vxlanNextHop(peer)} dev flannel.1`].join('\n');
}

/**
 * The CNI's own masquerade, in the CNI's own table (the agent must never touch it). Like
 * flannel's rule it matches the whole cluster pod CIDR, so on a gateway node it would also
 * masquerade steered traffic of remote pods: the agent's SNAT has to run first.
 */
export function renderCniNat(): string {
  return [
    'table ip cni-nat {',
    '  chain postrouting {',
    '    type nat hook postrouting priority srcnat; policy accept;',
    `    ip saddr ${CLUSTER_POD_CIDR} ip daddr != ${CLUSTER_POD_CIDR} masquerade`,
    '  }',
    '}',
    '',
  ].join('\n');
}

export function hostVethName(podName: string): string {
  return `veth${createHash('sha256').update(podName).digest('hex').slice(0, 8)}`;
}

/** The pod's address: the next free host number after the last one handed out, like host-local IPAM. */
export function allocatePodHost(used: ReadonlySet<number>, next: number): number | undefined {
  for (let step = 0; step < 253; step++) {
    const host = ((next - 2 + step) % 253) + 2; // 2..254; .1 is cni0
    if (!used.has(host)) return host;
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Processes and commands.

/** A command to its end: exit code (128 + signal when killed) and output; rejects only if it cannot start. */
export async function runCommand(
  file: string,
  args: readonly string[],
  options: { input?: string; timeoutMs?: number } = {},
): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const timer =
      options.timeoutMs === undefined
        ? undefined
        : setTimeout(() => child.kill('SIGKILL'), options.timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const signo = signal === null ? 0 : osConstants.signals[signal];
      resolve({ code: code ?? 128 + signo, stdout, stderr });
    });
    child.stdin.on('error', () => {}); // EPIPE when the command exits without reading its input
    child.stdin.end(options.input ?? '');
  });
}

async function mustRun(
  file: string,
  args: readonly string[],
  options: { input?: string } = {},
): Promise<string> {
  const result = await runCommand(file, args, options);
  if (result.code !== 0) {
    const input = options.input === undefined ? '' : `\ninput:\n${options.input}`;
    throw new Error(`${file} ${args.join(' ')} exited ${result.code}: ${result.stderr.trim()}${input}`);
  }
  return result.stdout;
}

const ipBatch = (ns: string, batch: string): Promise<string> =>
  batch === '' ? Promise.resolve('') : mustRun('ip', ['-n', ns, '-batch', '-'], { input: batch + '\n' });
const bridgeBatch = (ns: string, batch: string): Promise<string> =>
  batch === '' ? Promise.resolve('') : mustRun('bridge', ['-n', ns, '-batch', '-'], { input: batch + '\n' });
const sysctl = (ns: string, settings: readonly string[]): Promise<string> =>
  mustRun('ip', ['netns', 'exec', ns, 'sysctl', '-q', '-e', '-w', ...settings]);

/** Field 22 of /proc/<pid>/stat: with the PID it identifies a process even after PID reuse. */
export function processStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

function killIfSame(pid: number, startTime: string, signal: NodeJS.Signals): void {
  if (processStartTime(pid) !== startTime) return;
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

function existingNamespaces(): Set<string> {
  try {
    return new Set(readdirSync('/run/netns'));
  } catch {
    return new Set();
  }
}

/** PIDs whose network namespace is `ns` (anything we did not start ourselves, e.g. a node agent). */
function pidsInNamespaceSync(ns: string): number[] {
  try {
    return execFileSync('ip', ['netns', 'pids', ns], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    })
      .split('\n')
      .filter((line) => line.trim() !== '')
      .map(Number);
  } catch {
    return [];
  }
}

/**
 * Kills every process left in the namespaces, then deletes them. Synchronous so that it can run
 * from a process 'exit' handler. A namespace that still has a process lives on after
 * `ip netns del` (only its name goes), links included, so processes go first.
 */
function deleteNamespacesSync(namespaces: readonly string[]): void {
  const present = existingNamespaces();
  const ours = namespaces.filter((ns) => present.has(ns));
  for (const ns of ours) {
    for (const pid of pidsInNamespaceSync(ns)) {
      if (pid === process.pid) continue;
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
  if (ours.length === 0) return;
  execFileSync('ip', ['-force', '-batch', '-'], {
    input: ours.map((ns) => `netns del ${ns}`).join('\n') + '\n',
    stdio: ['pipe', 'ignore', 'ignore'],
  });
}

// ---------------------------------------------------------------------------------------------
// Run records: what each run created, so that a crashed run is swept by the next one.

const runsDir = path.join(cacheDir, 'runs');
const RECORD_PREFIX = 'netcluster-';

const RunRecordCodec = t.type({
  runId: t.string,
  owner: t.type({ pid: t.number, startTime: t.string }),
  runDir: t.string,
  namespaces: t.array(t.string),
  processes: t.array(t.type({ pid: t.number, startTime: t.string })),
});
type RunRecord = t.TypeOf<typeof RunRecordCodec>;

const recordPath = (runId: string): string => path.join(runsDir, `${RECORD_PREFIX}${runId}.json`);

function writeRecord(record: RunRecord): void {
  mkdirSync(runsDir, { recursive: true });
  const target = recordPath(record.runId);
  writeFileSync(`${target}.tmp`, JSON.stringify(record, null, 2));
  renameSync(`${target}.tmp`, target);
}

function readRecord(file: string): RunRecord | undefined {
  try {
    const decoded = RunRecordCodec.decode(JSON.parse(readFileSync(file, 'utf8')));
    return isRight(decoded) ? decoded.right : undefined;
  } catch {
    return undefined;
  }
}

function ownerAlive(record: RunRecord): boolean {
  return processStartTime(record.owner.pid) === record.owner.startTime;
}

function cleanupRecordSync(record: RunRecord, keepRunDir: boolean): void {
  for (const p of record.processes) killIfSame(p.pid, p.startTime, 'SIGKILL');
  deleteNamespacesSync(record.namespaces);
  if (!keepRunDir) rmSync(record.runDir, { recursive: true, force: true });
  rmSync(recordPath(record.runId), { force: true });
}

/** Cleans every recorded run whose owner process is gone (crashed or killed earlier). */
export function sweepStaleRuns(log: Logger = defaultLogger()): string[] {
  let files: string[];
  try {
    files = readdirSync(runsDir).filter((f) => f.startsWith(RECORD_PREFIX) && f.endsWith('.json'));
  } catch {
    return [];
  }
  const swept: string[] = [];
  for (const file of files) {
    const record = readRecord(path.join(runsDir, file));
    if (record === undefined || ownerAlive(record)) continue;
    log.warn(
      { runId: record.runId, ownerPid: record.owner.pid, namespaces: record.namespaces.length },
      'sweeping stale netcluster run',
    );
    cleanupRecordSync(record, false);
    swept.push(record.runId);
  }
  return swept;
}

function defaultLogger(): Logger {
  return createLogger('netcluster');
}

// ---------------------------------------------------------------------------------------------
// Exit handling: every live cluster is torn down when this process ends.

const liveClusters = new Set<NetClusterImpl>();
function destroyLiveClustersSync(): void {
  for (const cluster of liveClusters) cluster.destroySync();
}

// ---------------------------------------------------------------------------------------------
// The cluster.

interface NodeState extends NodePlan {
  killed: boolean;
  /** The namespace of another process (attachNode): uplink only, no simulated CNI. */
  readonly attached: boolean;
  nextHost: number;
  readonly pods: Set<string>;
}

interface PodState extends NetPod {
  readonly host: number;
}

const selfStartTime = processStartTime(process.pid) ?? '';

class NetClusterImpl implements NetCluster {
  readonly runId: string;
  readonly runDir: string;
  readonly podNetwork: PodNetwork;
  readonly router: NetCluster['router'];
  readonly external: NetCluster['external'];
  private readonly nsPrefix: string;
  private readonly podMtu: number;
  private readonly rpFilter: number;
  private readonly keepRunDir: boolean;
  private readonly log: Logger;
  private readonly nodeStates = new Map<string, NodeState>();
  private readonly podStates = new Map<string, PodState>();
  private readonly processes = new Map<number, { startTime: string; child: ChildProcess }>();
  private readonly bridges = new Set<TcpBridgeImpl>();
  private readonly ownedNamespaces = new Set<string>();
  private nextNodeIndex = 1;
  private destroying: Promise<void> | undefined;

  constructor(runId: string, options: NetClusterOptions) {
    this.runId = runId;
    this.podNetwork = options.podNetwork;
    this.nsPrefix = `kseip-${runId}`;
    this.runDir = path.join(runsDir, `${RECORD_PREFIX}${runId}`);
    this.podMtu = options.podMtu ?? (options.podNetwork === 'vxlan' ? 1500 - VXLAN_OVERHEAD : 1500);
    this.rpFilter = options.nodeRpFilter ?? 2;
    this.keepRunDir = options.keepRunDir ?? false;
    this.log = (options.log ?? defaultLogger()).child({ runId });
    this.router = { ns: `${this.nsPrefix}-router`, bridge: 'br0', nodeSideIp: ROUTER_NODE_IP };
    this.external = {
      ns: `${this.nsPrefix}-ext`,
      ips: options.externalIps ?? [EXTERNAL_HOST_IP, EXTERNAL_OTHER_IP],
      whoamiPort: WHOAMI_PORT,
    };
  }

  // --- bookkeeping ------------------------------------------------------------------------

  private saveRecord(): void {
    writeRecord({
      runId: this.runId,
      owner: { pid: process.pid, startTime: selfStartTime },
      runDir: this.runDir,
      namespaces: [...this.ownedNamespaces],
      processes: [...this.processes].map(([pid, p]) => ({ pid, startTime: p.startTime })),
    });
  }

  /** Recorded before creation: a crash between the two still leaves the name to sweep. */
  private claimNamespaces(names: readonly string[]): void {
    for (const ns of names) this.ownedNamespaces.add(ns);
    this.saveRecord();
  }

  private assertAlive(): void {
    if (this.destroying !== undefined) throw new Error(`netcluster ${this.runId} is destroyed`);
  }

  private nodeState(name: string): NodeState {
    const node = this.nodeStates.get(name);
    if (node === undefined) throw new Error(`netcluster ${this.runId}: no node ${name}`);
    return node;
  }

  private podState(name: string): PodState {
    const pod = this.podStates.get(name);
    if (pod === undefined) throw new Error(`netcluster ${this.runId}: no pod ${name}`);
    return pod;
  }

  private static toNetNode(node: NodeState, mode: PodNetwork): NetNode {
    return {
      name: node.name,
      index: node.index,
      ns: node.ns,
      ip: node.ip,
      uplink: 'eth0',
      uplinkMac: node.uplinkMac,
      podCidr: node.podCidr,
      podGatewayIp: node.podGatewayIp,
      routerPort: node.routerPort,
      vxlanMac: mode === 'vxlan' ? node.vxlanMac : undefined,
      killed: node.killed,
    };
  }

  private static toNetPod(pod: PodState): NetPod {
    return { name: pod.name, node: pod.node, ns: pod.ns, ip: pod.ip, hostVeth: pod.hostVeth };
  }

  nodes(): NetNode[] {
    return [...this.nodeStates.values()].map((n) => NetClusterImpl.toNetNode(n, this.podNetwork));
  }

  node(name: string): NetNode {
    return NetClusterImpl.toNetNode(this.nodeState(name), this.podNetwork);
  }

  pods(): NetPod[] {
    return [...this.podStates.values()].map((p) => NetClusterImpl.toNetPod(p));
  }

  pod(name: string): NetPod {
    return NetClusterImpl.toNetPod(this.podState(name));
  }

  namespaces(): string[] {
    return [...this.ownedNamespaces];
  }

  // --- topology ---------------------------------------------------------------------------

  async start(nodeCount: number): Promise<void> {
    const started = performance.now();
    mkdirSync(this.runDir, { recursive: true });
    const plans = Array.from({ length: nodeCount }, () => this.planNextNode(undefined));
    const allNs = [this.router.ns, this.external.ns, ...plans.map((p) => p.ns)];
    this.claimNamespaces(allNs);
    await mustRun('ip', ['-batch', '-'], { input: allNs.map((ns) => `netns add ${ns}`).join('\n') + '\n' });
    await Promise.all([
      // A plain L2 fabric: bridged frames must not go through the router's IP hooks.
      sysctl(this.router.ns, [
        'net.ipv4.ip_forward=1',
        'net.ipv6.conf.default.disable_ipv6=1',
        'net.bridge.bridge-nf-call-iptables=0',
      ]),
      sysctl(this.external.ns, ['net.ipv6.conf.default.disable_ipv6=1']),
      ...plans.map((p) => this.nodeSysctls(p)),
    ]);
    await ipBatch(
      this.router.ns,
      [renderRouterBatch(this.external.ns), ...plans.map(renderRouterPortBatch)].join('\n'),
    );
    await Promise.all([
      ipBatch(this.external.ns, renderExternalBatch(this.external.ips)).then(() =>
        waitForOperState(this.external.ns, ['eth0'], 'UP'),
      ),
      waitForOperState(this.router.ns, ['ext0', ...plans.map((p) => p.routerPort)], 'UP'),
      ...plans.map((p) =>
        this.configureNode(
          p,
          plans.filter((q) => q !== p),
        ),
      ),
    ]);
    for (const p of plans) {
      this.nodeStates.set(p.name, { ...p, killed: false, attached: false, nextHost: 2, pods: new Set() });
    }
    await this.spawn(
      this.external.ns,
      [...nodeArgv(), whoamiServerPath, '--port', String(WHOAMI_PORT), '--log', this.observationsFile()],
      { name: 'whoami-external', readyPattern: /listening/ },
    );
    this.log.info(
      {
        nodes: plans.map((p) => p.name),
        podNetwork: this.podNetwork,
        ms: Math.round(performance.now() - started),
      },
      'netcluster up',
    );
  }

  private planNextNode(name: string | undefined): NodePlan {
    const index = this.nextNodeIndex++;
    const nodeName = name ?? `node${index}`;
    if (!/^[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?$/.test(nodeName)) {
      throw new Error(`node name ${JSON.stringify(nodeName)} must be a short DNS label`);
    }
    if (this.nodeStates.has(nodeName)) throw new Error(`netcluster ${this.runId}: node ${nodeName} exists`);
    return planNode(this.nsPrefix, nodeName, index);
  }

  private nodeSysctls(node: NodePlan): Promise<string> {
    return sysctl(node.ns, [
      'net.ipv4.ip_forward=1',
      'net.ipv6.conf.default.disable_ipv6=1',
      `net.ipv4.conf.all.rp_filter=${this.rpFilter}`,
      `net.ipv4.conf.default.rp_filter=${this.rpFilter}`,
    ]);
  }

  /** Everything inside one node ns, given that its uplink already exists. */
  private async configureNode(node: NodePlan, peers: readonly NodePlan[]): Promise<void> {
    await ipBatch(
      node.ns,
      [renderNodeBatch(node, this.podNetwork, this.podMtu), renderPeerRoutes(this.podNetwork, peers)]
        .filter((s) => s !== '')
        .join('\n'),
    );
    await Promise.all([
      mustRun('ip', ['netns', 'exec', node.ns, 'nft', '-f', '-'], { input: renderCniNat() }),
      this.podNetwork === 'vxlan' ? bridgeBatch(node.ns, renderPeerFdb(peers)) : Promise.resolve(''),
      waitForOperState(node.ns, ['eth0'], 'UP'),
    ]);
  }

  private async addPeerOn(node: NodePlan, peer: NodePlan): Promise<void> {
    await ipBatch(node.ns, renderPeerRoutes(this.podNetwork, [peer]));
    if (this.podNetwork === 'vxlan') await bridgeBatch(node.ns, renderPeerFdb([peer]));
  }

  async addNode(options: { name?: string } = {}): Promise<NetNode> {
    this.assertAlive();
    const plan = this.planNextNode(options.name);
    const peers = this.simulatedNodes();
    this.claimNamespaces([plan.ns]);
    await mustRun('ip', ['netns', 'add', plan.ns]);
    await this.nodeSysctls(plan);
    await ipBatch(this.router.ns, renderRouterPortBatch(plan));
    await Promise.all([
      this.configureNode(plan, peers),
      waitForOperState(this.router.ns, [plan.routerPort], 'UP'),
    ]);
    await Promise.all(peers.map((peer) => this.addPeerOn(peer, plan)));
    const state: NodeState = { ...plan, killed: false, attached: false, nextHost: 2, pods: new Set() };
    this.nodeStates.set(plan.name, state);
    this.log.info({ node: plan.name, ip: plan.ip, podCidr: plan.podCidr }, 'node added');
    return NetClusterImpl.toNetNode(state, this.podNetwork);
  }

  private simulatedNodes(): NodeState[] {
    return [...this.nodeStates.values()].filter((n) => !n.attached);
  }

  async attachNode(name: string, pid: number): Promise<NetNode> {
    this.assertAlive();
    const plan = this.planNextNode(name);
    this.claimNamespaces([plan.ns]);
    await mustRun('ip', ['netns', 'attach', plan.ns, String(pid)]);
    await this.nodeSysctls(plan);
    await ipBatch(this.router.ns, renderRouterPortBatch(plan));
    await ipBatch(plan.ns, renderUplinkBatch(plan));
    await Promise.all([
      waitForOperState(plan.ns, ['eth0'], 'UP'),
      waitForOperState(this.router.ns, [plan.routerPort], 'UP'),
    ]);
    const state: NodeState = { ...plan, killed: false, attached: true, nextHost: 2, pods: new Set() };
    this.nodeStates.set(plan.name, state);
    this.log.info({ node: plan.name, ip: plan.ip, pid }, 'node attached');
    return NetClusterImpl.toNetNode(state, this.podNetwork);
  }

  async removeNode(name: string): Promise<void> {
    this.assertAlive();
    const node = this.nodeState(name);
    await Promise.all([...node.pods].map((pod) => this.removePod(pod)));
    for (const bridge of [...this.bridges].filter((b) => b.ns === node.ns)) await bridge.close();
    this.nodeStates.delete(name);
    // By name first, for the reason given in removePod: a node re-added under the same index
    // reuses the router port's name.
    if (!node.attached) await runCommand('ip', ['-n', this.router.ns, 'link', 'delete', node.routerPort]);
    await this.deleteNamespaces([node.ns]);
    if (node.attached) {
      this.log.info({ node: name }, 'node detached');
      return;
    }
    await Promise.all(
      this.simulatedNodes().map(async (peer) => {
        // -force: keep going if an entry is already gone (e.g. the peer was re-created).
        await mustRun('ip', ['-n', peer.ns, '-force', '-batch', '-'], {
          input: renderPeerRemoval(this.podNetwork, node) + '\n',
        });
        if (this.podNetwork === 'vxlan') {
          await runCommand('bridge', [
            '-n',
            peer.ns,
            'fdb',
            'del',
            node.vxlanMac,
            'dev',
            'flannel.1',
            'self',
          ]);
        }
      }),
    );
    this.log.info({ node: name }, 'node removed');
  }

  async killNode(name: string, options: { cutBridges?: boolean } = {}): Promise<void> {
    this.assertAlive();
    const node = this.nodeState(name);
    // Down on the router's side: the node keeps its own routes and addresses (as a powered-off
    // machine would on reboot), it only loses carrier. Setting the node's own eth0 down would
    // make the kernel flush every route through it.
    await mustRun('ip', ['-n', this.router.ns, 'link', 'set', node.routerPort, 'down']);
    await waitForOperState(node.ns, ['eth0'], 'NOT-UP');
    if (options.cutBridges ?? true) for (const b of this.bridges) if (b.ns === node.ns) b.cut('blackhole');
    node.killed = true;
    this.log.info({ node: name }, 'node killed (uplink down)');
  }

  async reviveNode(name: string): Promise<void> {
    this.assertAlive();
    const node = this.nodeState(name);
    // A machine that was off comes back with an empty neighbour cache. Without this flush, a
    // packet sent while the node was cut off leaves an INCOMPLETE entry for the router whose
    // next ARP probe is up to retrans_time (1 s) away; everything sent after the revival queues
    // behind it. Permanent entries (flannel's, the agent's) are kept.
    await mustRun('ip', ['-n', node.ns, 'neigh', 'flush', 'dev', 'eth0']);
    await mustRun('ip', ['-n', this.router.ns, 'link', 'set', node.routerPort, 'up']);
    await Promise.all([
      waitForOperState(node.ns, ['eth0'], 'UP'),
      waitForOperState(this.router.ns, [node.routerPort], 'UP'),
    ]);
    for (const b of this.bridges) if (b.ns === node.ns) b.restore();
    node.killed = false;
    this.log.info({ node: name }, 'node revived');
  }

  async addPod(nodeName: string, podName: string, options: { ip?: string } = {}): Promise<NetPod> {
    this.assertAlive();
    const node = this.nodeState(nodeName);
    if (node.attached) throw new Error(`node ${nodeName} is attached: its own CNI makes its pods`);
    if (this.podStates.has(podName)) throw new Error(`netcluster ${this.runId}: pod ${podName} exists`);
    const used = new Set([...node.pods].map((p) => this.podState(p).host));
    const host =
      options.ip === undefined ? allocatePodHost(used, node.nextHost) : this.hostOf(node, options.ip);
    if (host === undefined) throw new Error(`node ${nodeName}: pod CIDR ${node.podCidr} is full`);
    if (used.has(host)) throw new Error(`node ${nodeName}: pod IP ${options.ip} is taken`);
    if (options.ip === undefined) node.nextHost = host + 1;
    const pod: PodState = {
      name: podName,
      node: nodeName,
      ns: `${this.nsPrefix}-pod-${podName.replace(/[^A-Za-z0-9_.-]/g, '_')}`,
      ip: node.podCidr.replace(/0\/24$/, String(host)),
      hostVeth: hostVethName(podName),
      host,
    };
    if (this.ownedNamespaces.has(pod.ns)) throw new Error(`pod ${podName}: namespace ${pod.ns} is taken`);
    this.podStates.set(podName, pod);
    node.pods.add(podName);
    try {
      this.claimNamespaces([pod.ns]);
      await mustRun('ip', ['netns', 'add', pod.ns]);
      await sysctl(pod.ns, ['net.ipv6.conf.default.disable_ipv6=1']);
      await ipBatch(
        node.ns,
        [
          `link add ${pod.hostVeth} mtu ${this.podMtu} type veth peer name eth0 mtu ${this.podMtu} netns ${pod.ns}`,
          `link set ${pod.hostVeth} master cni0`,
          `link set ${pod.hostVeth} up`,
        ].join('\n'),
      );
      await ipBatch(
        pod.ns,
        [
          'link set lo up',
          `address add ${pod.ip}/24 dev eth0`,
          'link set eth0 up',
          `route add default via ${node.podGatewayIp} dev eth0`,
        ].join('\n'),
      );
      await Promise.all([
        waitForOperState(pod.ns, ['eth0'], 'UP'),
        waitForOperState(node.ns, [pod.hostVeth], 'UP'),
      ]);
    } catch (err) {
      this.podStates.delete(podName);
      node.pods.delete(podName);
      await this.deleteNamespaces([pod.ns]);
      throw err;
    }
    this.log.debug({ pod: podName, node: nodeName, ip: pod.ip }, 'pod added');
    return NetClusterImpl.toNetPod(pod);
  }

  private hostOf(node: NodeState, ip: string): number {
    const prefix = node.podCidr.replace(/0\/24$/, '');
    const host = Number(ip.slice(prefix.length));
    if (!ip.startsWith(prefix) || !Number.isInteger(host) || host < 2 || host > 254) {
      throw new Error(`pod IP ${ip} is not a usable address of ${node.name}'s pod CIDR ${node.podCidr}`);
    }
    return host;
  }

  async removePod(podName: string): Promise<void> {
    this.assertAlive();
    const pod = this.podState(podName);
    this.podStates.delete(podName);
    this.nodeStates.get(pod.node)?.pods.delete(podName);
    // The veth is deleted first, by name: a namespace is torn down by a kernel work queue after
    // `ip netns delete` returns, so its veth peer on cni0 can outlive the call and a pod
    // re-created at once (same name, so same veth name) would collide with it.
    const node = this.nodeStates.get(pod.node);
    if (node !== undefined) {
      await runCommand('ip', ['-n', node.ns, 'link', 'delete', pod.hostVeth]);
    }
    await this.deleteNamespaces([pod.ns]);
    this.log.debug({ pod: podName, node: pod.node }, 'pod removed');
  }

  async setPodIp(podName: string, ip?: string): Promise<NetPod> {
    const pod = this.podState(podName);
    await this.removePod(podName);
    return this.addPod(pod.node, podName, ip === undefined ? {} : { ip });
  }

  private async deleteNamespaces(namespaces: readonly string[]): Promise<void> {
    const dying = new Set(namespaces);
    await Promise.all(
      [...this.processes]
        .filter(([, p]) => dying.has(nsOfChild(p.child)))
        .map(([pid, p]) => stopChild(pid, p.child)),
    );
    deleteNamespacesSync(namespaces);
    for (const ns of namespaces) this.ownedNamespaces.delete(ns);
    this.saveRecord();
  }

  // --- commands and processes -------------------------------------------------------------

  async exec(ns: string, argv: readonly string[], options: ExecOptions = {}): Promise<ExecResult> {
    const result = await runCommand('ip', ['netns', 'exec', ns, ...argv], options);
    if (options.check === true && result.code !== 0) {
      throw new Error(`[${ns}] ${argv.join(' ')} exited ${result.code}: ${result.stderr.trim()}`);
    }
    return result;
  }

  async spawn(ns: string, argv: readonly string[], options: SpawnOptions): Promise<ManagedProcess> {
    this.assertAlive();
    const logFile = path.join(this.runDir, `${options.name}.log`);
    const child = spawn('ip', ['netns', 'exec', ns, ...withParentDeathSignal(argv)], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: options.env ?? process.env,
    });
    childNamespaces.set(child, ns);
    const pid = child.pid;
    if (pid === undefined) {
      await new Promise((resolve) => child.once('error', resolve));
      throw new Error(`could not start ${argv.join(' ')} in ${ns}`);
    }
    // `ip netns exec` execs the command in place, so this PID is the command's own.
    this.processes.set(pid, { startTime: processStartTime(pid) ?? '', child });
    this.saveRecord();
    const logStream = createWriteStream(logFile, { flags: 'a' });
    child.stdout.pipe(logStream, { end: false });
    child.stderr.pipe(logStream, { end: false });
    const exited = new Promise<number | null>((resolve) => {
      child.once('exit', (code) => {
        this.processes.delete(pid);
        if (this.destroying === undefined) this.saveRecord();
        resolve(code);
      });
      child.once('close', () => logStream.end());
    });
    if (options.readyPattern !== undefined) {
      await waitForOutput(child, exited, options.readyPattern, options.readyTimeoutMs ?? 10_000, () =>
        readFileSafe(logFile),
      );
    }
    return { pid, ns, argv, logFile, child, exited, stop: () => stopChild(pid, child) };
  }

  private observationsFile(): string {
    return path.join(this.runDir, 'whoami.jsonl');
  }

  async whoamiReply(ns: string, dstIp: string, options: WhoamiOptions = {}): Promise<WhoamiReply> {
    const seconds = String((options.timeoutMs ?? 3000) / 1000);
    const query = options.tag === undefined ? '' : `?tag=${encodeURIComponent(options.tag)}`;
    const url = `http://${dstIp}:${options.port ?? WHOAMI_PORT}/${query}`;
    const result = await this.exec(ns, [
      'curl',
      '-sS',
      '--connect-timeout',
      seconds,
      '--max-time',
      seconds,
      url,
    ]);
    if (result.code !== 0) throw new Error(`whoami from ${ns} to ${url} failed: ${result.stderr.trim()}`);
    const decoded = WhoamiReplyCodec.decode(JSON.parse(result.stdout));
    if (!isRight(decoded)) throw new Error(`whoami from ${ns}: unexpected answer ${result.stdout}`);
    return decoded.right;
  }

  async whoami(ns: string, dstIp: string, options: WhoamiOptions = {}): Promise<string> {
    return (await this.whoamiReply(ns, dstIp, options)).src;
  }

  async observations(): Promise<Observation[]> {
    return readObservations(this.observationsFile());
  }

  async startWhoami(
    ns: string,
    options: { port?: number } = {},
  ): Promise<ManagedProcess & { readonly observationsFile: string }> {
    const port = options.port ?? WHOAMI_PORT;
    const name = `whoami-${ns}-${port}`;
    const observationsFile = path.join(this.runDir, `${name}.jsonl`);
    const proc = await this.spawn(
      ns,
      [...nodeArgv(), whoamiServerPath, '--port', String(port), '--log', observationsFile],
      { name, readyPattern: /listening/ },
    );
    return { ...proc, observationsFile };
  }

  async startIperf3(
    ns: string = this.external.ns,
    options: { port?: number } = {},
  ): Promise<ManagedProcess & { readonly port: number }> {
    const port = options.port ?? 5201;
    // --forceflush: iperf3 block-buffers stdout into a pipe, hiding the "listening" line.
    const proc = await this.spawn(ns, ['iperf3', '-s', '-p', String(port), '--forceflush'], {
      name: `iperf3-${ns}-${port}`,
      readyPattern: /Server listening/,
    });
    return { ...proc, port };
  }

  async bridgeTcpIntoNamespace(
    ns: string,
    port: number,
    options: { hostPort?: number; bindIp?: string } = {},
  ): Promise<TcpBridge> {
    this.assertAlive();
    const socketPath = path.join(this.runDir, `bridge-${this.bridges.size}-${port}.sock`);
    const bridge = new TcpBridgeImpl(ns, port, options.hostPort ?? port, socketPath);
    await bridge.listen();
    try {
      bridge.relay = await this.spawn(
        ns,
        // -d -d: socat then reports "listening on", which is our readiness signal.
        [
          'socat',
          '-d',
          '-d',
          `TCP-LISTEN:${port},bind=${options.bindIp ?? '127.0.0.1'},fork,reuseaddr`,
          `UNIX-CONNECT:${socketPath}`,
        ],
        { name: `bridge-${ns}-${port}`, readyPattern: /listening on/ },
      );
    } catch (err) {
      await bridge.close();
      throw err;
    }
    this.bridges.add(bridge);
    bridge.onClose = () => this.bridges.delete(bridge);
    return bridge;
  }

  // --- teardown ---------------------------------------------------------------------------

  destroy(): Promise<void> {
    this.destroying ??= this.teardown();
    return this.destroying;
  }

  private async teardown(): Promise<void> {
    const started = performance.now();
    await Promise.all([...this.bridges].map((b) => b.close()));
    await Promise.all([...this.processes].map(([pid, p]) => stopChild(pid, p.child)));
    this.destroySync();
    this.log.info({ ms: Math.round(performance.now() - started) }, 'netcluster destroyed');
  }

  /** Synchronous last resort, also used from the process 'exit' handler. */
  destroySync(): void {
    liveClusters.delete(this);
    this.destroying ??= Promise.resolve();
    for (const bridge of this.bridges) bridge.destroySockets();
    for (const [pid, p] of this.processes) killIfSame(pid, p.startTime, 'SIGKILL');
    // Pods first: deleting a node namespace does not remove pod namespaces.
    const order = [...this.ownedNamespaces].sort((a, b) => rank(a) - rank(b));
    deleteNamespacesSync(order);
    cleanupRecordSync(
      {
        runId: this.runId,
        owner: { pid: process.pid, startTime: selfStartTime },
        runDir: this.runDir,
        namespaces: order,
        processes: [],
      },
      this.keepRunDir,
    );
    this.ownedNamespaces.clear();
  }
}

const rank = (ns: string): number => (ns.includes('-pod-') ? 0 : 1);

const whoamiServerPath = path.join(repoRoot, 'src/devenv/whoami-server.ts');
const nodeArgv = (): string[] => [
  path.join(repoRoot, 'node_modules/.bin/node'),
  '--disable-warning=ExperimentalWarning',
];

// setpriv execs in place (as does `ip netns exec`), so the PID stays the command's own, and the
// kernel SIGKILLs the command if this process dies without cleaning up (SIGKILL, OOM). The
// namespaces are then left for the next run's sweep.
const setpriv = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p));
const withParentDeathSignal = (argv: readonly string[]): string[] =>
  setpriv === undefined ? [...argv] : [setpriv, '--pdeathsig', 'KILL', '--', ...argv];

const childNamespaces = new WeakMap<ChildProcess, string>();
const nsOfChild = (child: ChildProcess): string => childNamespaces.get(child) ?? '';

async function stopChild(pid: number, child: ChildProcess, graceMs = 2000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  const timer = setTimeout(() => {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }, graceMs);
  await exited;
  clearTimeout(timer);
}

/**
 * `ip link set up` returns before the link can carry packets: the operstate change, and with it
 * the swap from the no-op qdisc (which drops everything) to a real one, happens in the kernel's
 * linkwatch work, deferred by up to a second when link events come in bursts. Packets sent in
 * that window vanish (seen here: a third of revived nodes lost their first SYN, costing a 1 s
 * retransmit). So every step that brings links up or down waits for the operstate it needs.
 */
async function waitForOperState(ns: string, devs: readonly string[], want: 'UP' | 'NOT-UP'): Promise<void> {
  const deadline = performance.now() + 5000;
  for (;;) {
    const links = JSON.parse(await mustRun('ip', ['-n', ns, '-j', 'link', 'show'])) as {
      ifname: string;
      operstate: string;
    }[];
    const pending = devs.filter((dev) => {
      const state = links.find((l) => l.ifname === dev)?.operstate;
      return want === 'UP' ? state !== 'UP' : state === 'UP';
    });
    if (pending.length === 0) return;
    if (performance.now() > deadline) throw new Error(`${ns}: ${pending.join(', ')} not ${want} after 5 s`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

function readFileSafe(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

async function waitForOutput(
  child: ChildProcess,
  exited: Promise<number | null>,
  pattern: RegExp,
  timeoutMs: number,
  output: () => string,
): Promise<void> {
  let seen = '';
  let onData: ((chunk: Buffer) => void) | undefined;
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      new Promise<void>((resolve) => {
        onData = (chunk: Buffer) => {
          seen = (seen + chunk.toString('utf8')).slice(-4096);
          if (pattern.test(seen)) resolve();
        };
        child.stdout?.on('data', onData);
        child.stderr?.on('data', onData);
      }),
      exited.then((code) => {
        throw new Error(`process exited (${code}) before ready: ${output().slice(-2000)}`);
      }),
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`not ready after ${timeoutMs} ms: ${output().slice(-2000)}`)),
          timeoutMs,
        );
      }),
    ]);
  } finally {
    clearTimeout(timer);
    if (onData !== undefined) {
      child.stdout?.off('data', onData);
      child.stderr?.off('data', onData);
    }
  }
}

/** Parses a whoami log; a torn last line (a write in progress) is skipped, anything else throws. */
export async function readObservations(file: string): Promise<Observation[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    return [];
  }
  const lines = text.split('\n');
  const complete = text.endsWith('\n') ? lines : lines.slice(0, -1);
  return complete
    .filter((line) => line !== '')
    .map((line) => {
      const decoded = ObservationCodec.decode(JSON.parse(line));
      if (!isRight(decoded)) throw new Error(`bad whoami observation in ${file}: ${line}`);
      return decoded.right;
    });
}

// ---------------------------------------------------------------------------------------------
// TCP into a namespace through a UNIX socket: no route, link or address in the machine's own
// namespace is needed, and a namespace without any route out can still reach host loopback.

class TcpBridgeImpl implements TcpBridge {
  readonly ns: string;
  readonly port: number;
  readonly socketPath: string;
  relay: ManagedProcess | undefined;
  onClose: (() => void) | undefined;
  private readonly hostPort: number;
  private readonly server: net.Server;
  private readonly live = new Set<net.Socket>();
  private mode: BridgeCutMode | 'open' = 'open';
  private closed = false;

  constructor(ns: string, port: number, hostPort: number, socketPath: string) {
    this.ns = ns;
    this.port = port;
    this.hostPort = hostPort;
    this.socketPath = socketPath;
    this.server = net.createServer((socket) => this.accept(socket));
  }

  get isCut(): boolean {
    return this.mode !== 'open';
  }

  listen(): Promise<void> {
    rmSync(this.socketPath, { force: true });
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.socketPath, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
  }

  private track(socket: net.Socket): void {
    this.live.add(socket);
    socket.once('close', () => this.live.delete(socket));
    socket.on('error', () => socket.destroy());
  }

  private accept(inner: net.Socket): void {
    this.track(inner);
    if (this.mode === 'reset') {
      inner.destroy();
      return;
    }
    if (this.mode === 'blackhole') {
      inner.resume(); // read and drop
      return;
    }
    const upstream = net.connect(this.hostPort, '127.0.0.1');
    this.track(upstream);
    inner.once('close', () => upstream.destroy());
    upstream.once('close', () => inner.destroy());
    inner.pipe(upstream);
    upstream.pipe(inner);
  }

  cut(mode: BridgeCutMode = 'reset'): void {
    this.mode = mode;
    if (mode === 'reset') {
      this.destroySockets();
      return;
    }
    for (const socket of this.live) {
      socket.unpipe();
      socket.pause();
    }
  }

  restore(): void {
    if (this.mode === 'blackhole') this.destroySockets();
    this.mode = 'open';
  }

  destroySockets(): void {
    for (const socket of this.live) socket.destroy();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.destroySockets();
    await this.relay?.stop();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    rmSync(this.socketPath, { force: true });
    this.onClose?.();
  }
}

// ---------------------------------------------------------------------------------------------

/** Builds a cluster; on any failure everything already created is removed again. */
export async function createNetCluster(options: NetClusterOptions): Promise<NetCluster> {
  const log = options.log ?? defaultLogger();
  sweepStaleRuns(log);
  const runId = options.runId ?? randomBytes(3).toString('hex');
  if (!/^[a-z0-9]{4,8}$/.test(runId))
    throw new Error(`run id ${JSON.stringify(runId)} must be 4-8 of [a-z0-9]`);
  const existing = readRecord(recordPath(runId));
  if (existing !== undefined)
    throw new Error(`netcluster run ${runId} is already in use by pid ${existing.owner.pid}`);
  // 0 nodes: only the router and the external host, for callers that attach their own nodes.
  if (!Number.isInteger(options.nodes) || options.nodes < 0)
    throw new Error('the node count must be a whole number');
  const cluster = new NetClusterImpl(runId, options);
  liveClusters.add(cluster);
  runOnExit(destroyLiveClustersSync);
  try {
    await cluster.start(options.nodes);
  } catch (err) {
    await cluster.destroy();
    throw err;
  }
  return cluster;
}
