// The project on real Kubernetes nodes (src/devenv/real-nodes.ts): three node containers with
// containerd, kubelet, kube-proxy (nftables, and iptables as a variant) and flannel (vxlan), the
// project installed with `kubectl apply -k k8s/overlays/dev` and running as real Pods, workloads
// as real Deployments whose EndpointSlices come from real readiness. Judged by what the external
// host logged (every workload pod requests it every ~200 ms, tagged with its name) and by what
// the nodes' kernels hold; never by our own components' logs.
//
// One cluster for the whole file (it takes about a minute to start); the tests run in order and
// build on each other: the gateway-kill and uninstall tests come last, then the Helm chart is
// installed on the same nodes (with the dev overlay's settings) and uninstalled again.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { readNodeKernel, selectLeftovers } from '../src/devenv/node-kernel.ts';
import { type Observation } from '../src/devenv/netcluster.ts';
import { OWNER_LABEL, sweepContainersOfDeadOwners } from '../src/devenv/container-owner.ts';
import { startRealCluster, type PodInfo, type RealCluster } from '../src/devenv/real-nodes.ts';
import {
  computeLongestGap,
  POOL_YAML,
  seedManifest,
  selectHolder,
  selectRouterMac,
  SEED,
} from '../src/devenv/stack.ts';
import { createLogger } from '../src/lib/log.ts';
import {
  describeSources,
  probeDeploymentYaml,
  selectPodObservations,
  selectSince,
  serviceYaml,
  webDaemonSetYaml,
  WORKLOAD_IMAGE,
} from './support/real-workloads.ts';

const NS = 'kube-static-egress-ip';
let cluster: RealCluster;
const trace = (line: string): void => void process.stderr.write(`[real-nodes] ${line}\n`);

const pods = (app: string): Promise<PodInfo[]> => cluster.pods(app);

