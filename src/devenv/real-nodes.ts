// A real-node Kubernetes cluster on this machine, kind-style: every node is a Docker container
// running containerd, kubelet, kube-proxy and flannel (vxlan) on its own kernel network
// namespace; the control plane (etcd, kube-apiserver with the Node authorizer and
// NodeRestriction, kube-controller-manager with node IPAM, kube-scheduler) and the Kafka broker
// run on this machine's loopback. The project is then installed with `kubectl apply -k
// k8s/overlays/dev` and runs as real Pods with its manifests' probes, security contexts and
// ServiceAccounts. Images are built locally (scripts/provision/kube-node.sh, the Dockerfile)
// and imported into each node's containerd, because no registry is reachable.
//
// Networking: the nodes hang off the netcluster harness's router (netcluster.ts), exactly where
// its simulated nodes would, so the external host, the egress range on the router's bridge and
// the ground-truth whoami log are the same as in the fast tiers. A node container starts with
// `--network none`; its namespace is then attached as a netcluster node (uplink only). Nothing is
// added to the machine's own namespace: the nodes reach the API server and Kafka through TCP
// relays in the router's namespace, bound on the router's node-side address (10.240.0.1), that
// forward over UNIX sockets to 127.0.0.1. The API server advertises that address, so the
// `kubernetes` Service (10.96.0.1) leads there through kube-proxy.
//
// Why not `--privileged`: this machine's Docker engine runs without CAP_SYS_RESOURCE, and a
// privileged container asks for every capability, which runc then fails to grant. The node gets
// every capability but that one, no seccomp or AppArmor confinement, all devices and unmasked
// /proc; its entrypoint makes /sys and the cgroup hierarchies writable (tools/kube-node).
//
// Effectful. Owns exactly what it started: its containers and their volumes (by ID), the
// netcluster (namespaces by name, processes by PID), the API server and the broker. stop()
// removes all of it; so do exit and signal handlers, and a later start sweeps what a crashed run
// left (containers carry the owner's PID and start time in a label; container-owner.ts).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CoreV1Api, type V1Node, type V1Pod } from '@kubernetes/client-node';
import { createLogger, type Logger } from '../lib/log.ts';
import {
  SERVICE_CLUSTER_IP_RANGE,
  startApiServer,
  type ApiServer,
  type ClientCertificate,
} from './apiserver.ts';
import { cacheDir, repoRoot, requireArtifact } from './artifacts.ts';
import { OWNER_LABEL, SELF_OWNER, sweepContainersOfDeadOwners } from './container-owner.ts';
import { chartValuesOf, readDevOverlay } from './dev-chart-values.ts';
import { runOnExit } from './exit-cleanup.ts';
import { startKafka, type KafkaBroker } from './kafka.ts';
import {
  CLUSTER_POD_CIDR,
  createNetCluster,
  ROUTER_NODE_IP,
  runCommand,
  type ExecResult,
  type NetCluster,
  type NetNode,
} from './netcluster.ts';
import { execTool, tailLines } from './tool-exec.ts';

/** The project's image as the dev overlay names it (k8s/overlays/dev). */
export const PROJECT_IMAGE = 'kube-static-egress-ip:dev';
/** Where the nodes find Kafka: the relay on the router (the dev overlay's KSEIP_BROKERS). */
export const NODES_KAFKA_ADDRESS = `${ROUTER_NODE_IP}:9092`;
export const DEV_OVERLAY = path.join(repoRoot, 'k8s/overlays/dev');
const CHART_DIR = path.join(repoRoot, 'charts/kube-static-egress-ip');
const CHART_RELEASE = 'kseip';
const INSTALL_NAMESPACE = 'kube-static-egress-ip';
export type KubeProxyMode = 'nftables' | 'iptables';
export type NodeService = 'containerd' | 'kubelet' | 'kube-proxy' | 'flanneld';

export interface RealClusterOptions {
  readonly nodes?: number;
  readonly kubeProxyMode?: KubeProxyMode;
  readonly log?: Logger;
  /** Called as each step finishes, with its duration (progress output). */
  readonly onStep?: (step: string, ms: number) => void;
  /** Keep the run directory (node logs, API server logs) after stop(). */
  readonly keepRunDir?: boolean;
}

export interface AddNodeOptions {
  /** Extra kubelet flags, e.g. a bad one, to test how a failing kubelet is reported. */
  readonly kubeletExtraArgs?: readonly string[];
  /** Give up waiting for the Node to be Ready after this long. Default 120 s. */
  readonly readyTimeoutMs?: number;
}

