// Mirrors a network-namespace cluster (netcluster.ts) into a real API server, as kubelets and a
// CNI would: a Node object per netns node (labels, Ready condition, InternalIP = the node's IP on
// its uplink, spec.podCIDR) and a Pod object per netns pod (spec.nodeName, then a status patch
// with podIP, phase Running and Ready). Effectful: owns exactly the Node and Pod objects it
// created (by name) and the netns pods it added through it; it never touches other objects.
//
// Why Nodes first: the EndpointSlice controller leaves out pods whose node does not exist, so a
// Service would select nothing. Why grace period 0 on delete: no kubelet ever confirms a graceful
// deletion, so a pod deleted with the default grace would stay Terminating forever.
import {
  CoreV1Api,
  PatchStrategy,
  setHeaderOptions,
  type KubeConfig,
  type V1Pod,
} from '@kubernetes/client-node';
import type { NetCluster, NetNode, NetPod } from './netcluster.ts';

const strategicMerge = setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch);
const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

export interface SimPodOptions {
  /** Kubernetes namespace of the Pod object (created if missing). Default `default`. */
  readonly namespace?: string;
  readonly labels?: Readonly<Record<string, string>>;
  /** A fixed pod IP inside the node's pod CIDR; the next free one when absent. */
  readonly ip?: string;
  /** An IPv6 address the Pod object reports besides its IPv4 one (status.podIPs), as on a
   *  dual-stack cluster. Only the object has it: the netns pod stays IPv4-only. */
  readonly ipv6?: string;
  /** Called just before the status patch that gives the pod its IP (what a kubelet reports):
   *  where a benchmark of "new pod → programmed" starts its clock. */
  readonly beforeReady?: () => void;
}

export interface SimPod {
  readonly name: string;
  readonly namespace: string;
  readonly node: string;
  readonly net: NetPod;
}

export interface ClusterSim {
  /** Creates (or re-asserts) the Node object of a netns node, Ready. */
  syncNode(node: NetNode, labels?: Readonly<Record<string, string>>): Promise<void>;
  /** netcluster.addNode + its Node object. */
  addNode(name?: string, labels?: Readonly<Record<string, string>>): Promise<NetNode>;
  /** Deletes the Node object (and its Pod objects), then the netns node. */
  removeNode(name: string): Promise<void>;
  setNodeReady(name: string, ready: boolean): Promise<void>;
  cordon(name: string, unschedulable?: boolean): Promise<void>;
  /** netcluster.addPod + a Pod object scheduled on that node, Running and Ready with the pod's IP. */
  addPod(nodeName: string, podName: string, options?: SimPodOptions): Promise<SimPod>;
  /** Deletes the Pod object (grace 0), then the netns pod. */
  removePod(podName: string): Promise<void>;
  /**
   * Pod churn with a new address, as a StatefulSet pod re-created on the same node: the Pod
   * object is deleted, the netns pod gets another IP (netcluster setPodIp; the next free one
   * unless given), and a Pod object of the same name, namespace and labels is created with it.
   */
  setPodIp(podName: string, ip?: string): Promise<SimPod>;
  pods(): SimPod[];
  pod(name: string): SimPod;
}