async function waitFor<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 120_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (err) {
      lastErr = err;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs / 1000} s waiting for ${what}${lastErr instanceof Error ? `: ${lastErr.message}` : ''}`,
      );
    }
    await sleep(250);
  }
}

const nodeIp = (name: string): string => cluster.node(name).ip;

/** Waits until each pod has been seen with `want(pod)` and returns the time after which it held. */
async function waitSeenAs(
  podsToCheck: readonly PodInfo[],
  want: (p: PodInfo) => string,
  what: string,
): Promise<void> {
  await waitFor(
    what,
    async () => {
      const log = await cluster.net.observations();
      const ok = podsToCheck.every((p) => {
        const seen = selectPodObservations(log, p.name);
        return seen.length > 0 && seen.at(-1)!.src === want(p);
      });
      return ok ? true : undefined;
    },
    120_000,
  ).catch(async (err: unknown) => {
    throw new Error(`${String(err)}\n${describeSources(await cluster.net.observations())}`);
  });
}

/** Every observation of `podsToCheck` in [from, to] has the wanted source; returns how many. */
async function assertOnlySeenAs(
  podsToCheck: readonly PodInfo[],
  want: (p: PodInfo) => string,
  fromMs: number,
  toMs: number,
  what: string,
): Promise<number> {
  const window = selectSince(await cluster.net.observations(), fromMs, toMs);
  let n = 0;
  const wrong: Observation[] = [];
  for (const p of podsToCheck) {
    for (const o of selectPodObservations(window, p.name)) {
      n++;
      if (o.src !== want(p)) wrong.push(o);
    }
  }
  assert.deepEqual(
    wrong.map((o) => `${o.time} ${o.tag} seen as ${o.src}`),
    [],
    `${what}: requests left with the wrong source\n${describeSources(window)}`,
  );
  assert.ok(
    n > 0,
    `${what}: no request of ${podsToCheck.map((p) => p.name).join(', ')} reached the external host`,
  );
  return n;
}

/** A request from `pod` to `url` (wget in the pod's own container); the body, or an error. */
async function fetchFromPod(pod: PodInfo, url: string): Promise<string> {
  const r = await cluster.podExec({ namespace: 'default', name: pod.name }, [
    'timeout',
    '3',
    'wget',
    '-q',
    '-O',
    '-',
    url,
  ]);
  if (r.code !== 0)
    throw new Error(`wget ${url} from ${pod.name} on ${pod.node} exited ${r.code}: ${r.stderr.trim()}`);
  return r.stdout.trim();
}

/** busybox httpd listens on IPv6 too and reports IPv4 clients as `[::ffff:a.b.c.d]`. */
const plainIp = (remoteAddr: string): string => remoteAddr.replace(/^\[(::ffff:)?/, '').replace(/\]$/, '');

/**
 * kube-proxy's and flannel's objects in a node's kernel, as text to compare before and after
 * our changes: kube-proxy's nftables table (or its iptables chains) and flannel's iptables rules,
 * its VXLAN device and its routes. Counters are dropped; so are lines about our own namespace's
 * Services (their endpoints change when our pods restart, which is kube-proxy doing its job).
 */
async function theirObjects(node: string): Promise<string> {
  const r = await cluster.nodeExec(node, [
    'sh',
    '-c',
    [
      'nft list table ip kube-proxy 2>/dev/null',
      'iptables-save 2>/dev/null | grep -v "^#"',
      'ip -d link show flannel.1 | grep -o "vxlan id [0-9]* local [0-9.]* dev [a-z0-9]* .*dstport [0-9]*"',
      'ip link show cni0 | head -1 | grep -o "cni0: <[^>]*>"',
      'ip route show | grep -E "flannel|cni0"',
    ].join('; '),
  ]);
  return r.stdout
    .split('\n')
    .filter((l) => !l.includes(NS))
    .map((l) =>
      l
        .replace(/counter packets \d+ bytes \d+/g, 'counter')
        .replace(/^\[\d+:\d+\]/, '')
        .replace(/:(\w+) (\w+) \[\d+:\d+\]/, ':$1 $2'),
    )
    .join('\n');
}

/**
 * Equal to `before` on every node. kube-proxy may still be catching up with an endpoint change
 * of its own (it programs asynchronously), so a difference must persist for 10 s to count.
 */
async function assertTheirsUnchanged(before: Map<string, string>, what: string): Promise<void> {
  for (const [node, text] of before) {
    const deadline = Date.now() + 10_000;
    let now = await theirObjects(node);
    while (now !== text && Date.now() < deadline) {
      await sleep(500);
      now = await theirObjects(node);
    }
    assert.equal(now, text, `${what}: kube-proxy's or flannel's objects changed on ${node}`);
  }
}

/** Their objects on every node, once kube-proxy has settled (two reads 1 s apart agree). */
async function snapshotTheirs(): Promise<Map<string, string>> {
  const m = new Map<string, string>();
  for (const n of cluster.nodes()) {
    const text = await waitFor(`kube-proxy settled on ${n.name}`, async () => {
      const first = await theirObjects(n.name);
      await sleep(1_000);
      return (await theirObjects(n.name)) === first ? first : undefined;
    });
    m.set(n.name, text);
  }
  return m;
}

/** Service and cross-node pod traffic from `from` reach the web server with `from`'s own IP. */
async function assertClusterTrafficWorks(from: PodInfo, what: string): Promise<void> {
  const web = await pods('web');
  const remote = web.find((w) => w.node !== from.node && w.ready);
  assert.ok(remote, `${what}: no ready web pod on a node other than ${from.node}`);
  const svc = JSON.parse(await cluster.kubectl(['get', 'service', 'web', '-o', 'json'])) as {
    spec: { clusterIP: string };
  };
  // Through kube-proxy (ClusterIP → any web pod) and straight across flannel (another node's pod).
  const viaService = plainIp(await fetchFromPod(from, `http://${svc.spec.clusterIP}/cgi-bin/ip`));
  const viaPod = plainIp(await fetchFromPod(from, `http://${remote.ip}:8080/cgi-bin/ip`));
  assert.equal(
    viaService,
    from.ip,
    `${what}: the Service saw ${viaService}, not the pod's own IP ${from.ip}`,
  );
  assert.equal(viaPod, from.ip, `${what}: ${remote.name} on ${remote.node} saw ${viaPod}, not ${from.ip}`);
}

/** Waits for policyReady; on a timeout the error carries the policy's status and our pods' logs. */
async function waitPolicyReady(what: string): Promise<{ gateway: string }> {
  return waitFor(what, policyReady).catch(async (err: unknown) => {
    const run = (args: string[]): Promise<string> =>
      cluster.kubectl(args).catch((e: unknown) => `(${String(e)})`);
    const status = await run([
      'get',
      'seip',
      SEED.policyName,
      '-n',
      SEED.namespace,
      '-o',
      'jsonpath={.status}',
    ]);
    const podNames = (await run(['get', 'pods', '-n', NS, '-o', 'name'])).split('\n').filter(Boolean);
    const logs: string[] = [];
    for (const pod of podNames.filter((p) => !p.includes('agent')))
      logs.push(`--- ${pod}\n${await run(['logs', '-n', NS, pod, '--tail=15'])}`);
    throw new Error(`${String(err)}\nstatus: ${status}\n${logs.join('\n')}`);
  });
}