export interface RealNode {
  readonly name: string;
  readonly ip: string;
  readonly containerId: string;
  /** The netcluster node: `ns` is the container's network namespace, attached by name. */
  readonly net: NetNode;
  /** Host directory with the node's service logs (containerd, kubelet, kube-proxy, flanneld). */
  readonly logDir: string;
}

export interface MemoryUse {
  /** Bytes per node container, pods included (Docker's cgroup figure, page cache excluded). */
  readonly nodes: Readonly<Record<string, number>>;
  readonly kafka: number;
  /** etcd, kube-apiserver, kube-controller-manager, kube-scheduler: RSS. */
  readonly controlPlane: number;
  readonly total: number;
  readonly summary: string;
}

export interface PodInfo {
  readonly name: string;
  readonly node: string;
  readonly ip: string;
  readonly ready: boolean;
}

export interface PodRef {
  readonly namespace: string;
  readonly name: string;
}

export interface RealCluster {
  readonly runId: string;
  readonly runDir: string;
  readonly kafka: KafkaBroker;
  readonly kube: ApiServer;
  readonly net: NetCluster;
  nodes(): RealNode[];
  node(name: string): RealNode;
  /** kubectl against the cluster; throws with stderr on a non-zero exit. */
  kubectl(args: readonly string[], stdin?: string): Promise<string>;
  apply(yaml: string): Promise<void>;
  /** Starts another node container and resolves once its Node is Ready. */
  addNode(options?: AddNodeOptions): Promise<RealNode>;
  /** Power off: the container is killed (SIGKILL) and its namespace with it. */
  killNode(name: string): Promise<void>;
  /** A command in the node container (its namespaces, its file system). */
  nodeExec(node: string, argv: readonly string[]): Promise<ExecResult>;
  /** A command inside a pod's (first) container, through the node's containerd. */
  podExec(pod: PodRef, argv: readonly string[], options?: { container?: string }): Promise<ExecResult>;
  /** Kills one node service; the node's supervisor restarts it after 1 s. Resolves once it runs again. */
  restartNodeService(node: string, service: NodeService): Promise<void>;
  /** Switches every node's kube-proxy to `mode` (restarting it); kube-proxy cleans up the other mode. */
  setKubeProxyMode(mode: KubeProxyMode): Promise<void>;
  /** The last lines of one node service's log. */
  nodeLogTail(node: string, service: NodeService | 'entrypoint', lines?: number): string;
  /** Memory in use now: each node container (cgroup), the broker container, the host-side control plane (RSS). */
  measureMemory(): Promise<MemoryUse>;
  /** `kubectl apply -k k8s/overlays/dev`, then waits for every component to be rolled out. */
  install(): Promise<void>;
  /** Waits until the agent DaemonSet and the control-plane Deployments are rolled out. */
  waitRolledOut(): Promise<void>;
  /** The pods labelled `app=<app>` that are not being deleted. */
  pods(app: string, namespace?: string): Promise<PodInfo[]>;
  /** `kubectl delete -k k8s/overlays/dev`, waiting for the namespace to be gone. */
  uninstall(): Promise<void>;
  /**
   * `helm install` of charts/kube-static-egress-ip with the dev overlay's settings
   * (dev-chart-values.ts), then waits for every component to be rolled out.
   */
  installChart(): Promise<void>;
  /** `helm uninstall`, then the namespace, waiting for both to be gone. */
  uninstallChart(): Promise<void>;
  stop(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// Docker

interface SharedCerts {
  readonly kubeProxy: ClientCertificate;
  readonly flannel: ClientCertificate;
}

const docker = (
  args: readonly string[],
  options: { input?: string; timeoutMs?: number } = {},
): Promise<ExecResult> => runCommand('docker', args, options);

async function mustDocker(
  args: readonly string[],
  options: { input?: string; timeoutMs?: number } = {},
): Promise<string> {
  const r = await docker(args, options);
  if (r.code !== 0) throw new Error(`docker ${args.join(' ')} exited ${r.code}: ${r.stderr.trim()}`);
  return r.stdout.trim();
}

// ---------------------------------------------------------------------------------------------
// Node configuration (pure rendering)

export interface NodeConfigInput {
  readonly name: string;
  readonly ip: string;
  readonly apiServer: string;
}

/** kubelet as on a production node, minus what a container cannot do (docs/real-nodes.md). */
export function renderKubeletConfig(): string {
  return `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
authentication:
  anonymous: { enabled: false }
  webhook: { enabled: false }
  x509: { clientCAFile: /etc/kseip-node/ca.crt }
authorization: { mode: AlwaysAllow }
tlsCertFile: /etc/kseip-node/kubelet-serving.crt
tlsPrivateKeyFile: /etc/kseip-node/kubelet-serving.key
containerRuntimeEndpoint: unix:///run/containerd/containerd.sock
# No systemd in a node container: cgroupfs, like containerd's runc options.
cgroupDriver: cgroupfs
# This machine mounts cgroup v1 (plus an empty cgroup2 "unified" mount). kubelet 1.34 keeps
# v1 in maintenance mode and refuses it only when failCgroupV1 is true.
failCgroupV1: false
# Below the node container's own cgroup (tools/kube-node/entrypoint.sh makes it).
cgroupRoot: /kubelet
clusterDNS: [10.96.0.10]
clusterDomain: cluster.local
resolvConf: /etc/kseip-node/resolv.conf
failSwapOn: false
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
# The machine's disks are shared with everything else on it: never evict or collect images
# because the host is full (the workload images exist nowhere else).
evictionHard: { memory.available: "0%", nodefs.available: "0%", nodefs.inodesFree: "0%", imagefs.available: "0%" }
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
`;
}

export function renderKubeProxyConfig(node: NodeConfigInput, mode: KubeProxyMode): string {
  return `apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: ${mode}
clientConnection: { kubeconfig: /etc/kseip-node/kube-proxy.kubeconfig }
clusterCIDR: ${CLUSTER_POD_CIDR}
hostnameOverride: ${node.name}
metricsBindAddress: 127.0.0.1:10249
healthzBindAddress: 127.0.0.1:10256
# nf_conntrack_max is machine-wide, not per network namespace: leave it (and the timeouts) to
# the machine, as kind does.
conntrack: { maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s }
`;
}

/** flannel's net-conf.json as its own kube-flannel.yml ships it: vxlan, iptables masquerade. */
export function renderFlannelNetConf(): string {
  return JSON.stringify({ Network: CLUSTER_POD_CIDR, EnableNFTables: false, Backend: { Type: 'vxlan' } });
}

/** flanneld's permissions, as in flannel's own manifest (ClusterRole flannel). */
const FLANNEL_RBAC = `apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: { name: kseip-dev:flannel }
rules:
  - { apiGroups: [""], resources: [pods], verbs: [get] }
  - { apiGroups: [""], resources: [nodes], verbs: [get, list, watch] }
  - { apiGroups: [""], resources: [nodes/status], verbs: [patch] }
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: { name: kseip-dev:flannel }
roleRef: { apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: kseip-dev:flannel }
subjects: [{ apiGroup: rbac.authorization.k8s.io, kind: User, name: "kseip-dev:flannel" }]
`;

// ---------------------------------------------------------------------------------------------
// The cluster

const NODE_LOG_FILES: Record<NodeService | 'entrypoint', string> = {
  containerd: 'containerd.log',
  kubelet: 'kubelet.log',
  'kube-proxy': 'kube-proxy.log',
  flanneld: 'flanneld.log',
  entrypoint: 'entrypoint.log',
};

function tailFile(file: string, lines: number): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch (err) {
    return `(no log: ${String(err)})`;
  }
}

const live = new Set<RealClusterImpl>();
/** Containers are not children of this process: without this they would outlive it. */
function removeLiveContainersSync(): void {
  for (const cluster of live) cluster.removeContainersSync();
}

class RealClusterImpl implements RealCluster {
  readonly runId: string;
  readonly runDir: string;
  readonly kafka: KafkaBroker;
  readonly kube: ApiServer;
  readonly net: NetCluster;
  private readonly log: Logger;
  private readonly nodeImage: string;
  private readonly imagesDir: string;
  private readonly realNodes = new Map<string, RealNode>();
  private nextIndex = 1;
  private kubeProxyMode: KubeProxyMode;
  private readonly sharedCerts: SharedCerts;
  /** Node starts up to the attach are one at a time: the netcluster plans addresses in call order. */
  private starting: Promise<unknown> = Promise.resolve();
  private stopping: Promise<void> | undefined;

