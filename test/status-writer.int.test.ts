// The status writer (src/status/) end to end against a real kube-apiserver and a real Kafka broker,
// with the real watcher, projector and liveness as child processes (src/devenv/control-plane.ts).
// The test plays the nodes' agents: it heartbeats for two nodes (so liveness declares them back)
// and acks every node-rules record as an agent that applied it would. Given the CRDs, a pool and
// the seed manifest (documentation IPs), then `kubectl get seip` shows the egress IP, the gateway
// and Ready=True, and `kubectl describe` shows the conditions and a GatewayAssigned Event. A
// second policy claiming the same egress IP gets Conflict=True and a ConflictDetected Event,
// while the first stays Ready. Policies that would do nothing (a missing Service, a selector that
// matches no pod, exceptions that cover every destination) show why in their conditions and are
// not Ready (issue 12, finding 6) until the Service appears. Pools get status (issue 12, finding 5): which policy uses which of
// their addresses, Accepted=False for a newer pool that overlaps an older one, and Conflict=True
// when a policy asks for an address from a namespace the pool does not admit. A policy deleted and re-created with the same name and spec while
// the watcher is down gets its status again (issue 12, finding 4: decisions name the uid, and the
// writer's memory is per uid). A status writer that starts while an input topic ends in an aborted
// transaction (the projector died mid-write) still catches up and becomes ready.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { Consumer, Kafka, Producer } from 'kafkajs';
import { startApiServer, type ApiServer } from '../src/devenv/apiserver.ts';
import { createTopics, startKafka, type KafkaBroker, kafkaClient } from '../src/devenv/kafka.ts';
import { decodeNodeRules } from '../src/contracts/node-rules.ts';
import type { Heartbeat, NodeApplyStatus } from '../src/contracts/node-reports.ts';
import { TOPICS } from '../src/contracts/topics.ts';
import { startControlPlane, type ControlPlane } from '../src/devenv/control-plane.ts';
import { STATUS_TEST_NODES, createProjectTopics, seedStatusTestCluster } from './support/status-cluster.ts';
import { waitFor } from './support/watcher-harness.ts';
import { createStatusWriter } from '../src/status/status-writer.ts';
import { createDeadLetterSink } from '../src/lib/dead-letter.ts';
import { createLogger } from '../src/lib/log.ts';

const EGRESS_IP = '198.51.100.10';
const NODES = STATUS_TEST_NODES;

let api: ApiServer;
let broker: KafkaBroker;
let kafka: Kafka;
let producer: Producer;
let agentConsumer: Consumer | undefined;
let plane: ControlPlane | undefined;
let heartbeatTimer: NodeJS.Timeout | undefined;
const acked: NodeApplyStatus[] = [];

async function kubectl(args: readonly string[], stdin?: string): Promise<string> {
  const r = await api.kubectl(args, stdin);
  assert.equal(r.code, 0, `kubectl ${args.join(' ')} failed: ${r.stderr}`);
  return r.stdout;
}

interface Cond {
  type: string;
  status: string;
  reason: string;
  message: string;
  lastTransitionTime: string;
}
interface PolicyJson {
  metadata?: { uid?: string };
  status?: {
    egressIPs?: string;
    activeGateways?: string;
    observedGeneration?: number;
    rules?: { activeGateway?: string; programmedNodes?: number; selectedNodes?: number }[];
    conditions?: Cond[];
  };
}

interface PoolJson {
  status?: {
    observedGeneration?: number;
    allocated?: number;
    allocations?: { egressip: string; policy: string }[];
    conditions?: Cond[];
  };
}

async function getPolicy(name: string): Promise<PolicyJson> {
  return JSON.parse(await kubectl(['get', 'seip', name, '-n', 'default', '-o', 'json'])) as PolicyJson;
}
const conditionOf = (p: PolicyJson | PoolJson, type: string): Cond | undefined =>
  p.status?.conditions?.find((c) => c.type === type);

const diagnostics = (): string => plane?.describe() ?? '(control plane not started)';