export function createClusterSim(cluster: NetCluster, kubeConfig: KubeConfig): ClusterSim {
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const pods = new Map<string, SimPod>();
  const podLabels = new Map<string, Readonly<Record<string, string>>>();
  const namespaces = new Set<string>(['default']);

  const nodeStatus = (node: NetNode, ready: boolean) => ({
    addresses: [
      { type: 'InternalIP', address: node.ip },
      { type: 'Hostname', address: node.name },
    ],
    conditions: [
      {
        type: 'Ready',
        status: ready ? 'True' : 'False',
        reason: ready ? 'KubeletReady' : 'KubeletNotReady',
        lastHeartbeatTime: new Date(),
        lastTransitionTime: new Date(),
      },
    ],
  });

  async function syncNode(node: NetNode, labels: Readonly<Record<string, string>> = {}): Promise<void> {
    try {
      await core.createNode({
        body: {
          metadata: { name: node.name, labels: { 'kubernetes.io/hostname': node.name, ...labels } },
          spec: { podCIDR: node.podCidr, podCIDRs: [node.podCidr] },
        },
      });
    } catch (err) {
      if ((err as { code?: number }).code !== 409) throw err;
    }
    await core.patchNodeStatus({ name: node.name, body: { status: nodeStatus(node, true) } }, strategicMerge);
  }

  async function ensureNamespace(name: string): Promise<void> {
    if (namespaces.has(name)) return;
    try {
      await core.createNamespace({ body: { metadata: { name } } });
    } catch (err) {
      if ((err as { code?: number }).code !== 409) throw err;
    }
    namespaces.add(name);
  }

  async function deletePodObject(pod: SimPod): Promise<void> {
    try {
      await core.deleteNamespacedPod({ name: pod.name, namespace: pod.namespace, gracePeriodSeconds: 0 });
    } catch (err) {
      if ((err as { code?: number }).code !== 404) throw err;
    }
  }

  /** The Pod object of a netns pod: scheduled on its node, then Running and Ready with its IP. */
  async function createPodObject(
    net: NetPod,
    namespace: string,
    labels: Readonly<Record<string, string>>,
    beforeReady?: () => void,
    ipv6?: string,
  ): Promise<SimPod> {
    const body: V1Pod = {
      metadata: { name: net.name, namespace, labels: { ...labels } },
      // No scheduler or kubelet: the pod is "scheduled" by naming its node, and never pulled.
      spec: {
        nodeName: net.node,
        containers: [{ name: 'app', image: 'registry.invalid/app:1' }],
        terminationGracePeriodSeconds: 0,
      },
    };
    await core.createNamespacedPod({ namespace, body });
    const node = cluster.node(net.node);
    beforeReady?.();
    await core.patchNamespacedPodStatus(
      {
        name: net.name,
        namespace,
        body: {
          status: {
            phase: 'Running',
            hostIP: node.ip,
            hostIPs: [{ ip: node.ip }],
            podIP: net.ip,
            podIPs: [{ ip: net.ip }, ...(ipv6 === undefined ? [] : [{ ip: ipv6 }])],
            conditions: [
              { type: 'PodScheduled', status: 'True' },
              { type: 'Ready', status: 'True' },
              { type: 'ContainersReady', status: 'True' },
            ],
          },
        },
      },
      strategicMerge,
    );
    const pod = { name: net.name, namespace, node: net.node, net };
    pods.set(net.name, pod);
    podLabels.set(net.name, { ...labels });
    return pod;
  }

  return {
    syncNode,
    async addNode(name, labels) {
      const node = await cluster.addNode(name === undefined ? {} : { name });
      await syncNode(node, labels);
      return node;
    },
    async removeNode(name) {
      for (const pod of [...pods.values()].filter((p) => p.node === name)) {
        await deletePodObject(pod);
        pods.delete(pod.name);
        podLabels.delete(pod.name);
      }
      try {
        await core.deleteNode({ name });
      } catch (err) {
        if ((err as { code?: number }).code !== 404) throw err;
      }
      await cluster.removeNode(name);
    },
    async setNodeReady(name, ready) {
      await core.patchNodeStatus(
        { name, body: { status: nodeStatus(cluster.node(name), ready) } },
        strategicMerge,
      );
    },
    async cordon(name, unschedulable = true) {
      await core.patchNode({ name, body: { spec: { unschedulable } } }, mergePatch);
    },
    async addPod(nodeName, podName, options = {}) {
      const namespace = options.namespace ?? 'default';
      await ensureNamespace(namespace);
      const net = await cluster.addPod(nodeName, podName, options.ip === undefined ? {} : { ip: options.ip });
      return createPodObject(net, namespace, options.labels ?? {}, options.beforeReady, options.ipv6);
    },
    async setPodIp(podName, ip) {
      const pod = pods.get(podName);
      if (pod === undefined) throw new Error(`no pod ${podName} in the simulated cluster`);
      await deletePodObject(pod);
      pods.delete(podName);
      const net = await cluster.setPodIp(podName, ip);
      return createPodObject(net, pod.namespace, podLabels.get(podName) ?? {});
    },
    async removePod(podName) {
      const pod = pods.get(podName);
      if (pod === undefined) throw new Error(`no pod ${podName} in the simulated cluster`);
      await deletePodObject(pod);
      pods.delete(podName);
      podLabels.delete(podName);
      await cluster.removePod(podName);
    },
    pods: () => [...pods.values()],
    pod(name) {
      const pod = pods.get(name);
      if (pod === undefined) throw new Error(`no pod ${name} in the simulated cluster`);
      return pod;
    },
  };
}