async function policyReady(): Promise<{ gateway: string } | undefined> {
  const p = JSON.parse(
    await cluster.kubectl(['get', 'seip', SEED.policyName, '-n', SEED.namespace, '-o', 'json']),
  ) as {
    status?: { conditions?: { type: string; status: string }[]; rules?: { activeGateway?: string }[] };
  };
  const ready = p.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True';
  const gateway = p.status?.rules?.[0]?.activeGateway;
  return ready && gateway !== undefined ? { gateway } : undefined;
}

void describe('real nodes: kubelet, containerd, kube-proxy and flannel, with the project installed by kubectl apply -k', () => {
  let theirsBeforePolicy: Map<string, string>;

  before(async () => {
    cluster = await startRealCluster({
      log: createLogger('real-nodes'),
      onStep: (step, ms) => trace(`${step}: ${(ms / 1000).toFixed(1)} s`),
    });
    const installStarted = performance.now();
    await cluster.install();
    trace(
      `kubectl apply -k k8s/overlays/dev, all rolled out: ${((performance.now() - installStarted) / 1000).toFixed(1)} s`,
    );
    await cluster.apply(
      [
        webDaemonSetYaml(),
        probeDeploymentYaml('frontend', 2),
        serviceYaml('frontend'),
        probeDeploymentYaml('backend', 1),
      ].join('---\n'),
    );
    await waitFor('the workloads to be Ready', async () => {
      const all = [...(await pods('frontend')), ...(await pods('backend')), ...(await pods('web'))];
      return all.length === 6 && all.every((p) => p.ready) ? all : undefined;
    });
    // Before any policy: every workload pod leaves with its node's IP (flannel's masquerade).
    await waitSeenAs(
      [...(await pods('frontend')), ...(await pods('backend'))],
      (p) => nodeIp(p.node),
      'node IPs before any policy',
    );
    theirsBeforePolicy = await snapshotTheirs();
    trace(`memory with the project and workloads running: ${(await cluster.measureMemory()).summary}`);
  });

  after(async () => {
    await cluster?.stop();
  });

  void test("a node whose kubelet cannot start fails with kubelet's last log lines", async () => {
    await assert.rejects(
      cluster.addNode({ kubeletExtraArgs: ['--no-such-kubelet-flag'], readyTimeoutMs: 60_000 }),
      (err: Error) => {
        assert.match(err.message, /kubelet exited \d+ times/);
        assert.match(err.message, /last lines of kubelet's log/);
        assert.match(err.message, /unknown flag: --no-such-kubelet-flag/);
        return true;
      },
    );
    // The failed node is gone again: its container, and its namespace on the router.
    assert.deepEqual(
      cluster.nodes().map((n) => n.name),
      ['node1', 'node2', 'node3'],
    );
  });

  void test('the seed manifest: selected pods leave with the egress IP, an unselected pod with its node IP', async () => {
    await cluster.apply(POOL_YAML);
    await cluster.apply(seedManifest());
    const { gateway } = await waitPolicyReady('the policy Ready with a gateway');
    const frontend = await pods('frontend');
    const backend = await pods('backend');
    await waitSeenAs(frontend, () => SEED.egressIP, 'frontend pods seen with the egress IP');
    const from = Date.now();
    await sleep(3_000);
    const n = await assertOnlySeenAs(frontend, () => SEED.egressIP, from, Date.now(), 'selected pods');
    const m = await assertOnlySeenAs(backend, (p) => nodeIp(p.node), from, Date.now(), 'the unselected pod');
    trace(
      `gateway ${gateway}; ${n} requests of ${frontend.length} selected pods as ${SEED.egressIP}, ${m} of the unselected one as its node IP`,
    );
    // The egress IP is held by the gateway's uplink, and the router found it there.
    assert.equal((await selectHolder(cluster.net, SEED.egressIP))?.name, gateway);
  });

  void test('nothing else is captured: a selected pod reaches a ClusterIP Service and pods on other nodes as before', async () => {
    for (const p of await pods('frontend')) await assertClusterTrafficWorks(p, `from ${p.name}`);
  });

  void test("our rules and theirs coexist: kube-proxy's and flannel's objects are untouched by our applies", async () => {
    await assertTheirsUnchanged(theirsBeforePolicy, 'after the seed policy was applied');
    // One more apply of ours on every node: a second policy (another destination, another IP).
    await cluster.apply(`apiVersion: staticegressips.nirmata.io/v1alpha1
kind: StaticEgressIP
metadata: {name: second, namespace: default}
spec:
  rules:
  - egressip: 198.51.100.11
    service-name: frontend
    cidr: 203.0.113.20/32
`);
    await waitFor('the second policy Ready', async () => {
      const out = await cluster.kubectl([
        'get',
        'seip',
        'second',
        '-o',
        'jsonpath={.status.conditions[?(@.type=="Ready")].status}',
      ]);
      return out === 'True' ? true : undefined;
    });
    await assertTheirsUnchanged(theirsBeforePolicy, 'after a second policy');
    for (const p of await pods('frontend'))
      await assertClusterTrafficWorks(p, `after a second policy, from ${p.name}`);
    await cluster.kubectl(['delete', 'seip', 'second']);
  });

  void test('a restart of kube-proxy does not break our steering', async () => {
    const frontend = await pods('frontend');
    const from = Date.now();
    for (const n of cluster.nodes()) await cluster.restartNodeService(n.name, 'kube-proxy');
    await sleep(3_000);
    const n = await assertOnlySeenAs(
      frontend,
      () => SEED.egressIP,
      from,
      Date.now(),
      'during and after kube-proxy restarts',
    );
    trace(
      `kube-proxy restarted on every node; ${n} requests of selected pods meanwhile, all as ${SEED.egressIP}`,
    );
    for (const p of frontend) await assertClusterTrafficWorks(p, `after kube-proxy restarts, from ${p.name}`);
  });

  void test('a restart of our agent does not break theirs', async () => {
    const before = await snapshotTheirs();
    const agentPod = (
      JSON.parse(
        await cluster.kubectl([
          '-n',
          NS,
          'get',
          'pods',
          '-l',
          'app.kubernetes.io/name=kseip-agent',
          '-o',
          'json',
        ]),
      ) as {
        items: { metadata: { name: string }; spec: { nodeName: string } }[];
      }
    ).items[0]!;
    await cluster.kubectl(['-n', NS, 'delete', 'pod', agentPod.metadata.name, '--wait=true']);
    await cluster.kubectl(['-n', NS, 'rollout', 'status', 'daemonset/kseip-agent', '--timeout=120s']);
    await assertTheirsUnchanged(before, `after the agent on ${agentPod.spec.nodeName} restarted`);
    for (const p of await pods('frontend'))
      await assertClusterTrafficWorks(p, `after an agent restart, from ${p.name}`);
  });

  void test('a pod created after the policy is seen with the egress IP; the time from Ready to its first steered request is reported', async () => {
    const before = new Set((await pods('frontend')).map((p) => p.name));
    await cluster.kubectl(['scale', 'deployment/frontend', '--replicas=3']);
    // Watch for Ready with our own clock: the Ready condition's timestamp has 1 s resolution.
    const fresh = await waitFor('the new frontend pod Ready', async () => {
      const p = (await pods('frontend')).find((x) => !before.has(x.name) && x.ready);
      return p;
    });
    const readyAt = Date.now();
    await waitSeenAs([fresh], () => SEED.egressIP, `${fresh.name} seen with the egress IP`);
    const seen = selectPodObservations(await cluster.net.observations(), fresh.name);
    const firstSteered = seen.find((o) => o.src === SEED.egressIP)!;
    const leaked = seen.filter((o) => o.src !== SEED.egressIP);
    const leakedAfter = leaked.filter((o) => Date.parse(o.time) > Date.parse(firstSteered.time));
    trace(
      `new pod ${fresh.name} on ${fresh.node}: first steered request ${Date.parse(firstSteered.time) - readyAt} ms after Ready was observed; ` +
        `${leaked.length} request(s) left with the node IP before it${leaked.length ? ` (${leaked.map((o) => o.time).join(', ')})` : ''}`,
    );
    // Once steered, it stays steered.
    assert.deepEqual(
      leakedAfter,
      [],
      'requests of the new pod left with another source after its first steered one',
    );
  });

  void test('kubectl rollout restart of the agent DaemonSet: no request of a selected pod is seen with a node IP', async () => {
    const frontend = await pods('frontend');
    const from = Date.now();
    await cluster.kubectl(['-n', NS, 'rollout', 'restart', 'daemonset/kseip-agent']);
    await cluster.kubectl(['-n', NS, 'rollout', 'status', 'daemonset/kseip-agent', '--timeout=180s']);
    await sleep(2_000);
    const n = await assertOnlySeenAs(frontend, () => SEED.egressIP, from, Date.now(), 'during the rollout');
    trace(
      `rollout restart of kseip-agent took ${((Date.now() - from) / 1000).toFixed(1)} s; ${n} requests of selected pods, all as ${SEED.egressIP}`,
    );
  });

  void test('kube-proxy in iptables mode: steering and cluster traffic work the same', async () => {
    await cluster.setKubeProxyMode('iptables');
    const frontend = await pods('frontend');
    await waitFor('kube-proxy iptables rules on every node', async () => {
      for (const n of cluster.nodes()) {
        const r = await cluster.nodeExec(n.name, [
          'sh',
          '-c',
          'iptables-save -t nat | grep -c KUBE-SERVICES',
        ]);
        if (Number(r.stdout.trim()) === 0) return undefined;
      }
      return true;
    });
    for (const n of cluster.nodes()) {
      const nft = await cluster.nodeExec(n.name, ['nft', 'list', 'table', 'ip', 'kube-proxy']);
      assert.notEqual(nft.code, 0, `${n.name}: kube-proxy's nftables table is still there in iptables mode`);
    }
    const from = Date.now();
    await sleep(2_000);
    await assertOnlySeenAs(
      frontend,
      () => SEED.egressIP,
      from,
      Date.now(),
      'with kube-proxy in iptables mode',
    );
    for (const p of frontend)
      await assertClusterTrafficWorks(p, `with kube-proxy in iptables mode, from ${p.name}`);
    await cluster.setKubeProxyMode('nftables');
  });

  void test("a gateway node stopped: the traffic moves to another node, and the router's neighbour entry with it", async () => {
    const { gateway } = (await policyReady())!;
    const macBefore = await selectRouterMac(cluster.net, SEED.egressIP);
    assert.equal(
      macBefore,
      cluster.node(gateway).net.uplinkMac,
      'the router does not know the gateway as the egress IP',
    );
    const survivors = (await pods('frontend')).filter((p) => p.node !== gateway);
    const projectorNode = (
      await cluster.kubectl([
        ...['-n', NS, 'get', 'pods', '-l', 'app.kubernetes.io/name=kseip-projector'],
        ...['-o', 'jsonpath={.items[0].spec.nodeName}'],
      ])
    ).trim();
    const killedAt = Date.now();
    await cluster.killNode(gateway);
    // The machine is gone for good, so its Node goes too, as a cloud provider's node controller
    // does: pods bound to it are then deleted and rescheduled instead of waiting for eviction.
    // That matters when the dead node also ran the (single) projector: failover waits for its
    // replacement (README, Limitations).
    await cluster.kubectl(['delete', 'node', gateway, '--wait=false']);
    const newGateway = await waitFor(
      'another node holding the egress IP',
      async () => {
        const holder = await selectHolder(cluster.net, SEED.egressIP);
        return holder !== undefined && holder.name !== gateway ? holder : undefined;
      },
      300_000,
    );
    await waitFor("the router's neighbour entry on the new gateway", async () =>
      (await selectRouterMac(cluster.net, SEED.egressIP)) === newGateway.uplinkMac ? true : undefined,
    );
    await waitSeenAs(survivors, () => SEED.egressIP, 'surviving frontend pods seen with the egress IP again');
    const log = selectSince(await cluster.net.observations(), killedAt - 2_000);
    // The outage: the longest silence between two answered requests of the surviving pods,
    // around the kill (the external host's clock).
    const answered = survivors
      .flatMap((p) => selectPodObservations(log, p.name))
      .filter((o) => o.src === SEED.egressIP)
      .map((o) => Date.parse(o.time))
      .sort((a, b) => a - b);
    const gapMs = computeLongestGap(answered);
    const leaked = survivors.flatMap((p) =>
      selectPodObservations(log, p.name).filter((o) => o.src !== SEED.egressIP),
    );
    trace(
      `gateway ${gateway} killed${projectorNode === gateway ? ' (the projector ran there too)' : ''}; new gateway ${newGateway.name}; traffic gap ${gapMs} ms (Node deleted right after the kill); router MAC ${macBefore} → ${newGateway.uplinkMac}`,
    );
    assert.deepEqual(
      leaked.map((o) => `${o.time} ${o.tag} as ${o.src}`),
      [],
      'a surviving selected pod left with another source',
    );
    // The pods of the dead node are deleted with its Node: wait for that here, so that the
    // Service endpoints kube-proxy programs have stopped changing before the next test.
    await waitFor(`the pods of ${gateway} gone`, async () => {
      const out = await cluster.kubectl([
        ...['get', 'pods', '--all-namespaces', '--field-selector', `spec.nodeName=${gateway}`],
        ...['-o', 'name'],
      ]);
      return out.trim() === '' ? true : undefined;
    });
  });

  void test("uninstall (kubectl delete -k): every node is clean of our objects, and kube-proxy's and flannel's are untouched", async () => {
    const before = await snapshotTheirs();
    await cluster.uninstall();
    await assertNodesClean();
    await assertTheirsUnchanged(before, 'after the uninstall');
    // Without the project, selected pods leave with their node IP again: nothing of ours is left on the path.
    await assertFrontendOnNodeIps('after the uninstall');
  });

  void test('the Helm chart on the same nodes: helm install with the dev settings steers the seed policy again, and helm uninstall leaves every node clean', async () => {
    const before = await snapshotTheirs();
    const started = performance.now();
    await cluster.installChart();
    trace(`helm install, all rolled out: ${((performance.now() - started) / 1000).toFixed(1)} s`);
    // kubectl delete -k took the CRDs and with them the policy; the chart brings the CRDs back.
    await cluster.apply(POOL_YAML);
    await cluster.apply(seedManifest());
    const { gateway } = await waitPolicyReady('the policy Ready with a gateway (chart install)');
    const frontend = await liveFrontend();
    await waitSeenAs(frontend, () => SEED.egressIP, 'frontend pods seen with the egress IP (chart install)');
    assert.equal((await selectHolder(cluster.net, SEED.egressIP))?.name, gateway);
    trace(`chart install: gateway ${gateway}, ${frontend.length} frontend pods as ${SEED.egressIP}`);

    await cluster.uninstallChart();
    await assertNodesClean();
    await assertTheirsUnchanged(before, 'after helm uninstall');
    await assertFrontendOnNodeIps('after helm uninstall');
  });
});

/** Every remaining node's kernel holds none of our objects (nft table, rules, routes, addresses). */
async function assertNodesClean(): Promise<void> {
  for (const n of cluster.nodes()) {
    const leftovers = await waitFor(
      `${n.name} clean of our objects`,
      async () => {
        const k = await readNodeKernel(cluster.net, n.net);
        const left = selectLeftovers(k);
        return left.length === 0 ? left : undefined;
      },
      60_000,
    ).catch(async (err: unknown) => {
      const k = await readNodeKernel(cluster.net, n.net);
      throw new Error(`${String(err)}; left: ${selectLeftovers(k).join('; ')}`);
    });
    assert.deepEqual(leftovers, []);
  }
}

/** The ready frontend pods on nodes that still run (a pod of the killed node is gone with it). */
async function liveFrontend(): Promise<PodInfo[]> {
  const live = new Set(cluster.nodes().map((n) => n.name));
  return (await pods('frontend')).filter((p) => p.ready && live.has(p.node));
}

async function assertFrontendOnNodeIps(when: string): Promise<void> {
  const frontend = await liveFrontend();
  await waitSeenAs(frontend, (p) => nodeIp(p.node), `frontend pods back on their node IPs ${when}`);
  for (const p of frontend) await assertClusterTrafficWorks(p, `${when}, from ${p.name}`);
}

void describe('real nodes: a half-finished earlier run', () => {
  void test("containers (nodes, brokers) whose owner died are removed by the next start's sweep", () => {
    // A container labelled as a node of a run whose owner process is gone (PID 1's start time is
    // never "0"); a live owner's containers carry a matching start time and are left alone.
    const id = execFileSync(
      'docker',
      ['run', '-d', '--network', 'none', '--label', `${OWNER_LABEL}=1-0`, WORKLOAD_IMAGE, 'sleep', '600'],
      { encoding: 'utf8' },
    ).trim();
    try {
      const removed = sweepContainersOfDeadOwners(createLogger('real-nodes-test'));
      assert.ok(
        removed.some((r) => id.startsWith(r)),
        `the stale container ${id} was not swept (swept: ${removed.join(', ')})`,
      );
      const left = execFileSync('docker', ['ps', '-a', '-q', '--filter', `id=${id}`], {
        encoding: 'utf8',
      }).trim();
      assert.equal(left, '', 'the stale container still exists');
    } finally {
      spawnSync('docker', ['rm', '-f', id], { stdio: 'ignore' });
    }
  });
});