before(async () => {
  [api, broker] = await Promise.all([startApiServer(), startKafka()]);
  await createProjectTopics(broker.brokers);
  await seedStatusTestCluster(kubectl);

  kafka = kafkaClient(broker.brokers, 'status-writer-int');
  producer = kafka.producer();
  await producer.connect();

  plane = await startControlPlane({
    kubeconfigPath: api.kubeconfigPath,
    brokers: broker.brokers,
    leaseSuffix: String(process.pid),
    // Heartbeats come from this test on a busy machine: generous liveness, no start-up seeding.
    lostAfter: '5s',
    extraArgs: { liveness: ['--blind-after', '2s', '--tick', '100ms', '--seed-window', '0'] },
  });

  // The agents' part: heartbeats (so liveness writes NodeBack), and an ok ack for every
  // node-rules record, as an agent that applied it reports on kseip.node-status.v1.
  const bootId = new Date().toISOString();
  let seq = 0;
  heartbeatTimer = setInterval(() => {
    seq++;
    const messages = NODES.map((n) => {
      const hb: Heartbeat = { schema: 1, node: n.name, sentAt: new Date().toISOString(), seq, bootId };
      return { key: n.name, value: JSON.stringify(hb) };
    });
    producer.send({ topic: TOPICS.heartbeats, messages }).catch(() => undefined);
  }, 200);
  agentConsumer = kafka.consumer({ groupId: `agents-${randomUUID()}`, maxWaitTimeInMs: 100 });
  await agentConsumer.connect();
  await agentConsumer.subscribe({ topic: TOPICS.nodeRules, fromBeginning: true });
  await agentConsumer.run({
    eachMessage: async ({ message }) => {
      const rules = decodeNodeRules(message.value);
      if (rules._tag === 'Left')
        throw new Error(`projector wrote undecodable node rules: ${rules.left.reason}`);
      const ack: NodeApplyStatus = {
        schema: 1,
        node: rules.right.node,
        generation: rules.right.generation,
        ok: true,
        appliedAt: new Date().toISOString(),
        durationMs: 1,
        unchanged: false,
        reason: 'update',
      };
      acked.push(ack);
      await producer.send({
        topic: TOPICS.nodeStatus,
        messages: [{ key: ack.node, value: JSON.stringify(ack) }],
      });
    },
  });

  await waitFor(
    'every control-plane process to be ready',
    async () => {
      for (const p of plane!.components.values()) if (!(await p.ready())) return false;
      return true;
    },
    120_000,
    diagnostics,
  );
});

after(async () => {
  if (heartbeatTimer !== undefined) clearInterval(heartbeatTimer);
  await agentConsumer?.disconnect().catch(() => undefined);
  await plane?.stop().catch(() => undefined);
  await producer?.disconnect().catch(() => undefined);
  await Promise.all([api?.stop(), broker?.stop()]);
});