  constructor(init: {
    runId: string;
    runDir: string;
    kafka: KafkaBroker;
    kube: ApiServer;
    net: NetCluster;
    log: Logger;
    nodeImage: string;
    imagesDir: string;
    kubeProxyMode: KubeProxyMode;
    sharedCerts: SharedCerts;
  }) {
    this.runId = init.runId;
    this.runDir = init.runDir;
    this.kafka = init.kafka;
    this.kube = init.kube;
    this.net = init.net;
    this.log = init.log;
    this.nodeImage = init.nodeImage;
    this.imagesDir = init.imagesDir;
    this.kubeProxyMode = init.kubeProxyMode;
    this.sharedCerts = init.sharedCerts;
  }

  nodes(): RealNode[] {
    return [...this.realNodes.values()];
  }

  node(name: string): RealNode {
    const node = this.realNodes.get(name);
    if (node === undefined) throw new Error(`real-node cluster ${this.runId}: no node ${name}`);
    return node;
  }

  async kubectl(args: readonly string[], stdin?: string): Promise<string> {
    const r = await this.kube.kubectl(args, stdin);
    if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} exited ${r.code}: ${r.stderr.trim()}`);
    return r.stdout;
  }

  async apply(yaml: string): Promise<void> {
    await this.kubectl(['apply', '-f', '-'], yaml);
  }

  private async writeNodeConfig(
    name: string,
    ip: string,
    extraKubeletArgs: readonly string[],
  ): Promise<string> {
    const dir = path.join(this.runDir, 'nodes', name);
    const conf = path.join(dir, 'conf');
    mkdirSync(conf, { recursive: true });
    mkdirSync(path.join(dir, 'logs'), { recursive: true });
    const apiServer = `https://${ROUTER_NODE_IP}:${new URL(this.kube.server).port}`;
    const input: NodeConfigInput = { name, ip, apiServer };
    const kubelet = await this.kube.issueCertificate(`kubelet-${name}`, `system:node:${name}`, {
      organizations: ['system:nodes'],
    });
    const serving = await this.kube.issueCertificate(`kubelet-serving-${name}`, name, { serverIps: [ip] });
    const files: Record<string, string> = {
      'node.env': `NODE_NAME=${name}\nNODE_IP=${ip}\n`,
      'ca.crt': readFileSync(this.kube.caCertFile, 'utf8'),
      'kubelet-serving.crt': readFileSync(serving.certFile, 'utf8'),
      'kubelet-serving.key': readFileSync(serving.keyFile, 'utf8'),
      'kubelet.yaml': renderKubeletConfig(),
      'kubelet.kubeconfig': this.kube.renderKubeconfig(kubelet, apiServer),
      'kube-proxy.kubeconfig': this.kube.renderKubeconfig(this.sharedCerts.kubeProxy, apiServer),
      'flannel.kubeconfig': this.kube.renderKubeconfig(this.sharedCerts.flannel, apiServer),
      'kube-proxy-nftables.yaml': renderKubeProxyConfig(input, 'nftables'),
      'kube-proxy-iptables.yaml': renderKubeProxyConfig(input, 'iptables'),
      'kube-proxy-mode': `${this.kubeProxyMode}\n`,
      'net-conf.json': renderFlannelNetConf(),
      // No cluster DNS runs here; pods use addresses. kubelet needs a file to read.
      'resolv.conf': 'options ndots:1\n',
    };
    if (extraKubeletArgs.length > 0) files['kubelet-extra-args'] = extraKubeletArgs.join('\n') + '\n';
    for (const [file, text] of Object.entries(files))
      writeFileSync(path.join(conf, file), text, { mode: 0o600 });
    return dir;
  }

