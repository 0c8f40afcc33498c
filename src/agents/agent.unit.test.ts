// The agent runtime (./agent.ts) with a fake dataplane, a hand-driven feed, fake Kafka senders
// and a manual clock: catch-up before apply, the fencing timer, recovery, drift, acks, stop.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import type { Heartbeat, NodeApplyStatus, UnprogrammableRule } from '../contracts/node-reports.ts';
import { NODE_RULES_SCHEMA, type NodeRules } from '../contracts/node-rules.ts';
import { createManualClock } from '../lib/clock.ts';
import { createAgent } from './agent.ts';
import { createAgentMetrics } from './metrics.ts';
import { FakeDataplane, FakeFeed, settle } from '../../test/support/agent-fakes.ts';

const log = pino({ level: 'silent' });

function rules(generation: number, ips = ['198.51.100.10']): NodeRules {
  return {
    schema: NODE_RULES_SCHEMA,
    node: 'node-a',
    generation,
    nodeIP: '192.0.2.1',
    steers: [],
    egressIPs: ips.map((egressIP, i) => ({ slot: i + 1, egressIP })),
  };
}

/** Kafka as the agent sees it: `up` decides whether heartbeats are acknowledged. */
class FakeKafka {
  up = true;
  readonly heartbeats: Heartbeat[] = [];
  readonly statuses: NodeApplyStatus[] = [];
  send(heartbeat: Heartbeat): Promise<void> {
    this.heartbeats.push(heartbeat);
    return this.up ? Promise.resolve() : Promise.reject(new Error('broker unreachable'));
  }
}

function setup() {
  const clock = createManualClock(1_000);
  const dataplane = new FakeDataplane();
  const feed = new FakeFeed();
  const kafka = new FakeKafka();
  const registry = new Registry();
  let lag = (): number => 0;
  const metrics = createAgentMetrics(registry, () => lag());
  const agent = createAgent({
    node: 'node-a',
    bootId: 'boot-1',
    dataplane,
    createFeed: (onDesired) => {
      feed.onDesired = onDesired;
      return feed;
    },
    heartbeats: { send: (hb) => kafka.send(hb) },
    status: { send: (s) => kafka.statuses.push(s) },
    clock,
    metrics,
    log,
    heartbeatIntervalMs: 100,
    fenceAfterMs: 250,
    driftIntervalMs: 5_000,
    fenceCheckIntervalMs: 10,
  });
  lag = () => agent.generationLag();
  /** Advances time in 10 ms steps, letting promise callbacks run between steps. */
  const elapse = async (ms: number): Promise<void> => {
    for (let t = 0; t < ms; t += 10) {
      clock.advance(Math.min(10, ms - t));
      await settle(2);
    }
  };
  return { clock, dataplane, feed, kafka, agent, metrics, registry, elapse };
}

