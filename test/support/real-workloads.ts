// Workloads for the real-node e2e suite, as the Kubernetes objects an operator would apply:
// Deployments of the busybox image built by provisioning, a Service for the seed manifest's
// `service-name`, and a small web server whose answer is the client address it saw. Pure
// (YAML text), plus readers of the external host's ground-truth log.
import type { Observation } from '../../src/devenv/netcluster.ts';
import { EXTERNAL_HOST_IP, WHOAMI_PORT } from '../../src/devenv/netcluster.ts';

export const WORKLOAD_IMAGE = 'kseip/busybox:1.35';

/**
 * A Deployment whose pods each request the external host's whoami every ~200 ms (or
 * `intervalSeconds`), tagged with the
 * pod's name, for as long as they run: the external host's log then shows every pod's source
 * address over time, which is what the suite judges. Pods spread one per node.
 * `timeout` rather than wget's own -T: Debian's static busybox wget crashes with -T.
 */
export function probeDeploymentYaml(
  name: string,
  replicas: number,
  options: { namespace?: string; intervalSeconds?: number } = {},
): string {
  const namespace = options.namespace ?? 'default';
  return `apiVersion: apps/v1
kind: Deployment
metadata: {name: ${name}, namespace: ${namespace}}
spec:
  replicas: ${replicas}
  selector: {matchLabels: {app: ${name}}}
  template:
    metadata: {labels: {app: ${name}}}
    spec:
      terminationGracePeriodSeconds: 1
      affinity:
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
          - labelSelector: {matchLabels: {app: ${name}}}
            topologyKey: kubernetes.io/hostname
      containers:
      - name: probe
        image: ${WORKLOAD_IMAGE}
        imagePullPolicy: Never
        env:
        - name: POD_NAME
          valueFrom: {fieldRef: {fieldPath: metadata.name}}
        command: [sh, -c, 'while true; do timeout 2 wget -q -O /dev/null "http://${EXTERNAL_HOST_IP}:${WHOAMI_PORT}/?tag=$POD_NAME"; sleep ${options.intervalSeconds ?? 0.2}; done']
`;
}

/** The Service the seed manifest's `service-name` names. */
export function serviceYaml(name: string, namespace = 'default', port = 80, targetPort = 8080): string {
  return `apiVersion: v1
kind: Service
metadata: {name: ${name}, namespace: ${namespace}}
spec:
  selector: {app: ${name}}
  ports: [{port: ${port}, targetPort: ${targetPort}}]
`;
}

/**
 * A web server (busybox httpd) on every node whose /cgi-bin/ip answers with the client address it
 * saw: proof that traffic to a Service or to a pod on another node went through kube-proxy and
 * the CNI untouched (same source, no egress SNAT).
 */
export function webDaemonSetYaml(name = 'web', namespace = 'default'): string {
  const script = `mkdir -p /www/cgi-bin && printf '#!/bin/sh\\necho Content-Type: text/plain\\necho\\necho $REMOTE_ADDR\\n' > /www/cgi-bin/ip && chmod +x /www/cgi-bin/ip && exec httpd -f -p 8080 -h /www`;
  return `apiVersion: apps/v1
kind: DaemonSet
metadata: {name: ${name}, namespace: ${namespace}}
spec:
  selector: {matchLabels: {app: ${name}}}
  template:
    metadata: {labels: {app: ${name}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: httpd
        image: ${WORKLOAD_IMAGE}
        imagePullPolicy: Never
        command: [sh, -c, ${JSON.stringify(script)}]
        readinessProbe:
          tcpSocket: {port: 8080}
          periodSeconds: 1
---
${serviceYaml(name, namespace)}`;
}

/** The observations of one tagged pod, in time order. */
export function selectPodObservations(log: readonly Observation[], pod: string): Observation[] {
  return log.filter((o) => o.tag === pod);
}

/** Observations at or after `fromMs` (wall clock, the external host's log times). */
export function selectSince(log: readonly Observation[], fromMs: number, toMs = Infinity): Observation[] {
  return log.filter((o) => {
    const t = Date.parse(o.time);
    return t >= fromMs && t <= toMs;
  });
}

/** `tag → sources seen`, for failure messages. */
export function describeSources(log: readonly Observation[]): string {
  const by = new Map<string, Map<string, number>>();
  for (const o of log) {
    const m = by.get(o.tag ?? '-') ?? new Map<string, number>();
    m.set(o.src, (m.get(o.src) ?? 0) + 1);
    by.set(o.tag ?? '-', m);
  }
  return [...by]
    .map(([tag, m]) => `${tag}: ${[...m].map(([src, n]) => `${src}×${n}`).join(', ')}`)
    .join('\n');
}
