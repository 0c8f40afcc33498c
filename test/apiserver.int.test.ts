// Integration test of the dev-environment control plane (src/devenv/apiserver.ts): a real etcd,
// kube-apiserver and kube-controller-manager. Proves what later tests rely on: CRDs are served
// to both client-node and the matching kubectl, watches deliver changes, the real EndpointSlice
// controller publishes Ready pod IPs (pods are faked: no kubelet, status patched by the test),
// ServiceAccount tokens authenticate under RBAC, and nothing outlives its owner.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import {
  AuthenticationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  DiscoveryV1Api,
  KubeConfig,
  PatchStrategy,
  Watch,
  setHeaderOptions,
  type ApiException,
  type V1EndpointSlice,
} from '@kubernetes/client-node';
import { startApiServer, sweepStaleRunDirs, type ApiServer } from '../src/devenv/apiserver.ts';

// A throwaway CRD: the product CRDs live in k8s/crds/ and have their own tests.
const group = 'test.kseip.io';
const version = 'v1';
const plural = 'widgets';
const widgetCrd = {
  apiVersion: 'apiextensions.k8s.io/v1',
  kind: 'CustomResourceDefinition',
  metadata: { name: `${plural}.${group}` },
  spec: {
    group,
    scope: 'Namespaced',
    names: { plural, singular: 'widget', kind: 'Widget', listKind: 'WidgetList' },
    versions: [
      {
        name: version,
        served: true,
        storage: true,
        subresources: { status: {} },
        schema: {
          openAPIV3Schema: {
            type: 'object',
            properties: {
              spec: {
                type: 'object',
                required: ['size'],
                properties: { size: { type: 'integer', minimum: 1 }, colour: { type: 'string' } },
              },
              status: { type: 'object', properties: { observed: { type: 'integer' } } },
            },
          },
        },
      },
    ],
  },
};

interface Widget {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; resourceVersion?: string };
  spec: { size: number; colour?: string };
}

const widget = (name: string, size: number, colour?: string): Widget => ({
  apiVersion: `${group}/${version}`,
  kind: 'Widget',
  metadata: { name },
  spec: { size, ...(colour ? { colour } : {}) },
});

const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

async function eventually<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(
    `timed out waiting for ${what}${last instanceof Error ? ` (last error: ${last.message})` : ''}`,
  );
}

/** PIDs whose command line names `runDir`: the components of that control plane. */
function pidsUsing(runDir: string): number[] {
  return readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .filter((p) => {
      try {
        return readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(runDir);
      } catch {
        return false;
      }
    })
    .map(Number);
}

