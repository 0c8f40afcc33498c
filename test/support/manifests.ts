// Reading the rendered k8s/ tree for tests: `kubectl kustomize` output split into objects, the
// ServiceAccounts' RBAC rules, and a container's environment resolved the way the kubelet would
// (ConfigMap envFrom, literal values, downward-API fields), so a test can start a component
// exactly as its Deployment or DaemonSet would. Effectful only in renderKustomize (runs kubectl).
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { requireArtifact } from '../../src/devenv/artifacts.ts';

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
  [key: string]: unknown;
}

export interface PolicyRule {
  apiGroups?: string[];
  resources?: string[];
  resourceNames?: string[];
  nonResourceURLs?: string[];
  verbs: string[];
}

interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: {
    fieldRef?: { fieldPath: string };
    secretKeyRef?: { name: string; key: string; optional?: boolean };
  };
}

export interface Container {
  name: string;
  image: string;
  command: string[];
  envFrom?: { configMapRef?: { name: string } }[];
  env?: EnvVar[];
  [key: string]: unknown;
}

export interface PodSpec {
  serviceAccountName: string;
  automountServiceAccountToken?: boolean;
  containers: Container[];
  [key: string]: unknown;
}

export const repoRoot = path.resolve(import.meta.dirname, '../..');

/** `kubectl kustomize DIR` (the kubectl built with the API server, with kustomize v5), parsed. */
export async function renderKustomize(dir: string): Promise<K8sObject[]> {
  const kubectl = path.join(requireArtifact('KUBE_BIN_DIR'), 'kubectl');
  const { stdout } = await promisify(execFile)(kubectl, ['kustomize', path.resolve(repoRoot, dir)], {
    maxBuffer: 64 * 1024 * 1024,
  });
  return parseAllDocuments(stdout)
    .map((d) => d.toJS() as K8sObject | null)
    .filter((o): o is K8sObject => o !== null);
}

export const find = (objects: readonly K8sObject[], kind: string, name: string): K8sObject => {
  const found = objects.find((o) => o.kind === kind && o.metadata.name === name);
  if (found === undefined) throw new Error(`${kind} ${name} is not in the rendered manifests`);
  return found;
};

export function podSpecOf(workload: K8sObject): PodSpec {
  return (workload as unknown as { spec: { template: { spec: PodSpec } } }).spec.template.spec;
}

/** Every rule of every Role and ClusterRole, with where it comes from. */
export function rulesOf(objects: readonly K8sObject[]): { owner: string; rule: PolicyRule }[] {
  return objects
    .filter((o) => o.kind === 'Role' || o.kind === 'ClusterRole')
    .flatMap((o) =>
      ((o as unknown as { rules?: PolicyRule[] }).rules ?? []).map((rule) => ({
        owner: `${o.kind}/${o.metadata.name}`,
        rule,
      })),
    );
}

/**
 * A container's environment as the kubelet would build it: envFrom ConfigMaps first, then `env`
 * (literal values, downward-API fields from `pod`); secretKeyRefs resolve from `secrets`
 * (absent optional keys are left out, as the kubelet does).
 */
export function resolveEnv(
  objects: readonly K8sObject[],
  container: Container,
  pod: { name: string; namespace: string; nodeName?: string },
  secrets: Record<string, Record<string, string>> = {},
): Record<string, string> {
  const env: Record<string, string> = {};
  for (const from of container.envFrom ?? []) {
    if (from.configMapRef === undefined) throw new Error('only configMapRef envFrom is supported');
    const cm = find(objects, 'ConfigMap', from.configMapRef.name) as unknown as {
      data: Record<string, string>;
    };
    Object.assign(env, cm.data);
  }
  const fields: Record<string, string | undefined> = {
    'metadata.name': pod.name,
    'metadata.namespace': pod.namespace,
    'spec.nodeName': pod.nodeName,
  };
  for (const v of container.env ?? []) {
    if (v.value !== undefined) env[v.name] = v.value;
    else if (v.valueFrom?.fieldRef !== undefined) {
      const value = fields[v.valueFrom.fieldRef.fieldPath];
      if (value === undefined) throw new Error(`no test value for field ${v.valueFrom.fieldRef.fieldPath}`);
      env[v.name] = value;
    } else if (v.valueFrom?.secretKeyRef !== undefined) {
      const ref = v.valueFrom.secretKeyRef;
      const value = secrets[ref.name]?.[ref.key];
      if (value !== undefined) env[v.name] = value;
      else if (ref.optional !== true) throw new Error(`secret ${ref.name} key ${ref.key} is required`);
    }
  }
  return env;
}

/** A kubeconfig that authenticates with nothing but `token` (no client certificate). */
export function renderTokenKubeconfig(server: string, caData: string, token: string): string {
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'c', cluster: { server, 'certificate-authority-data': caData } }],
    users: [{ name: 'sa', user: { token } }],
    contexts: [{ name: 'c', context: { cluster: 'c', user: 'sa' } }],
    'current-context': 'c',
  });
}