  async addNode(options: AddNodeOptions = {}): Promise<RealNode> {
    const started = performance.now();
    const starting = this.starting.then(() => this.startNode(options));
    this.starting = starting.catch(() => undefined);
    const node = await starting;
    try {
      await this.waitForNodeReady(node, options.readyTimeoutMs ?? 120_000);
    } catch (err) {
      await this.removeNode(node.name, node.containerId);
      throw err;
    }
    this.log.info(
      { node: node.name, ip: node.ip, ms: Math.round(performance.now() - started) },
      'real node ready',
    );
    return node;
  }

  /** The container, with its uplink attached; not yet Ready. */
  private async startNode(options: AddNodeOptions): Promise<RealNode> {
    const index = this.nextIndex++;
    const name = `node${index}`;
    // The netcluster plans the same address for the same index (planNode), checked below.
    const ip = `10.240.0.${10 + index}`;
    const dir = await this.writeNodeConfig(name, ip, options.kubeletExtraArgs ?? []);
    const containerId = await mustDocker([
      'run',
      '--detach',
      '--name',
      `kseip-${this.runId}-${name}`,
      '--hostname',
      name,
      '--label',
      `${OWNER_LABEL}=${SELF_OWNER}`,
      '--label',
      `io.kseip.real-nodes.run=${this.runId}`,
      '--network',
      'none',
      '--cgroupns',
      'private',
      '--cap-add',
      'ALL',
      '--cap-drop',
      'SYS_RESOURCE',
      '--security-opt',
      'seccomp=unconfined',
      '--security-opt',
      'apparmor=unconfined',
      '--security-opt',
      'systempaths=unconfined',
      '--device-cgroup-rule',
      'a *:* rwm',
      // kubelet's OOM watcher reads the kernel log; without it kubelet refuses to start.
      '--device',
      '/dev/kmsg',
      '--tmpfs',
      '/run',
      '--tmpfs',
      '/tmp',
      // containerd's snapshots on the host's file system: overlayfs cannot stack on the
      // container's own overlay root. Anonymous, so `docker rm -v` removes it.
      '--volume',
      '/var/lib/containerd',
      '--volume',
      `${path.join(dir, 'conf')}:/etc/kseip-node:ro`,
      '--volume',
      `${path.join(dir, 'logs')}:/var/log/kseip-node`,
      '--volume',
      `${this.imagesDir}:/var/lib/kseip-images:ro`,
      this.nodeImage,
    ]);
    try {
      const pid = Number(await mustDocker(['inspect', '-f', '{{.State.Pid}}', containerId]));
      if (!Number.isInteger(pid) || pid <= 0) throw new Error(`node container ${containerId} is not running`);
      const net = await this.net.attachNode(name, pid);
      if (net.ip !== ip)
        throw new Error(`netcluster planned ${net.ip} for ${name}, the node config says ${ip}`);
      const node: RealNode = { name, ip, containerId, net, logDir: path.join(dir, 'logs') };
      this.realNodes.set(name, node);
      return node;
    } catch (err) {
      await this.removeNode(name, containerId);
      throw err;
    }
  }

