// The Helm values that install the chart (charts/kube-static-egress-ip) on the real-node cluster
// the way `kubectl apply -k k8s/overlays/dev` installs the kustomize base. They are derived from
// the overlay's own files rather than written a second time, so the test bed has one setting per
// thing whichever way it is installed; an overlay setting with no chart value fails loudly here
// instead of being dropped. Pure apart from reading the two overlay files.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';

/** kseip-config keys of the overlay → the chart value that renders them (templates/config.yaml). */
const CHART_VALUE_OF: Readonly<Record<string, readonly string[]>> = {
  KSEIP_BROKERS: ['kafka', 'brokers'],
  KSEIP_REPLICATION_FACTOR: ['kafka', 'replicationFactor'],
  KSEIP_NEVER_STEER: ['agent', 'neverSteer'],
  KSEIP_MARK_MASK: ['agent', 'markMask'],
  KSEIP_UPLINK: ['agent', 'uplink'],
  KSEIP_HEARTBEAT_INTERVAL: ['failover', 'heartbeatInterval'],
  KSEIP_FENCE_AFTER: ['failover', 'fenceAfter'],
  KSEIP_LOST_AFTER: ['failover', 'lostAfter'],
  LOG_LEVEL: ['logLevel'],
};

interface Overlay {
  readonly configData: Readonly<Record<string, string>>;
  readonly image: { readonly newName: string; readonly newTag: string };
  /** Whether the overlay sets imagePullPolicy: Never on the workloads. */
  readonly pullNever: boolean;
}

function setPath(values: Record<string, unknown>, keys: readonly string[], value: unknown): void {
  let at = values;
  for (const k of keys.slice(0, -1)) at = (at[k] ??= {}) as Record<string, unknown>;
  at[keys[keys.length - 1]!] = value;
}

/** The chart values equivalent to an overlay (exported for its unit test). */
export function chartValuesOf(overlay: Overlay): Record<string, unknown> {
  const values: Record<string, unknown> = {
    // The namespace is made first, labelled, as docs/deployment.md tells operators to.
    createNamespace: false,
    image: {
      repository: overlay.image.newName,
      tag: overlay.image.newTag,
      pullPolicy: overlay.pullNever ? 'Never' : '',
    },
  };
  for (const [key, value] of Object.entries(overlay.configData)) {
    const target = CHART_VALUE_OF[key];
    if (target === undefined) {
      throw new Error(`the dev overlay sets ${key}, which no value of the chart renders: add one`);
    }
    setPath(values, target, key === 'KSEIP_REPLICATION_FACTOR' ? Number(value) : value);
  }
  return values;
}

/** Reads k8s/overlays/dev (kustomization.yaml and its ConfigMap patch). */
export function readDevOverlay(overlayDir: string): Overlay {
  const kustomization = parse(readFileSync(path.join(overlayDir, 'kustomization.yaml'), 'utf8')) as {
    images?: { name: string; newName: string; newTag: string }[];
    patches?: { path?: string; patch?: string }[];
  };
  const image = kustomization.images?.find((i) => i.name === 'kube-static-egress-ip');
  if (image === undefined) throw new Error(`${overlayDir}: no images entry for kube-static-egress-ip`);
  const patches = kustomization.patches ?? [];
  const configPatch = patches.find((p) => p.path !== undefined);
  if (configPatch?.path === undefined) throw new Error(`${overlayDir}: no ConfigMap patch file`);
  const config = parse(readFileSync(path.join(overlayDir, configPatch.path), 'utf8')) as {
    kind: string;
    metadata: { name: string };
    data: Record<string, string>;
  };
  if (config.kind !== 'ConfigMap' || config.metadata.name !== 'kseip-config') {
    throw new Error(`${overlayDir}/${configPatch.path}: expected the kseip-config ConfigMap`);
  }
  return {
    configData: config.data,
    image,
    pullNever: patches.some((p) => /imagePullPolicy, value: Never/.test(p.patch ?? '')),
  };
}