void describe('agent runtime', () => {
  void test('given the feed has not caught up, nothing is applied; then the latest state is applied and acked', async () => {
    const { dataplane, feed, kafka, agent, elapse } = setup();
    agent.start();
    await elapse(1_000);
    assert.deepEqual(dataplane.calls, []);
    assert.ok(!agent.ready());
    feed.deliver(rules(7));
    await agent.idle();
    assert.deepEqual(dataplane.calls, ['reconcile g=7 ips=198.51.100.10']);
    assert.ok(agent.ready());
    assert.deepEqual(
      kafka.statuses.map((s) => [s.node, s.generation, s.ok, s.unchanged, s.reason]),
      [['node-a', 7, true, false, 'startup']],
    );
    await agent.stop({ uninstall: false });
  });

  void test('an ack carries the rules the dataplane left out, and only then has the field', async () => {
    const { dataplane, feed, kafka, agent } = setup();
    agent.start();
    feed.deliver(rules(7));
    await agent.idle();
    const left: UnprogrammableRule = {
      role: 'steer',
      slot: 2,
      egressIP: '2001:db8::10',
      sources: ['t/v6#0'],
      reason: 'egress IP is not IPv4',
    };
    dataplane.unprogrammable = [left];
    feed.deliver(rules(8));
    await agent.idle();
    assert.deepEqual(
      kafka.statuses.map((s) => [s.generation, s.ok, s.unprogrammable]),
      [
        [7, true, undefined],
        [8, true, [left]],
      ],
    );
    await agent.stop({ uninstall: false });
  });

  void test('heartbeats go out every interval with increasing seq and the boot id', async () => {
    const { kafka, agent, elapse } = setup();
    agent.start();
    await elapse(500);
    assert.ok(
      kafka.heartbeats.length >= 5 && kafka.heartbeats.length <= 6,
      `${kafka.heartbeats.length} heartbeats`,
    );
    assert.deepEqual(
      kafka.heartbeats.map((h) => h.seq),
      kafka.heartbeats.map((_, i) => i),
    );
    assert.ok(kafka.heartbeats.every((h) => h.node === 'node-a' && h.bootId === 'boot-1'));
    await agent.stop({ uninstall: false });
  });

  void test('when Kafka stops acknowledging heartbeats, the agent withdraws its egress IPs after the fence bound, once', async () => {
    const { dataplane, feed, kafka, agent, elapse, clock } = setup();
    agent.start();
    feed.deliver(rules(3));
    await elapse(300);
    kafka.up = false;
    // The last acknowledged heartbeat was sent at most 100 ms ago; the fence must fire at most
    // 250 ms after that send, and not before 250 ms of silence.
    const cutAt = clock.now();
    await elapse(140);
    assert.ok(!dataplane.calls.includes('withdraw'), 'not fenced before the bound');
    await elapse(220);
    assert.deepEqual(
      dataplane.calls.filter((c) => c === 'withdraw'),
      ['withdraw'],
    );
    assert.ok(agent.fenced());
    assert.ok(clock.now() - cutAt <= 360);
    await elapse(1_000);
    assert.equal(dataplane.calls.filter((c) => c === 'withdraw').length, 1, 'withdrawn once');
    await agent.stop({ uninstall: false });
  });

  void test('while fenced, new states are applied without egress IPs', async () => {
    const { dataplane, feed, kafka, agent, elapse } = setup();
    agent.start();
    feed.deliver(rules(3));
    await elapse(100);
    kafka.up = false;
    await elapse(500);
    feed.deliver(rules(4));
    await agent.idle();
    assert.equal(dataplane.calls.at(-1), 'reconcile g=4 ips=-');
    await agent.stop({ uninstall: false });
  });

  void test('when heartbeats are acknowledged again, it catches up to the log end, applies the full state, then unfences', async () => {
    const { dataplane, feed, kafka, agent, elapse, registry } = setup();
    agent.start();
    feed.deliver(rules(3));
    await elapse(100);
    kafka.up = false;
    await elapse(500);
    assert.ok(agent.fenced());
    kafka.up = true;
    await elapse(200);
    await agent.idle();
    assert.equal(feed.syncCalls, 1);
    assert.ok(!agent.fenced());
    assert.deepEqual(dataplane.calls, [
      'reconcile g=3 ips=198.51.100.10',
      'withdraw',
      'reconcile g=3 ips=198.51.100.10',
    ]);
    const text = await registry.metrics();
    assert.match(text, /kseip_agent_fenced 0/);
    assert.match(text, /kseip_agent_fences_total 1/);
    await agent.stop({ uninstall: false });
  });

  void test('given an agent that never reaches Kafka at start, it fences (withdrawing what a previous process left)', async () => {
    const { dataplane, kafka, agent, elapse } = setup();
    kafka.up = false;
    agent.start();
    await elapse(300);
    assert.deepEqual(dataplane.calls, ['withdraw']);
    assert.ok(agent.fenced());
    await agent.stop({ uninstall: false });
  });

  void test('every drift interval the kernel is checked, and drift is repaired and counted', async () => {
    const { dataplane, feed, agent, elapse, registry } = setup();
    agent.start();
    feed.deliver(rules(3));
    await agent.idle();
    dataplane.drift = true;
    await elapse(5_000);
    await agent.idle();
    assert.deepEqual(dataplane.calls, [
      'reconcile g=3 ips=198.51.100.10',
      'drift',
      'reconcile g=3 ips=198.51.100.10',
    ]);
    assert.match(await registry.metrics(), /kseip_agent_drift_repairs_total 1/);
    await agent.stop({ uninstall: false });
  });

  void test('generation lag is the newest seen generation minus the applied one', async () => {
    const { dataplane, feed, agent } = setup();
    agent.start();
    feed.deliver(rules(3));
    await agent.idle();
    assert.equal(agent.generationLag(), 0);
    dataplane.hold = true;
    feed.deliver(rules(9));
    await settle();
    assert.equal(agent.generationLag(), 6);
    dataplane.releaseNext();
    await agent.idle();
    assert.equal(agent.generationLag(), 0);
    await agent.stop({ uninstall: false });
  });

  void test('a failed apply is acked with its error and makes the agent unready', async () => {
    const { dataplane, feed, kafka, agent } = setup();
    agent.start();
    dataplane.failures.push(Object.assign(new Error('nft: syntax error'), { retriable: false }));
    feed.deliver(rules(3));
    await agent.idle();
    assert.ok(!agent.ready());
    assert.deepEqual(
      kafka.statuses.map((s) => [s.generation, s.ok, s.error]),
      [[3, false, 'nft: syntax error']],
    );
    await agent.stop({ uninstall: false });
  });

  void test('a plain stop leaves the dataplane alone; an uninstall removes everything', async () => {
    const plain = setup();
    plain.agent.start();
    plain.feed.deliver(rules(3));
    await plain.agent.idle();
    await plain.agent.stop({ uninstall: false });
    assert.ok(plain.feed.stopped);
    assert.ok(!plain.dataplane.calls.includes('removeAll'));

    const uninstall = setup();
    uninstall.agent.start();
    uninstall.feed.deliver(rules(3));
    await uninstall.agent.idle();
    await uninstall.agent.stop({ uninstall: true });
    assert.equal(uninstall.dataplane.calls.at(-1), 'removeAll');
  });

  void test('after stop no heartbeat is sent', async () => {
    const { kafka, agent, elapse } = setup();
    agent.start();
    await elapse(200);
    await agent.stop({ uninstall: false });
    const sent = kafka.heartbeats.length;
    await elapse(500);
    assert.equal(kafka.heartbeats.length, sent);
  });
});