  /** Ready, or an error with kubelet's (or the entrypoint's) last lines when it keeps failing. */
  private async waitForNodeReady(node: RealNode, timeoutMs: number): Promise<void> {
    const core = this.kube.kubeConfig.makeApiClient(CoreV1Api);
    const deadline = Date.now() + timeoutMs;
    const kubeletLog = path.join(node.logDir, NODE_LOG_FILES.kubelet);
    let last = 'not registered yet';
    for (;;) {
      let n: V1Node | undefined;
      try {
        n = await core.readNode({ name: node.name });
      } catch {
        n = undefined;
      }
      const ready = n?.status?.conditions?.find((c) => c.type === 'Ready');
      if (ready?.status === 'True') return;
      if (ready !== undefined) last = `Ready=${ready.status}: ${ready.message ?? ready.reason ?? ''}`;
      const state = await docker(['inspect', '-f', '{{.State.Running}}', node.containerId]);
      const crashes = existsSync(kubeletLog)
        ? (readFileSync(kubeletLog, 'utf8').match(/kubelet exited with status/g) ?? []).length
        : 0;
      if (state.stdout.trim() !== 'true' || crashes >= 3 || Date.now() > deadline) {
        const why =
          state.stdout.trim() !== 'true'
            ? 'its container exited'
            : crashes >= 3
              ? `kubelet exited ${crashes} times`
              : `not Ready after ${timeoutMs / 1000} s (${last})`;
        throw new Error(
          `node ${node.name}: ${why}.\n--- last lines of kubelet's log (${kubeletLog}):\n${tailFile(kubeletLog, 30)}` +
            `\n--- node entrypoint:\n${this.nodeLogTail(node.name, 'entrypoint', 15)}`,
        );
      }
      await sleep(250);
    }
  }

  nodeLogTail(node: string, service: NodeService | 'entrypoint', lines = 30): string {
    const dir = this.realNodes.get(node)?.logDir ?? path.join(this.runDir, 'nodes', node, 'logs');
    return tailFile(path.join(dir, NODE_LOG_FILES[service]), lines);
  }

  private async removeNode(name: string, containerId: string): Promise<void> {
    await docker(['rm', '-f', '-v', containerId]);
    this.realNodes.delete(name);
    if (this.net.nodes().some((n) => n.name === name)) await this.net.removeNode(name);
  }

  async killNode(name: string): Promise<void> {
    const node = this.node(name);
    // SIGKILL, then the container and its containerd volume go at once: the machine is gone for
    // good (its logs stay in the run dir), and an untracked exited container would leak.
    await mustDocker(['kill', node.containerId]);
    await mustDocker(['rm', '-f', '-v', node.containerId]);
    // The attached name would keep the namespace (and the egress IPs on its uplink, which the
    // router could still reach) alive; dropping it lets the namespace die with the container.
    await this.net.removeNode(name);
    this.realNodes.delete(name);
    this.log.info({ node: name }, 'node container killed');
  }

  nodeExec(node: string, argv: readonly string[]): Promise<ExecResult> {
    return docker(['exec', this.node(node).containerId, ...argv], { timeoutMs: 60_000 });
  }

