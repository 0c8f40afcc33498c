// The small cluster the status-writer and broker-restart int tests talk about, on a real API
// server and broker: every project topic, the CRDs, two Ready nodes with InternalIPs, and a
// Service `frontend` in `default` with one Running pod per node. No kubelet runs, so node and pod
// status are patched the way kubelet would report them.
import path from 'node:path';
import { topicSpecs } from '../../src/contracts/topics.ts';
import { createTopics } from '../../src/devenv/kafka.ts';

export const STATUS_TEST_NODES = [
  { name: 'node-a', ip: '192.0.2.11', pod: 'frontend-a', podIP: '192.0.2.101' },
  { name: 'node-b', ip: '192.0.2.12', pod: 'frontend-b', podIP: '192.0.2.102' },
] as const;

type Kubectl = (args: readonly string[], stdin?: string) => Promise<unknown>;

export async function createProjectTopics(brokers: string[]): Promise<void> {
  await createTopics(
    brokers,
    topicSpecs().map((s) => ({
      topic: s.topic,
      config: Object.fromEntries((s.configEntries ?? []).map((e) => [e.name, e.value])),
    })),
  );
}

/** The CRDs, the nodes and the Service with its pods of STATUS_TEST_NODES. */
export async function seedStatusTestCluster(kubectl: Kubectl): Promise<void> {
  await kubectl(['apply', '-k', path.resolve(import.meta.dirname, '../../k8s/crds')]);
  await kubectl(['wait', '--for=condition=Established', 'crd', '--all', '--timeout=60s']);
  const patchStatus = (kind: string, name: string, status: unknown, namespace?: string) =>
    kubectl([
      'patch',
      kind,
      name,
      ...(namespace === undefined ? [] : ['-n', namespace]),
      '--subresource=status',
      '--type=merge',
      '-p',
      JSON.stringify({ status }),
    ]);
  const apply = (obj: unknown) => kubectl(['apply', '-f', '-'], JSON.stringify(obj));
  for (const n of STATUS_TEST_NODES) {
    await apply({ apiVersion: 'v1', kind: 'Node', metadata: { name: n.name } });
    const now = new Date().toISOString();
    await patchStatus('node', n.name, {
      addresses: [{ type: 'InternalIP', address: n.ip }],
      conditions: [
        {
          type: 'Ready',
          status: 'True',
          reason: 'KubeletReady',
          message: 'test node',
          lastHeartbeatTime: now,
          lastTransitionTime: now,
        },
      ],
    });
  }
  await apply({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'frontend', namespace: 'default' },
    spec: { selector: { app: 'frontend' }, ports: [{ port: 80 }] },
  });
  for (const n of STATUS_TEST_NODES) {
    await apply({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: n.pod, namespace: 'default', labels: { app: 'frontend' } },
      spec: { nodeName: n.name, containers: [{ name: 'web', image: 'registry.invalid/web:1' }] },
    });
    await patchStatus(
      'pod',
      n.pod,
      {
        phase: 'Running',
        podIP: n.podIP,
        podIPs: [{ ip: n.podIP }],
        conditions: [{ type: 'Ready', status: 'True' }],
      },
      'default',
    );
  }
}