void describe('dev-environment Kubernetes control plane', () => {
  let kube: ApiServer;
  let customObjects: CustomObjectsApi;
  let core: CoreV1Api;

  before(async () => {
    kube = await startApiServer();
    customObjects = kube.kubeConfig.makeApiClient(CustomObjectsApi);
    core = kube.kubeConfig.makeApiClient(CoreV1Api);
    console.log(`control plane up in ${kube.timings.total} ms`, kube.timings);
  });

  after(async () => {
    await kube?.stop();
  });

  void test('the built kubectl matches the server version', async () => {
    const res = await kube.kubectl(['version', '-o', 'json']);
    assert.equal(res.code, 0, res.stderr);
    const v = JSON.parse(res.stdout) as {
      clientVersion: { gitVersion: string };
      serverVersion: { gitVersion: string };
    };
    assert.match(v.serverVersion.gitVersion, /^v1\.34\.\d+$/);
    assert.equal(v.clientVersion.gitVersion, v.serverVersion.gitVersion);
  });

  void test('a CRD is served, and custom objects round-trip through client-node and kubectl', async () => {
    const applied = await kube.kubectl(['apply', '-f', '-'], JSON.stringify(widgetCrd));
    assert.equal(applied.code, 0, applied.stderr);
    const established = await kube.kubectl([
      'wait',
      '--for=condition=Established',
      `crd/${plural}.${group}`,
      '--timeout=30s',
    ]);
    assert.equal(established.code, 0, established.stderr);

    // client-node writes, kubectl reads.
    await customObjects.createNamespacedCustomObject({
      group,
      version,
      namespace: 'default',
      plural,
      body: widget('from-client-node', 3, 'blue'),
    });
    const got = await kube.kubectl(['get', `${plural}.${group}`, 'from-client-node', '-o', 'json']);
    assert.equal(got.code, 0, got.stderr);
    assert.deepEqual((JSON.parse(got.stdout) as Widget).spec, { size: 3, colour: 'blue' });

    // kubectl writes, client-node reads.
    const created = await kube.kubectl(['apply', '-f', '-'], JSON.stringify(widget('from-kubectl', 7)));
    assert.equal(created.code, 0, created.stderr);
    const read = (await customObjects.getNamespacedCustomObject({
      group,
      version,
      namespace: 'default',
      plural,
      name: 'from-kubectl',
    })) as Widget;
    assert.deepEqual(read.spec, { size: 7 });

    // The schema is enforced by the server, not just stored.
    const invalid = await kube.kubectl(['apply', '-f', '-'], JSON.stringify(widget('too-small', 0)));
    assert.notEqual(invalid.code, 0);
    assert.match(invalid.stderr, /spec\.size/);
  });

  void test('a watch sees a change made after it started', async () => {
    const list = (await customObjects.listNamespacedCustomObject({
      group,
      version,
      namespace: 'default',
      plural,
    })) as {
      metadata: { resourceVersion: string };
    };
    const seen: { phase: string; widget: Widget }[] = [];
    let watchError: unknown;
    const watch = new Watch(kube.kubeConfig);
    const abort = await watch.watch(
      `/apis/${group}/${version}/namespaces/default/${plural}`,
      { resourceVersion: list.metadata.resourceVersion },
      (phase, obj: Widget) => seen.push({ phase, widget: obj }),
      (err) => {
        watchError = err;
      },
    );
    try {
      await customObjects.patchNamespacedCustomObject(
        {
          group,
          version,
          namespace: 'default',
          plural,
          name: 'from-kubectl',
          body: { spec: { colour: 'red' } },
        },
        mergePatch,
      );
      const modified = await eventually('the MODIFIED event', () =>
        Promise.resolve(
          seen.find((e) => e.phase === 'MODIFIED' && e.widget.metadata.name === 'from-kubectl'),
        ),
      );
      assert.deepEqual(modified.widget.spec, { size: 7, colour: 'red' });
      assert.equal(watchError, undefined);
    } finally {
      abort.abort();
    }
  });

  void test('the EndpointSlice controller publishes a Ready pod, and withdraws its readiness', async () => {
    const namespace = 'eps';
    const podIP = '10.244.1.5';
    await core.createNamespace({ body: { metadata: { name: namespace } } });
    // Pods on a Node that does not exist are left out of EndpointSlices, so make one.
    await core.createNode({
      body: { metadata: { name: 'node-a', labels: { 'topology.kubernetes.io/zone': 'zone-1' } } },
    });
    await core.createNamespacedService({
      namespace,
      body: {
        metadata: { name: 'web' },
        spec: { selector: { app: 'web' }, ports: [{ name: 'http', port: 80, targetPort: 8080 }] },
      },
    });
    await core.createNamespacedPod({
      namespace,
      body: {
        metadata: { name: 'web-1', labels: { app: 'web' } },
        // No scheduler or kubelet: the pod is "scheduled" by naming its node, and never pulled.
        spec: { nodeName: 'node-a', containers: [{ name: 'web', image: 'registry.invalid/web:1' }] },
      },
    });
    const setReady = (ready: boolean) =>
      core.patchNamespacedPodStatus(
        {
          name: 'web-1',
          namespace,
          body: {
            status: {
              phase: 'Running',
              hostIP: '10.0.0.1',
              podIP,
              podIPs: [{ ip: podIP }],
              conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }],
            },
          },
        },
        setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch),
      );
    await setReady(true);

    const discovery = kube.kubeConfig.makeApiClient(DiscoveryV1Api);
    const endpointWith = async (ready: boolean): Promise<V1EndpointSlice | undefined> => {
      const slices = await discovery.listNamespacedEndpointSlice({
        namespace,
        labelSelector: 'kubernetes.io/service-name=web',
      });
      return slices.items.find((s) =>
        (s.endpoints ?? []).some((e) => e.addresses.includes(podIP) && e.conditions?.ready === ready),
      );
    };
    const slice = await eventually('an EndpointSlice with the Ready pod IP', () => endpointWith(true));
    assert.equal(slice.addressType, 'IPv4');
    assert.deepEqual(
      slice.ports?.map((p) => ({ name: p.name, port: p.port })),
      [{ name: 'http', port: 8080 }],
    );
    const endpoint = slice.endpoints?.find((e) => e.addresses.includes(podIP));
    assert.equal(endpoint?.nodeName, 'node-a');
    assert.equal(endpoint?.zone, 'zone-1');
    assert.equal(endpoint?.targetRef?.name, 'web-1');

    await setReady(false);
    await eventually('the endpoint to turn not-ready', () => endpointWith(false));
  });

  void test('a ServiceAccount token authenticates as that account, and RBAC applies to it', async () => {
    const token = await kube.serviceAccountToken('default', 'probe');
    const asProbe = new KubeConfig();
    asProbe.loadFromOptions({
      clusters: [kube.kubeConfig.getCurrentCluster()],
      users: [{ name: 'probe', token }],
      contexts: [{ name: 'probe', cluster: 'kseip-test', user: 'probe' }],
      currentContext: 'probe',
    });
    const review = await asProbe.makeApiClient(AuthenticationV1Api).createSelfSubjectReview({ body: {} });
    assert.equal(review.status?.userInfo?.username, 'system:serviceaccount:default:probe');
    await assert.rejects(
      asProbe.makeApiClient(CoreV1Api).listNamespacedPod({ namespace: 'default' }),
      (err: ApiException<unknown>) => err.code === 403,
    );
  });
});