  async podExec(
    pod: PodRef,
    argv: readonly string[],
    options: { container?: string } = {},
  ): Promise<ExecResult> {
    const core = this.kube.kubeConfig.makeApiClient(CoreV1Api);
    const p: V1Pod = await core.readNamespacedPod({ namespace: pod.namespace, name: pod.name });
    const nodeName = p.spec?.nodeName;
    const status =
      p.status?.containerStatuses?.find(
        (c) => options.container === undefined || c.name === options.container,
      ) ?? undefined;
    const containerId = status?.containerID?.replace(/^containerd:\/\//, '');
    if (nodeName === undefined || containerId === undefined || containerId === '') {
      throw new Error(`pod ${pod.namespace}/${pod.name} has no running container yet`);
    }
    const execId = `kseip-${Math.random().toString(36).slice(2, 10)}`;
    return this.nodeExec(nodeName, [
      'ctr',
      '-n',
      'k8s.io',
      'tasks',
      'exec',
      '--exec-id',
      execId,
      containerId,
      ...argv,
    ]);
  }

  private servicePid(node: string, service: NodeService): Promise<string> {
    return this.nodeExec(node, ['cat', `/run/kseip-node/${service}.pid`]).then((r) => r.stdout.trim());
  }

  async restartNodeService(node: string, service: NodeService): Promise<void> {
    const before = await this.servicePid(node, service);
    const killed = await this.nodeExec(node, ['kill', before]);
    if (killed.code !== 0) throw new Error(`could not stop ${service} on ${node}: ${killed.stderr.trim()}`);
    const deadline = Date.now() + 15_000;
    for (;;) {
      const now = await this.servicePid(node, service);
      if (now !== '' && now !== before) {
        const alive = await this.nodeExec(node, ['kill', '-0', now]);
        if (alive.code === 0) return;
      }
      if (Date.now() > deadline)
        throw new Error(`${service} on ${node} did not come back:\n${this.nodeLogTail(node, service)}`);
      await sleep(100);
    }
  }

  async setKubeProxyMode(mode: KubeProxyMode): Promise<void> {
    this.kubeProxyMode = mode;
    for (const node of this.nodes()) {
      writeFileSync(path.join(this.runDir, 'nodes', node.name, 'conf', 'kube-proxy-mode'), `${mode}\n`);
    }
    await Promise.all(this.nodes().map((n) => this.restartNodeService(n.name, 'kube-proxy')));
  }

  async measureMemory(): Promise<MemoryUse> {
    const ids = [...this.nodes().map((n) => n.containerId), this.kafka.containerId];
    const stats = await mustDocker(['stats', '--no-stream', '--format', '{{.ID}} {{.MemUsage}}', ...ids]);
    const used = new Map(
      stats.split('\n').map((line) => {
        const [id, usage] = line.split(' ', 2) as [string, string];
        return [id, parseDockerBytes(usage)];
      }),
    );
    const byId = (id: string): number => [...used].find(([short]) => id.startsWith(short))?.[1] ?? 0;
    const nodes = Object.fromEntries(this.nodes().map((n) => [n.name, byId(n.containerId)]));
    const kafka = byId(this.kafka.containerId);
    const controlPlane = rssOfProcessesMentioning(this.kube.runDir);
    const total = Object.values(nodes).reduce((a, b) => a + b, 0) + kafka + controlPlane;
    const mib = (b: number): string => `${Math.round(b / 2 ** 20)} MiB`;
    const summary = `${mib(total)} in all: ${Object.entries(nodes)
      .map(([n, b]) => `${n} ${mib(b)}`)
      .join(', ')}, Kafka ${mib(kafka)}, control plane ${mib(controlPlane)}`;
    return { nodes, kafka, controlPlane, total, summary };
  }

  async install(): Promise<void> {
    await this.kubectl(['apply', '-k', DEV_OVERLAY]);
    await this.waitRolledOut();
  }

  async waitRolledOut(): Promise<void> {
    const workloads = [
      'daemonset/kseip-agent',
      ...['watcher', 'projector', 'liveness', 'status-writer'].map((c) => `deployment/kseip-${c}`),
    ];
    for (const w of workloads) {
      await this.kubectl(['-n', INSTALL_NAMESPACE, 'rollout', 'status', w, '--timeout=180s']);
    }
  }

  async pods(app: string, namespace = 'default'): Promise<PodInfo[]> {
    const core = this.kube.kubeConfig.makeApiClient(CoreV1Api);
    const list = await core.listNamespacedPod({ namespace, labelSelector: `app=${app}` });
    return list.items
      .filter((p) => p.metadata?.deletionTimestamp === undefined)
      .map((p) => ({
        name: p.metadata?.name ?? '',
        node: p.spec?.nodeName ?? '',
        ip: p.status?.podIP ?? '',
        ready: p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false,
      }));
  }

  async uninstall(): Promise<void> {
    await this.kubectl(['delete', '-k', DEV_OVERLAY, '--wait=true', '--timeout=180s']);
  }

  async installChart(): Promise<void> {
    const values = path.join(this.runDir, 'chart-values.json');
    writeFileSync(values, JSON.stringify(chartValuesOf(readDevOverlay(DEV_OVERLAY)), null, 2));
    // As docs/deployment.md has operators do it: the namespace, with the Pod Security level the
    // agent needs, before Helm keeps its release record there.
    await this.kubectl(['create', 'namespace', INSTALL_NAMESPACE]);
    await this.kubectl([
      ...['label', 'namespace', INSTALL_NAMESPACE],
      'pod-security.kubernetes.io/enforce=privileged',
    ]);
    await this.helm([
      'install',
      CHART_RELEASE,
      CHART_DIR,
      '--namespace',
      INSTALL_NAMESPACE,
      '--values',
      values,
    ]);
    await this.waitRolledOut();
  }

  async uninstallChart(): Promise<void> {
    await this.helm([
      'uninstall',
      CHART_RELEASE,
      '--namespace',
      INSTALL_NAMESPACE,
      '--wait',
      '--timeout=180s',
    ]);
    await this.kubectl(['delete', 'namespace', INSTALL_NAMESPACE, '--wait=true', '--timeout=180s']);
  }

  private async helm(args: readonly string[]): Promise<void> {
    const r = await execTool(requireArtifact('HELM_BIN'), args, {
      env: {
        ...process.env,
        KUBECONFIG: this.kube.kubeconfigPath,
        HELM_CACHE_HOME: path.join(this.runDir, 'helm'),
      },
    });
    if (r.code !== 0) throw new Error(`helm ${args.join(' ')} exited ${r.code}: ${tailLines(r.stderr)}`);
  }

  removeContainersSync(): void {
    const ids = this.nodes().map((n) => n.containerId);
    if (ids.length === 0) return;
    try {
      execFileSync('docker', ['rm', '-f', '-v', ...ids], { stdio: 'ignore' });
    } catch {
      // already gone
    }
    this.realNodes.clear();
  }

  stop(): Promise<void> {
    this.stopping ??= (async () => {
      live.delete(this);
      const ids = this.nodes().map((n) => n.containerId);
      if (ids.length > 0) await docker(['rm', '-f', '-v', ...ids]);
      this.realNodes.clear();
      await this.net.destroy().catch(() => undefined);
      await this.kube.stop().catch(() => undefined);
      await this.kafka.stop().catch(() => undefined);
    })();
    return this.stopping;
  }
}

/** "123.4MiB / 23.5GiB" → bytes of the first figure. */
export function parseDockerBytes(usage: string): number {
  const m = /^([\d.]+)\s*([KMGT]?i?B)/.exec(usage.trim());
  if (m === null) return 0;
  const units: Record<string, number> = {
    B: 1,
    KiB: 2 ** 10,
    MiB: 2 ** 20,
    GiB: 2 ** 30,
    TiB: 2 ** 40,
    kB: 1e3,
    KB: 1e3,
    MB: 1e6,
    GB: 1e9,
  };
  return Math.round(Number(m[1]) * (units[m[2]!] ?? 1));
}

/** RSS of every process whose command line names `marker` (the API server's run dir). */
function rssOfProcessesMentioning(marker: string): number {
  let total = 0;
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      if (!readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(marker)) continue;
      const rss = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      total += Number(rss?.[1] ?? 0) * 1024;
    } catch {
      // exited meanwhile
    }
  }
  return total;
}