void describe('status writer against a real API server and Kafka', () => {
  void test('the seed manifest gets its gateway, Ready=True, conditions and a GatewayAssigned Event', async () => {
    await kubectl(
      ['apply', '-f', '-'],
      `apiVersion: staticegressips.nirmata.io/v1alpha1
kind: StaticEgressIPPool
metadata: {name: seed}
spec:
  addresses: [${EGRESS_IP}/32]
`,
    );
    // The seed project's manifest, unchanged except for documentation-range addresses.
    await kubectl(
      ['apply', '-f', '-'],
      `apiVersion: staticegressips.nirmata.io/v1alpha1
kind: StaticEgressIP
metadata: {name: eip, namespace: default}
spec:
  rules:
  - egressip: ${EGRESS_IP}
    service-name: frontend
    cidr: 203.0.113.10/32
`,
    );
    const ready = await waitFor(
      'eip to be Ready',
      async () => {
        const p = await getPolicy('eip');
        return conditionOf(p, 'Ready')?.status === 'True' ? p : undefined;
      },
      120_000,
      () => `${diagnostics()}\nacks: ${JSON.stringify(acked.slice(-6))}`,
    );
    const gateway = ready.status?.rules?.[0]?.activeGateway ?? '';
    assert.ok(
      NODES.some((n) => n.name === gateway),
      `active gateway ${gateway} is one of the nodes`,
    );
    assert.equal(ready.status?.egressIPs, EGRESS_IP);
    assert.equal(ready.status?.activeGateways, gateway);
    assert.equal(ready.status?.observedGeneration, 1);
    assert.equal(ready.status?.rules?.[0]?.selectedNodes, 2);
    assert.equal(ready.status?.rules?.[0]?.programmedNodes, 3, 'two directors and the gateway');
    for (const [type, status] of [
      ['Accepted', 'True'],
      ['PodsSelected', 'True'],
      ['Assigned', 'True'],
      ['Programmed', 'True'],
      ['Conflict', 'False'],
    ] as const)
      assert.equal(conditionOf(ready, type)?.status, status, `${type} is ${status}`);

    const table = await kubectl(['get', 'seip', '-n', 'default']);
    const row = table.split('\n').find((l) => l.startsWith('eip '));
    assert.ok(row !== undefined, table);
    assert.match(
      row,
      new RegExp(`^eip\\s+${EGRESS_IP.replaceAll('.', '\\.')}\\s+${gateway}\\s+True\\s`),
      table,
    );

    const described = await waitFor(
      'kubectl describe to show the GatewayAssigned Event',
      async () => {
        const text = await kubectl(['describe', 'seip', 'eip', '-n', 'default']);
        return /GatewayAssigned/.test(text) && /Events:/.test(text) && text.includes(`now held by ${gateway}`)
          ? text
          : undefined;
      },
      60_000,
      diagnostics,
    );
    for (const type of ['Accepted', 'PodsSelected', 'Assigned', 'Programmed', 'Conflict', 'Ready'])
      assert.match(described, new RegExp(`Type:\\s+${type}`), described);
    assert.ok(
      (await plane!.component('status-writer').metric('kseip_status_writes_total', '{result="written"}'))! >=
        1,
    );
  });

  void test('a second policy with the same egress IP shows Conflict, and the first stays Ready', async () => {
    await kubectl(
      ['apply', '-f', '-'],
      `apiVersion: staticegressips.nirmata.io/v1alpha1
kind: StaticEgressIP
metadata: {name: eip-again, namespace: default}
spec:
  rules:
  - egressip: ${EGRESS_IP}
    service-name: frontend
    cidr: 203.0.113.10/32
`,
    );
    const loser = await waitFor(
      'eip-again to show Conflict=True',
      async () => {
        const p = await getPolicy('eip-again');
        return conditionOf(p, 'Conflict')?.status === 'True' ? p : undefined;
      },
      120_000,
      diagnostics,
    );
    assert.equal(conditionOf(loser, 'Conflict')?.reason, 'EgressIPClaimed');
    assert.match(conditionOf(loser, 'Conflict')?.message ?? '', /default\/eip#0/);
    assert.equal(conditionOf(loser, 'Ready')?.status, 'False');
    assert.equal(conditionOf(loser, 'Assigned')?.reason, 'ConflictLost');

    const winner = await getPolicy('eip');
    assert.equal(conditionOf(winner, 'Ready')?.status, 'True', JSON.stringify(winner.status));
    assert.equal(conditionOf(winner, 'Conflict')?.status, 'False');

    const table = await kubectl(['get', 'seip', '-n', 'default']);
    assert.match(table, /^eip-again\s+198\.51\.100\.10\s+<none>\s+False\s/m, table);
    assert.match(table, /^eip\s+198\.51\.100\.10\s+node-[ab]\s+True\s/m, table);

    await waitFor(
      'kubectl describe to show the ConflictDetected Event',
      async () => {
        const text = await kubectl(['describe', 'seip', 'eip-again', '-n', 'default']);
        return /ConflictDetected/.test(text) && /Reason:\s+EgressIPClaimed/.test(text) ? text : undefined;
      },
      60_000,
      diagnostics,
    );
  });

  void test('policies that would do nothing are not Ready: a missing Service, a selector that matches nothing, exceptions that cover every destination', async () => {
    // Issue 12, finding 6: each of these was Ready=True with 0 selected pods.
    await kubectl(
      ['apply', '-f', '-'],
      `apiVersion: staticegressips.nirmata.io/v1alpha1
kind: StaticEgressIPPool
metadata: {name: idle}
spec:
  addresses: [198.51.100.30-198.51.100.32]
`,
    );
    const policy = (name: string, ip: string, pods: string, destination: string): string =>
      `apiVersion: staticegressips.nirmata.io/v1alpha1
kind: StaticEgressIP
metadata: {name: ${name}, namespace: default}
spec:
  rules:
  - egressip: ${ip}
    ${pods}
    ${destination}
`;
    await kubectl(
      ['apply', '-f', '-'],
      [
        policy('idle-service', '198.51.100.30', 'service-name: checkout', 'cidr: 203.0.113.30/32'),
        policy(
          'idle-selector',
          '198.51.100.31',
          'podSelector: {matchLabels: {app: nobody}}',
          'cidr: 203.0.113.31/32',
        ),
        policy(
          'idle-excepted',
          '198.51.100.32',
          'podSelector: {matchLabels: {app: frontend}}',
          'cidr: 203.0.113.0/24\n    exceptions: [203.0.113.0/25, 203.0.113.128/25]',
        ),
      ].join('---\n'),
    );
    const settled = (name: string, type: string, reason: string) =>
      waitFor(
        `${name} to show ${type} reason ${reason}`,
        async () => {
          const p = await getPolicy(name);
          return conditionOf(p, type)?.reason === reason ? p : undefined;
        },
        90_000,
        diagnostics,
      );
    const service = await settled('idle-service', 'PodsSelected', 'ServiceNotFound');
    assert.equal(conditionOf(service, 'PodsSelected')?.status, 'False');
    assert.match(
      conditionOf(service, 'PodsSelected')?.message ?? '',
      /Service default\/checkout does not exist/,
    );
    assert.equal(conditionOf(service, 'Ready')?.status, 'False');
    assert.equal(conditionOf(service, 'Ready')?.reason, 'NoPodsSelected');
    assert.equal(service.status?.rules?.[0]?.selectedNodes, 0);

    const selector = await settled('idle-selector', 'PodsSelected', 'NoPodsSelected');
    assert.match(
      conditionOf(selector, 'PodsSelected')?.message ?? '',
      /podSelector matches no running pod in namespace default/,
    );
    assert.equal(conditionOf(selector, 'Ready')?.status, 'False');

    const excepted = await settled('idle-excepted', 'Accepted', 'NoDestinations');
    assert.equal(conditionOf(excepted, 'Accepted')?.status, 'False');
    assert.equal(conditionOf(excepted, 'Ready')?.reason, 'NotAccepted');

    const table = await kubectl(['get', 'seip', '-n', 'default']);
    for (const name of ['idle-service', 'idle-selector', 'idle-excepted'])
      assert.match(table, new RegExp(`^${name}\\s.*\\sFalse\\s`, 'm'), table);

    // The Service appears and selects the frontend pods: the policy becomes Ready.
    await kubectl(
      ['apply', '-f', '-'],
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name: 'checkout', namespace: 'default' },
        spec: { selector: { app: 'frontend' }, ports: [{ port: 80 }] },
      }),
    );
    const ready = await settled('idle-service', 'Ready', 'Ready');
    assert.equal(conditionOf(ready, 'PodsSelected')?.status, 'True');
    assert.equal(conditionOf(ready, 'PodsSelected')?.message, '2 pod(s) selected');
  });

  void test('pools get status: allocations, Accepted=False for an overlap, Conflict=True for a namespace not admitted', async () => {
    const getPool = async (name: string): Promise<PoolJson> =>
      JSON.parse(await kubectl(['get', 'seippool', name, '-o', 'json'])) as PoolJson;
    const poolWhen = (name: string, what: string, ok: (p: PoolJson) => boolean) =>
      waitFor(
        `pool ${name} ${what}`,
        async () => {
          const p = await getPool(name);
          return ok(p) ? p : undefined;
        },
        90_000,
        diagnostics,
      );

    // The seed pool: its one address is used by default/eip (eip-again lost the claim).
    const seed = await poolWhen('seed', 'to show its allocation', (p) => p.status?.allocated === 1);
    assert.deepEqual(seed.status?.allocations, [{ egressip: EGRESS_IP, policy: 'default/eip' }]);
    assert.equal(seed.status?.observedGeneration, 1);
    for (const [type, status] of [
      ['Accepted', 'True'],
      ['Conflict', 'False'],
      ['Ready', 'True'],
    ] as const)
      assert.equal(conditionOf(seed, type)?.status, status, `${type} is ${status}`);

    // A newer pool over the seed's address loses although its name sorts first: the older
    // creationTimestamp keeps the address, and the newcomer governs nothing.
    await kubectl(
      ['apply', '-f', '-'],
      `apiVersion: staticegressips.nirmata.io/v1alpha1
kind: StaticEgressIPPool
metadata: {name: a-overlap}
spec:
  addresses: [198.51.100.8/29]
`,
    );
    const overlap = await poolWhen(
      'a-overlap',
      'to be Accepted=False',
      (p) => conditionOf(p, 'Accepted')?.status === 'False',
    );
    assert.equal(conditionOf(overlap, 'Accepted')?.reason, 'Overlaps');
    assert.match(
      conditionOf(overlap, 'Accepted')?.message ?? '',
      /198\.51\.100\.8\/29 overlaps .* of pool seed/,
    );
    assert.equal(conditionOf(overlap, 'Ready')?.status, 'False');
    assert.equal(overlap.status?.allocated, 0);
    const stillSeed = await getPool('seed');
    assert.equal(conditionOf(stillSeed, 'Accepted')?.status, 'True');
    assert.equal(stillSeed.status?.allocated, 1);
    assert.equal(conditionOf(await getPolicy('eip'), 'Ready')?.status, 'True', 'the policy keeps its IP');

    // A pool for tenant=blue only, asked for from namespace default (no such label).
    await kubectl(
      ['apply', '-f', '-'],
      `apiVersion: staticegressips.nirmata.io/v1alpha1
kind: StaticEgressIPPool
metadata: {name: blue-only}
spec:
  addresses: [198.51.100.40/32]
  namespaceSelector: {matchLabels: {tenant: blue}}
---
apiVersion: staticegressips.nirmata.io/v1alpha1
kind: StaticEgressIP
metadata: {name: eip-not-admitted, namespace: default}
spec:
  rules:
  - egressip: 198.51.100.40
    service-name: frontend
    cidr: 203.0.113.40/32
`,
    );
    const refused = await poolWhen(
      'blue-only',
      'to show Conflict=True',
      (p) => conditionOf(p, 'Conflict')?.status === 'True',
    );
    assert.equal(conditionOf(refused, 'Conflict')?.reason, 'NamespaceNotAdmitted');
    assert.match(
      conditionOf(refused, 'Conflict')?.message ?? '',
      /StaticEgressIP default\/eip-not-admitted asks for 198\.51\.100\.40 from namespace default/,
    );
    assert.equal(conditionOf(refused, 'Accepted')?.status, 'True');
    assert.equal(refused.status?.allocated, 0);

    const table = await kubectl(['get', 'seippool']);
    assert.match(table, /^seed\s+198\.51\.100\.10\/32\s+1\s+True\s/m, table);
    assert.match(table, /^a-overlap\s+198\.51\.100\.8\/29\s+0\s+False\s/m, table);
    assert.match(table, /^blue-only\s+198\.51\.100\.40\/32\s+0\s+False\s/m, table);
  });

  void test('a policy deleted and re-created with the same name and spec while the watcher is down gets its status again', async () => {
    const renewIP = '198.51.100.20';
    const manifest = `apiVersion: staticegressips.nirmata.io/v1alpha1
kind: StaticEgressIP
metadata: {name: eip-renew, namespace: default}
spec:
  rules:
  - egressip: ${renewIP}
    service-name: frontend
    cidr: 203.0.113.20/32
`;
    await kubectl(
      ['apply', '-f', '-'],
      `apiVersion: staticegressips.nirmata.io/v1alpha1
kind: StaticEgressIPPool
metadata: {name: renew}
spec:
  addresses: [${renewIP}/32]
`,
    );
    const readyFor = (uid?: string) =>
      waitFor(
        `eip-renew${uid === undefined ? '' : ` (uid ${uid})`} to be Ready`,
        async () => {
          const p = await getPolicy('eip-renew');
          const fits = uid === undefined || p.metadata?.uid === uid;
          return fits && conditionOf(p, 'Ready')?.status === 'True' ? p : undefined;
        },
        90_000,
        diagnostics,
      );
    await kubectl(['apply', '-f', '-'], manifest);
    const first = await readyFor();
    // While the watcher is down (a rollout), so that the log never sees the delete: the next
    // watcher's relist shows the same name and spec under another uid. Only the uid tells the
    // projector and the status writer that this object has no status yet.
    await plane!.component('watcher').stop();
    await kubectl(['delete', 'seip', 'eip-renew', '-n', 'default', '--wait=true']);
    await kubectl(['apply', '-f', '-'], manifest);
    const again = await getPolicy('eip-renew');
    const uid = again.metadata?.uid ?? '';
    assert.notEqual(uid, first.metadata?.uid, 'the re-created policy is another object');
    await plane!.restartComponent('watcher');
    const renewed = await readyFor(uid);
    assert.equal(renewed.status?.egressIPs, renewIP);
    assert.equal(renewed.status?.observedGeneration, 1);
  });

  void test('a status writer that starts while its input ends in an aborted transaction catches up and becomes ready', async () => {
    // Topics of its own, so that the aborted transaction (a record and its abort marker) is all
    // there is: a fetch of it delivers no message at all, which is what the writer must count.
    const run = randomUUID().slice(0, 8);
    const topics = {
      decisions: `abort-${run}.decisions`,
      nodeRules: `abort-${run}.node-rules`,
      nodeStatus: `abort-${run}.node-status`,
    };
    await createTopics(
      broker.brokers,
      Object.values(topics).map((topic) => ({ topic, config: {} })),
    );
    const tx = kafka.producer({ transactionalId: `abort-${run}`, idempotent: true, maxInFlightRequests: 1 });
    await tx.connect();
    try {
      const t = await tx.transaction();
      await t.send({ topic: topics.decisions, messages: [{ key: 'default/never', value: '{}' }] });
      await t.abort();
    } finally {
      await tx.disconnect();
    }
    const admin = kafka.admin();
    await admin.connect();
    const [end] = await admin.fetchTopicOffsets(topics.decisions).finally(() => admin.disconnect());
    assert.equal(end?.high, '2', 'the decisions topic holds the aborted record and its marker');

    const log = createLogger('status-writer', { test: 'aborted-transaction' });
    const writer = createStatusWriter({
      kafka,
      kubeConfig: api.kubeConfig,
      topics,
      minIntervalMs: 100,
      eventMaxAgeMs: 60_000,
      identity: `abort-${run}`,
      deadLetters: createDeadLetterSink({ producer, component: 'status-writer', log }),
      log,
    });
    let failure: unknown;
    const running = writer.run().catch((err: unknown) => (failure = err));
    try {
      await waitFor(
        'the status writer to catch up with the aborted transaction',
        () => writer.ready(),
        60_000,
        () =>
          failure === undefined
            ? 'not caught up'
            : `run failed: ${failure instanceof Error ? failure.message : JSON.stringify(failure)}`,
      );
    } finally {
      await writer.stop();
      await Promise.race([running, new Promise((r) => setTimeout(r, 10_000))]);
    }
    assert.equal(failure, undefined);
  });
});
