// The e2e benchmark's measurements on the real-node cluster (src/devenv/real-nodes.ts: kubelet,
// containerd, kube-proxy, flannel in node containers, the project installed with `kubectl apply
// -k k8s/overlays/dev`), the same three as on the netns stack so e2e.bench.ts prints them side by
// side. Effectful: starts and stops that cluster.
//   - CR apply → programmed on all nodes: just before the API request that creates a
//     StaticEgressIP → the last ack of the nodes it involves (directors and gateway);
//   - new pod → programmed on its node: the first moment the API server shows the new pod's IP
//     (kubelet's status report, polled every 20 ms) → its node's ack;
//   - failover: the gateway's container is killed (and its Node deleted, as a cloud provider's node
//     controller does); the gap is the longest silence in the answered requests of the selected
//     pods on other nodes, which request every 50 ms, on the external host's clock. A node is
//     added back between runs.
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import { decodeClusterEvent } from '../src/contracts/cluster-events.ts';
import { decodeNodeApplyStatus } from '../src/contracts/node-reports.ts';
import { decodeNodeRules, type NodeRules } from '../src/contracts/node-rules.ts';
import { TOPICS } from '../src/contracts/topics.ts';
import { startRealCluster, type RealCluster } from '../src/devenv/real-nodes.ts';
import {
  computeLongestGap,
  followRecords,
  POOL_YAML,
  SEED,
  seedManifest,
  selectHolder,
} from '../src/devenv/stack.ts';
import { probeDeploymentYaml, serviceYaml } from '../test/support/real-workloads.ts';
import {
  computeStages,
  measurePolicyRun,
  ms,
  seedServicePolicies,
  say,
  waitAcks,
  waitRules,
  type Followers,
  type Timed,
} from './e2e-programmed.ts';

export interface RealNodeFigures {
  readonly policy: Timed;
  readonly pod: Timed;
  readonly failover: number[];
}

async function until<T>(
  what: string,
  fn: () => Promise<T | undefined>,
  timeoutMs = 180_000,
  pollMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(pollMs);
  }
}

async function policyApply(c: RealCluster, f: Followers, runs: number): Promise<Timed> {
  const policies = seedServicePolicies(c.kube.kubeConfig);
  const directors = new Set((await c.pods('frontend')).map((p) => p.node));
  const out: Timed = { samples: [], stages: [] };
  for (let run = 0; run < runs; run++) {
    // A destination of its own, so that it never conflicts with the seed policy's.
    const cidr = `203.0.113.${100 + run}/32`;
    await measurePolicyRun(
      f,
      policies,
      directors,
      { name: `bench-${run}`, ip: `198.51.100.${20 + run}`, cidr },
      out,
    );
  }
  return out;
}

async function newPod(c: RealCluster, f: Followers, runs: number): Promise<Timed> {
  const out: Timed = { samples: [], stages: [] };
  const steered = (r: NodeRules, ip: string): boolean => r.steers.some((st) => st.podIPs.includes(ip));
  for (let run = 0; run < runs; run++) {
    const before = new Set((await c.pods('frontend')).map((p) => p.name));
    const from = f.rules.records.length;
    await c.kubectl(['scale', 'deployment/frontend', `--replicas=${before.size + 1}`]);
    const fresh = await until(
      'the new pod to have an IP',
      async () => (await c.pods('frontend')).find((p) => !before.has(p.name) && p.ip !== ''),
      120_000,
      20,
    );
    const t0 = Date.now();
    const records = await waitRules(
      f,
      from,
      (r) => r.node === fresh.node && steered(r, fresh.ip),
      (found) => found.has(fresh.node),
      `pod ${fresh.name}`,
    );
    const ack = (await waitAcks(f, records)).get(fresh.node)!;
    out.samples.push(Date.parse(ack.appliedAt) - t0);
    out.stages.push(await computeStages(f, t0, records.get(fresh.node)!, ack));
    const beforeDelete = f.rules.records.length;
    await c.kubectl(['scale', 'deployment/frontend', `--replicas=${before.size}`]);
    await waitAcks(
      f,
      await waitRules(
        f,
        beforeDelete,
        (r) => r.node === fresh.node && !steered(r, fresh.ip),
        (found) => found.has(fresh.node),
        `pod ${fresh.name} gone`,
      ),
    );
    await until('the scaled-down pod to be gone', async () =>
      (await c.pods('frontend')).length === before.size ? true : undefined,
    );
  }
  return out;
}