// ---------------------------------------------------------------------------------------------
// Start-up

/**
 * The project's image, built from the Dockerfile on the local node:24-slim stand-in and saved
 * as a tar for the nodes' containerd. The tar is named after the image ID, so an unchanged
 * tree reuses it (docker build's layer cache makes the build itself a few seconds).
 */
async function buildProjectImage(log: Logger): Promise<string> {
  requireArtifact('NODE_BASE_IMAGE');
  // --network=host: `npm ci` in the build reaches the registry through the machine's own
  // network; the built image runs on the nodes without it.
  await mustDocker(['build', '--network=host', '-t', PROJECT_IMAGE, repoRoot], { timeoutMs: 600_000 }).catch(
    (err: unknown) => {
      throw new Error(`building the project image failed (DOCKER_BUILDKIT=0 docker build): ${String(err)}`);
    },
  );
  const id = (await mustDocker(['image', 'inspect', '-f', '{{.Id}}', PROJECT_IMAGE]))
    .replace('sha256:', '')
    .slice(0, 16);
  const dir = path.join(cacheDir, 'kube-node', 'project-images');
  const tar = path.join(dir, `project-${id}.tar`);
  if (!existsSync(tar)) {
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    await mustDocker(['save', '-o', `${tar}.tmp`, PROJECT_IMAGE]);
    execFileSync('mv', [`${tar}.tmp`, tar]);
    log.info({ tar }, 'project image saved for the nodes');
  }
  return dir;
}

