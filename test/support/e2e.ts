// Assertions shared by the e2e suites (test/*.e2e.test.ts), on ground truth only: what the
// external host's whoami server saw (its reply and its tagged log, cluster.observations()) and
// what each node's kernel holds (src/devenv/node-kernel.ts). Never on the components' logs or
// metrics. Besides waits for a converged state, source watches probe in the background while
// something changes, to prove what must never happen meanwhile (a selected pod's traffic
// leaving with a node IP). Effectful (traffic from pod namespaces, reads of node kernels);
// every wait polls with a generous deadline, and durations are only printed
// (KSEIP_E2E_TRACE=1), never asserted. Owns the watches it starts (stopAllWatches).
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

/** Requests that got no answer are retried this often before a probe counts as failed. */
const NO_ANSWER_RETRIES = 4;

/**
 * `count` tagged requests from `pod` to `dst`, one after the other: every one must be answered
 * and logged by the external host with source `want`. A request that gets no answer at all is
 * retried (a gateway that fences itself on a loaded machine withdraws its IP for a moment; that
 * is failover's business, not selection's), but any answer with another source fails at once.
 * For sources that follow from a state already proven converged (see waitSeenAs): a negative
 * ("still the node IP") is only meaningful once something on the same node shows that the rules
 * it depends on are applied.
 */