async function failover(c: RealCluster, runs: number): Promise<number[]> {
  const gaps: number[] = [];
  for (let run = 0; run < runs; run++) {
    const old = await until('a gateway holding the egress IP', () => selectHolder(c.net, SEED.egressIP));
    const projectorNode = (
      await c.kubectl([
        '-n',
        'kube-static-egress-ip',
        'get',
        'pods',
        '-l',
        'app.kubernetes.io/name=kseip-projector',
        '-o',
        'jsonpath={.items[0].spec.nodeName}',
      ])
    ).trim();
    const survivors = (await c.pods('frontend')).filter((p) => p.node !== old.name && p.ready);
    if (survivors.length === 0) throw new Error(`no selected pod off the gateway ${old.name}`);
    const killedAt = Date.now();
    await c.killNode(old.name);
    await c.kubectl(['delete', 'node', old.name, '--wait=false']);
    const fresh = await until('a new gateway', async () => {
      const h = await selectHolder(c.net, SEED.egressIP);
      return h !== undefined && h.name !== old.name ? h : undefined;
    });
    // Two more seconds of answers after the new gateway holds the address close the gap.
    await sleep(2_000);
    const names = new Set(survivors.map((p) => p.name));
    const answered = (await c.net.observations())
      .filter((o) => names.has(o.tag ?? '') && o.src === SEED.egressIP)
      .map((o) => Date.parse(o.time))
      .filter((t) => t >= killedAt - 2_000)
      .sort((a, b) => a - b);
    const gap = computeLongestGap(answered);
    gaps.push(gap);
    say(
      `    run ${run + 1}: ${old.name} → ${fresh.name} ${ms(gap)}${projectorNode === old.name ? ' (the projector ran on the killed node and had to be rescheduled)' : ''}`,
    );
    if (run < runs - 1) {
      await c.addNode();
      await c.waitRolledOut();
      await until('two ready frontend pods again', async () =>
        (await c.pods('frontend')).filter((p) => p.ready).length >= 2 ? true : undefined,
      );
    }
  }
  return gaps;
}

export async function benchRealNodes(runs: number, failoverRuns: number): Promise<RealNodeFigures> {
  say(
    '\nReal-node cluster (kubelet, containerd, kube-proxy nftables, flannel vxlan; kubectl apply -k k8s/overlays/dev):',
  );
  const c = await startRealCluster({
    log: pino({ level: 'error' }),
    onStep: (step, t) => say(`    ${step}: ${ms(t)}`),
  });
  let f: Followers | undefined;
  try {
    await c.install();
    // Only now: the topics exist once the components have created them.
    f = {
      events: followRecords(c, TOPICS.clusterEvents, decodeClusterEvent),
      rules: followRecords(c, TOPICS.nodeRules, decodeNodeRules),
      acks: followRecords(c, TOPICS.nodeStatus, decodeNodeApplyStatus),
    };

    await c.apply(
      [
        probeDeploymentYaml('frontend', 2, { intervalSeconds: 0.05 }),
        serviceYaml('frontend'),
        POOL_YAML,
      ].join('---\n'),
    );
    await until('two ready frontend pods', async () =>
      (await c.pods('frontend')).filter((p) => p.ready).length === 2 ? true : undefined,
    );
    await sleep(2_000);
    say('\n  1. CR apply → programmed on all nodes');
    const policy = await policyApply(c, f, runs);
    say(`    samples: ${policy.samples.map(ms).join(', ')}`);
    await c.apply(seedManifest());
    await until('the seed policy on a gateway', () => selectHolder(c.net, SEED.egressIP));
    say('\n  2. new pod → programmed on its node');
    const pod = await newPod(c, f, runs);
    say(`    samples: ${pod.samples.map(ms).join(', ')}`);
    say(`\n  3. failover (gateway container killed), ${failoverRuns} runs`);
    const gaps = await failover(c, failoverRuns);
    say(`    memory at the end: ${(await c.measureMemory()).summary}`);
    return { policy, pod, failover: gaps };
  } finally {
    if (f !== undefined) await Promise.allSettled([f.events.stop(), f.rules.stop(), f.acks.stop()]);
    await c.stop();
  }
}