export async function startRealCluster(options: RealClusterOptions = {}): Promise<RealCluster> {
  const log = options.log ?? createLogger('real-nodes');
  const nodeImage = requireArtifact('KUBE_NODE_IMAGE');
  sweepContainersOfDeadOwners(log);
  const step = async <T>(name: string, work: () => Promise<T>): Promise<T> => {
    const started = performance.now();
    const result = await work();
    options.onStep?.(name, performance.now() - started);
    return result;
  };
  let kafka: KafkaBroker | undefined;
  let kube: ApiServer | undefined;
  let net: NetCluster | undefined;
  let cluster: RealClusterImpl | undefined;
  try {
    process.env.DOCKER_BUILDKIT = '0';
    const [k, a, n, images] = await Promise.allSettled([
      step('Kafka broker', () => startKafka({ nodesListener: { advertised: NODES_KAFKA_ADDRESS } })),
      step('API server (etcd, kube-apiserver, controller-manager, scheduler)', () =>
        startApiServer({
          nodes: { advertiseAddress: ROUTER_NODE_IP, clusterCidr: CLUSTER_POD_CIDR },
          ...(options.keepRunDir ? { keepRunDir: true } : {}),
        }),
      ),
      step('router and external host', () =>
        createNetCluster({ nodes: 0, podNetwork: 'vxlan', keepRunDir: options.keepRunDir ?? false, log }),
      ),
      step('project image', () => buildProjectImage(log)),
    ]);
    if (k.status === 'fulfilled') kafka = k.value;
    if (a.status === 'fulfilled') kube = a.value;
    if (n.status === 'fulfilled') net = n.value;
    for (const r of [k, a, n, images]) if (r.status === 'rejected') throw r.reason;
    const broker = kafka!;
    const api = kube!;
    const netCluster = net!;
    const imagesDir = (images as PromiseFulfilledResult<string>).value;

    // The nodes' way to the control plane: relays on the router's node-side address.
    await netCluster.bridgeTcpIntoNamespace(netCluster.router.ns, 9092, {
      hostPort: broker.nodesListenerPort!,
      bindIp: ROUTER_NODE_IP,
    });
    const securePort = Number(new URL(api.server).port);
    await netCluster.bridgeTcpIntoNamespace(netCluster.router.ns, securePort, { bindIp: ROUTER_NODE_IP });

    const runDir = path.join(netCluster.runDir, 'real-nodes');
    mkdirSync(runDir, { recursive: true });
    const sharedCerts: SharedCerts = {
      // The User that the default ClusterRoleBinding system:node-proxier names.
      kubeProxy: await api.issueCertificate('kube-proxy', 'system:kube-proxy'),
      flannel: await api.issueCertificate('flannel', 'kseip-dev:flannel'),
    };
    const kubeProxyMode = options.kubeProxyMode ?? 'nftables';
    cluster = new RealClusterImpl({
      runId: netCluster.runId,
      runDir,
      kafka: broker,
      kube: api,
      net: netCluster,
      log,
      nodeImage,
      imagesDir,
      kubeProxyMode,
      sharedCerts,
    });
    live.add(cluster);
    runOnExit(removeLiveContainersSync);
    const c = cluster;
    await c.apply(FLANNEL_RBAC);
    const count = options.nodes ?? 3;
    await step(`${count} node containers (containerd, kubelet, kube-proxy ${kubeProxyMode}, flannel)`, () =>
      Promise.all(Array.from({ length: count }, () => c.addNode())),
    );
    log.info(
      { nodes: c.nodes().map((x) => x.name), serviceCidr: SERVICE_CLUSTER_IP_RANGE },
      'real-node cluster up',
    );
    return c;
  } catch (err) {
    if (cluster !== undefined) await cluster.stop();
    else {
      await net?.destroy().catch(() => undefined);
      await kube?.stop().catch(() => undefined);
      await kafka?.stop().catch(() => undefined);
    }
    throw err;
  }
}