void describe('nothing outlives the owner of a control plane', () => {
  // A child Node process owns the control plane, so the test can end it the hard way.
  const ownerScript = `
    import { startApiServer } from ${JSON.stringify(path.resolve(import.meta.dirname, '../src/devenv/apiserver.ts'))};
    const kube = await startApiServer({ waitForControllers: false });
    console.log(kube.runDir);
    setInterval(() => {}, 1000);
  `;

  async function startOwner(): Promise<{ owner: ReturnType<typeof spawn>; runDir: string }> {
    const owner = spawn(
      process.execPath,
      ['--disable-warning=ExperimentalWarning', '--input-type=module', '-e', ownerScript],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const runDir = await new Promise<string>((resolve, reject) => {
      let out = '';
      owner.stdout?.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('\n')) resolve(out.trim());
      });
      owner.once('exit', (code) => reject(new Error(`owner exited with ${code} before starting`)));
    });
    return { owner, runDir };
  }

  /** Runs `body` against a fresh owner, which is SIGKILLed afterwards whatever happened. */
  async function withOwner(
    body: (owner: ReturnType<typeof spawn>, runDir: string) => Promise<void>,
  ): Promise<void> {
    const { owner, runDir } = await startOwner();
    try {
      assert.equal(
        pidsUsing(runDir).length,
        3,
        'etcd, kube-apiserver and kube-controller-manager should run',
      );
      await body(owner, runDir);
    } finally {
      if (owner.exitCode === null && owner.signalCode === null) owner.kill('SIGKILL');
    }
  }

  void test('SIGTERM to the owner stops the components and removes the run dir', () =>
    withOwner(async (owner, runDir) => {
      owner.kill('SIGTERM');
      await eventually(
        'the owner to exit',
        () => Promise.resolve(owner.signalCode !== null ? true : undefined),
        5_000,
      );
      assert.equal(owner.signalCode, 'SIGTERM', 'the signal is re-raised after cleanup');
      // SIGKILLed synchronously on the way out, yet /proc may list them for a moment longer.
      await eventually(
        'the components to exit',
        () => Promise.resolve(pidsUsing(runDir).length === 0 ? true : undefined),
        5_000,
      );
      assert.equal(existsSync(runDir), false);
    }));

  void test('SIGKILL to the owner still ends the components; the next start sweeps the run dir', () =>
    withOwner(async (owner, runDir) => {
      owner.kill('SIGKILL');
      await eventually(
        'the components to exit',
        () => Promise.resolve(pidsUsing(runDir).length === 0 ? true : undefined),
        5_000,
      );
      assert.equal(existsSync(runDir), true, 'no handler runs on SIGKILL');
      sweepStaleRunDirs();
      assert.equal(existsSync(runDir), false);
    }));
});
