// Assertions shared by the e2e suites (test/*.e2e.test.ts), on ground truth only: what the
// external host's whoami server saw (its reply and its tagged log, cluster.observations()) and
// what each node's kernel holds (src/devenv/node-kernel.ts). Never on the components' logs or
// metrics. Effectful (traffic from pod namespaces, reads of node kernels); every wait polls
// with a generous deadline and nothing measures or asserts a duration.
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import type { SimPod } from '../../src/devenv/cluster-sim.ts';
import type { NetCluster, NetNode } from '../../src/devenv/netcluster.ts';
import { describeNodeKernel, readNodeKernel, type NodeKernel } from '../../src/devenv/node-kernel.ts';
import type { Stack } from '../../src/devenv/stack.ts';

/** Deadline for anything the control plane must converge to (a loaded 2-core machine). */
export const CONVERGE_MS = 90_000;

let tagCounter = 0;
const nextTag = (what: string): string =>
  `e2e-${process.pid}-${Date.now().toString(36)}-${tagCounter++}-${what}`.replace(/[^A-Za-z0-9_.-]/g, '_');

/** Tagged whoami probes; the source each one was seen with (undefined: no answer). */
async function probe(
  cluster: NetCluster,
  pod: SimPod,
  dst: string,
  count: number,
  timeoutMs = 3000,
): Promise<{ tag: string; src: string | undefined }[]> {
  const out: { tag: string; src: string | undefined }[] = [];
  for (let i = 0; i < count; i++) {
    const tag = nextTag(`${pod.name}-${dst}`);
    const src = await cluster.whoami(pod.net.ns, dst, { timeoutMs, tag }).catch(() => undefined);
    out.push({ tag, src });
  }
  return out;
}

/**
 * `count` tagged requests from `pod` to `dst`, one after the other: every one must be answered
 * and logged by the external host with source `want`. For the sources that follow from a state
 * already proven converged (see waitSeenAs): a negative ("still the node IP") is only
 * meaningful once something on the same node shows that the rules it depends on are applied.
 */
export async function assertSeenAs(
  stack: Stack,
  pod: SimPod,
  dst: string,
  want: string,
  what: string,
  count = 3,
): Promise<void> {
  const results = await probe(stack.cluster, pod, dst, count);
  const tags = new Set(results.map((r) => r.tag));
  const logged = (await stack.cluster.observations()).filter((o) => o.tag !== undefined && tags.has(o.tag));
  assert.deepEqual(
    results.map((r) => r.src),
    results.map(() => want),
    `${what}: ${pod.name} (${pod.net.ip} on ${pod.node}) → ${dst} should be seen as ${want}`,
  );
  assert.deepEqual(
    logged.map((o) => o.src).sort(),
    results.map(() => want),
    `${what}: the external host's log should hold every tagged request from ${pod.name}, from ${want}`,
  );
}

/** Polls until the external host sees `pod` → `dst` as `want`, then confirms it with assertSeenAs. */
export async function waitSeenAs(
  stack: Stack,
  pod: SimPod,
  dst: string,
  want: string,
  what: string,
  timeoutMs = CONVERGE_MS,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: string | undefined;
  for (;;) {
    last = await stack.cluster
      .whoami(pod.net.ns, dst, { timeoutMs: 1500 })
      .catch((err: Error) => `(failed: ${err.message.trim().split('\n').pop() ?? ''})`);
    if (last === want) break;
    if (Date.now() > deadline)
      throw new Error(
        `${what}: ${pod.name} (${pod.net.ip} on ${pod.node}) → ${dst} still seen as ${last} after ${timeoutMs} ms, want ${want}\n` +
          (await describeCluster(stack)),
      );
    await sleep(150);
  }
  await assertSeenAs(stack, pod, dst, want, what);
}

/**
 * Every request from `pod` to `dst` fails and none reaches the external host (checked by tag in
 * its log): the traffic is dropped, it does not leave with any source.
 */
export async function assertNeverSeen(
  stack: Stack,
  pod: SimPod,
  dst: string,
  what: string,
  count = 3,
): Promise<void> {
  const results = await probe(stack.cluster, pod, dst, count, 1500);
  const tags = new Set(results.map((r) => r.tag));
  const logged = (await stack.cluster.observations()).filter((o) => o.tag !== undefined && tags.has(o.tag));
  assert.deepEqual(
    results.map((r) => r.src),
    results.map(() => undefined),
    `${what}: ${pod.name} → ${dst} should get no answer`,
  );
  assert.deepEqual(logged, [], `${what}: the external host must not have seen ${pod.name} → ${dst}`);
}

/** The kernel state of every live node. */
export async function readAllKernels(cluster: NetCluster): Promise<NodeKernel[]> {
  return Promise.all(
    cluster
      .nodes()
      .filter((n) => !n.killed)
      .map((n) => readNodeKernel(cluster, n)),
  );
}

/** Polls the kernels of `nodes` (default: every live node) until `check` holds for all of them. */
export async function waitForKernels(
  stack: Stack,
  what: string,
  check: (k: NodeKernel, node: NetNode) => boolean,
  nodes?: () => NetNode[],
  timeoutMs = CONVERGE_MS,
): Promise<NodeKernel[]> {
  const deadline = Date.now() + timeoutMs;
  const pick = nodes ?? (() => stack.cluster.nodes().filter((n) => !n.killed));
  for (;;) {
    const picked = pick();
    const kernels = await Promise.all(picked.map((n) => readNodeKernel(stack.cluster, n)));
    if (kernels.every((k, i) => check(k, picked[i]!))) return kernels;
    if (Date.now() > deadline)
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}:\n${kernels.map(describeNodeKernel).join('\n')}\n` +
          stack.controlPlane.describe(10),
      );
    await sleep(200);
  }
}

/** The names of the live nodes whose kernel holds `ip` as an address. */
export function selectAddressHolders(kernels: readonly NodeKernel[], ip: string): string[] {
  return kernels.filter((k) => k.addresses.some((a) => a.split(' ')[1] === `${ip}/32`)).map((k) => k.node);
}

/** Every node's leftovers and the components' last log lines, for failure messages. */
export async function describeCluster(stack: Stack): Promise<string> {
  const kernels = await readAllKernels(stack.cluster).catch((err: Error) => err.message);
  return `${typeof kernels === 'string' ? kernels : kernels.map(describeNodeKernel).join('\n')}\n${stack.controlPlane.describe(8)}`;
}