export async function assertSeenAs(
  stack: Stack,
  pod: SimPod,
  dst: string,
  want: string,
  what: string,
  count = 3,
): Promise<void> {
  const results: { tag: string; src: string | undefined }[] = [];
  for (let i = 0; i < count; i++) {
    let result = (await probe(stack.cluster, pod, dst, 1))[0]!;
    for (let retry = 0; result.src === undefined && retry < NO_ANSWER_RETRIES; retry++) {
      trace(`${what}: ${pod.name} → ${dst} got no answer; retrying`);
      result = (await probe(stack.cluster, pod, dst, 1))[0]!;
    }
    results.push(result);
  }
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

export interface SourceWatch {
  /** Stops probing; resolves once every probe has ended. */
  stop(): Promise<SourceWatchResult>;
}

export interface SourceWatchResult {
  /** How often each source was seen (`(no answer)` for requests that got none). */
  readonly seen: ReadonlyMap<string, number>;
  /** Answers with a source outside `allowed`: `<pod> → <dst>: <src> at <time>`. */
  readonly wrong: readonly string[];
}

const NO_ANSWER = '(no answer)';

/**
 * Probes `dst` from every pod in a loop while a change happens, to prove what a change must
 * never do: let the pods' traffic out with a source outside `allowed` (typically the node IP
 * while the egress IP moves). No answer is allowed (a transition may drop packets); a wrong
 * source is not.
 */
export function watchSources(
  stack: Stack,
  pods: readonly SimPod[],
  dst: string,
  allowed: readonly string[],
): SourceWatch {
  const seen = new Map<string, number>();
  const wrong: string[] = [];
  let stopped = false;
  let done: Promise<void> | undefined;
  const loops = pods.map(async (pod) => {
    while (!stopped) {
      const [result] = await probe(stack.cluster, pod, dst, 1, 1500);
      const src = result?.src ?? NO_ANSWER;
      seen.set(src, (seen.get(src) ?? 0) + 1);
      if (src !== NO_ANSWER && !allowed.includes(src))
        wrong.push(`${pod.name} (${pod.net.ip}) → ${dst}: ${src} at ${new Date().toISOString()}`);
      await sleep(50);
    }
  });
  const watch: SourceWatch = {
    async stop() {
      stopped = true;
      done ??= Promise.all(loops).then(() => undefined);
      await done;
      running.delete(watch);
      trace(`watch ${pods.map((p) => p.name).join(',')} → ${dst}: ${JSON.stringify([...seen])}`);
      return { seen, wrong };
    },
  };
  running.add(watch);
  return watch;
}

const running = new Set<SourceWatch>();

/** Stops every watch still probing (one a failed test left behind), so the test process can end. */
export async function stopAllWatches(): Promise<void> {
  await Promise.all([...running].map((w) => w.stop()));
}

/** Asserts that a watch saw no wrong source, and saw `mustSee` at least once (if given). */
export function assertWatch(result: SourceWatchResult, what: string, mustSee?: string): void {
  assert.deepEqual(result.wrong, [], `${what}: traffic left with a source it must never have`);
  if (mustSee !== undefined)
    assert.ok(
      (result.seen.get(mustSee) ?? 0) > 0,
      `${what}: ${mustSee} was never seen (${JSON.stringify([...result.seen])})`,
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
  const started = Date.now();
  const deadline = started + timeoutMs;
  let last: string | undefined;
  for (;;) {
    last = await stack.cluster
      .whoami(pod.net.ns, dst, { timeoutMs: 1500 })
      .catch((err: Error) => `(failed: ${err.message.trim().split('\n').pop() ?? ''})`);
    if (last === want) break;
    trace(`${what}: ${pod.name} → ${dst} seen as ${last}, want ${want} (${Date.now() - started} ms)`);
    if (Date.now() > deadline)
      throw new Error(
        `${what}: ${pod.name} (${pod.net.ip} on ${pod.node}) → ${dst} still seen as ${last} after ${timeoutMs} ms, want ${want}\n` +
          (await describeCluster(stack)),
      );
    await sleep(150);
  }
  trace(`${what}: ${pod.name} → ${dst} seen as ${want} after ${Date.now() - started} ms`);
  await assertSeenAs(stack, pod, dst, want, what);
}

/** KSEIP_E2E_TRACE=1 prints each wait's progress and how long it took (never asserted). */
export const trace = (line: string): void => {
  if (process.env.KSEIP_E2E_TRACE === '1')
    process.stderr.write(`[e2e ${new Date().toISOString()}] ${line}\n`);
};

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
  return waitForKernelState(
    stack,
    what,
    (kernels, picked) => kernels.every((k, i) => check(k, picked[i]!)),
    nodes,
    timeoutMs,
  );
}

/** Polls the kernels of `nodes` (default: every live node) until `check` holds for them together. */
export async function waitForKernelState(
  stack: Stack,
  what: string,
  check: (kernels: NodeKernel[], nodes: NetNode[]) => boolean,
  nodes?: () => NetNode[],
  timeoutMs = CONVERGE_MS,
): Promise<NodeKernel[]> {
  const started = Date.now();
  const deadline = started + timeoutMs;
  const pick = nodes ?? (() => stack.cluster.nodes().filter((n) => !n.killed));
  for (;;) {
    const picked = pick();
    const kernels = await Promise.all(picked.map((n) => readNodeKernel(stack.cluster, n)));
    if (check(kernels, picked)) {
      trace(`kernels: ${what} after ${Date.now() - started} ms`);
      return kernels;
    }
    if (Date.now() > deadline)
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}:\n${kernels.map(describeNodeKernel).join('\n')}\n` +
          stack.controlPlane.describe(10),
      );
    await sleep(200);
  }
}

/**
 * Waits until exactly one live node holds each of `held` as an address and none holds any of
 * `gone`; returns the holder of each of `held`, in order. Polled, because a gateway on a loaded
 * machine may withdraw its IP for a moment when it fences itself.
 */
export async function waitForHolders(
  stack: Stack,
  held: readonly string[],
  gone: readonly string[] = [],
): Promise<string[]> {
  const kernels = await waitForKernelState(
    stack,
    `${held.join(', ') || 'nothing'} held by exactly one node, ${gone.join(', ') || 'nothing'} by none`,
    (ks) =>
      held.every((ip) => selectAddressHolders(ks, ip).length === 1) &&
      gone.every((ip) => selectAddressHolders(ks, ip).length === 0),
  );
  return held.map((ip) => selectAddressHolders(kernels, ip)[0]!);
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

export interface PolicyCondition {
  readonly type: string;
  readonly status: string;
  readonly reason: string;
  readonly message: string;
}

/** A policy's status conditions as the kube-apiserver holds them (none while it has no status). */
export async function policyConditions(
  stack: Stack,
  kind: 'seip' | 'cseip',
  name: string,
  namespace = 'default',
): Promise<PolicyCondition[]> {
  const out = await stack.kubectl([
    'get',
    kind,
    name,
    ...(kind === 'seip' ? ['-n', namespace] : []),
    '-o',
    'json',
  ]);
  return (JSON.parse(out) as { status?: { conditions?: PolicyCondition[] } }).status?.conditions ?? [];
}

/** Polls a StaticEgressIP's status on the kube-apiserver until `ok` holds for its conditions. */
export async function waitForConditions(
  stack: Stack,
  name: string,
  what: string,
  ok: (byType: ReadonlyMap<string, PolicyCondition>) => boolean,
  namespace = 'default',
): Promise<Map<string, PolicyCondition>> {
  const deadline = Date.now() + CONVERGE_MS;
  let last = new Map<string, PolicyCondition>();
  for (;;) {
    last = new Map((await policyConditions(stack, 'seip', name, namespace)).map((c) => [c.type, c]));
    if (ok(last)) return last;
    if (Date.now() > deadline)
      throw new Error(
        `${what}: seip ${name} conditions still ${JSON.stringify([...last.values()])}\n` +
          (await describeCluster(stack)),
      );
    await sleep(200);
  }
}
