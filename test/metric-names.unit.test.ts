// The naming rules of every metric the components register, so that a new metric that drifts
// from them fails here rather than in a dashboard:
// - kseip_<component>_ prefix, the component being the one that registers it (kseip_build_info,
//   one gauge shared by all with a component label, is the only exception);
// - counters end in _total, and nothing else does;
// - error counters end in _errors_total (never _failures_total);
// - time is in seconds: durations, latencies, ages end in _seconds, no _ms/_milliseconds/_minutes;
// - a lag says its unit: _seconds, _records (offsets) or _generations.
// Each component's set is what its module registers: a fresh registry for the ones that take one,
// the default registry's growth on import for the ones that register at import.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Registry, register, type MetricObjectWithValues, type MetricValue } from 'prom-client';
import { createAgentMetrics } from '../src/agents/metrics.ts';
import { BUILD_INFO_METRIC, registerBuildInfo } from '../src/lib/build-info.ts';
import { createLivenessMetrics } from '../src/liveness/liveness.ts';

type Metric = MetricObjectWithValues<MetricValue<string>>;

async function registeredOnImport(load: () => Promise<unknown>): Promise<Metric[]> {
  const before = new Set((await register.getMetricsAsJSON()).map((m) => m.name));
  await load();
  return (await register.getMetricsAsJSON()).filter((m) => !before.has(m.name));
}

async function inRegistry(fill: (r: Registry) => void): Promise<Metric[]> {
  const r = new Registry();
  fill(r);
  return r.getMetricsAsJSON();
}

async function componentMetrics(): Promise<Record<string, Metric[]>> {
  return {
    agent: await inRegistry((r) => createAgentMetrics(r, () => 0)),
    liveness: await inRegistry((r) => createLivenessMetrics(r, () => ({}))),
    projector: await registeredOnImport(() => import('../src/projector/metrics.ts')),
    watcher: await registeredOnImport(() => import('../src/watcher/metrics.ts')),
    status: await registeredOnImport(() => import('../src/status/status-writer.ts')),
  };
}

/** The rules a metric of `component` breaks (empty when it keeps them all). */
function namingViolations(component: string, m: { name: string; type: string }): string[] {
  const v: string[] = [];
  const n = m.name;
  if (!n.startsWith(`kseip_${component}_`)) v.push(`not prefixed kseip_${component}_`);
  if (!/^[a-z][a-z0-9_]*$/.test(n)) v.push('not snake_case');
  if (m.type === 'counter' && !n.endsWith('_total')) v.push('a counter not ending in _total');
  if (m.type !== 'counter' && n.endsWith('_total')) v.push(`a ${m.type} ending in _total`);
  if (/_failures?(_|$)|_failed(_|$)/.test(n)) v.push('failures: errors are counted as _errors_total');
  if (/_errors?(_|$)/.test(n) && !n.endsWith('_errors_total'))
    v.push('an error metric not ending in _errors_total');
  if (/_(ms|millis|milliseconds|minutes|hours|us|micros|nanoseconds)(_|$)/.test(n))
    v.push('time not in seconds');
  if (/_(duration|latency|age|uptime|elapsed)(_|$)/.test(n) && !/_seconds(_total)?$/.test(n))
    v.push('a time not ending in _seconds');
  if (/_lag(_|$)/.test(n) && !/_lag_(seconds|records|generations)$/.test(n))
    v.push('a lag without its unit (_seconds, _records, _generations)');
  return v;
}

void describe('metric names', () => {
  void test('every metric of every component keeps the naming rules', async () => {
    const all = await componentMetrics();
    const broken: string[] = [];
    for (const [component, metrics] of Object.entries(all)) {
      assert.ok(metrics.length > 0, `${component} registers metrics`);
      for (const m of metrics) {
        const v = namingViolations(component, { name: m.name, type: String(m.type) });
        if (v.length > 0) broken.push(`${m.name} (${component}): ${v.join('; ')}`);
      }
    }
    assert.deepEqual(broken, []);
  });

  void test('the rules catch the drift they exist for', () => {
    const rules = (name: string, type = 'counter') => namingViolations('agent', { name, type });
    assert.deepEqual(rules('kseip_agent_apply_errors_total'), []);
    assert.deepEqual(rules('kseip_agent_lag_generations', 'gauge'), []);
    assert.ok(rules('kseip_projector_events_total').length > 0, 'another component prefix');
    assert.ok(rules('kseip_agent_applies').length > 0, 'counter without _total');
    assert.ok(rules('kseip_agent_fenced_total', 'gauge').length > 0, 'gauge with _total');
    assert.ok(rules('kseip_agent_apply_failures_total').length > 0, 'failures suffix');
    assert.ok(rules('kseip_agent_apply_duration_ms', 'histogram').length > 0, 'milliseconds');
    assert.ok(rules('kseip_agent_apply_duration', 'histogram').length > 0, 'duration without unit');
    assert.ok(rules('kseip_agent_generation_lag', 'gauge').length > 0, 'lag without unit');
  });

  void test('kseip_build_info is 1 with version, commit and component, once per component in a shared registry', async () => {
    const r = new Registry();
    registerBuildInfo(r, 'watcher', { version: '0.1.0', commit: 'abc1234' });
    registerBuildInfo(r, 'projector', { version: '0.1.0', commit: 'abc1234' });
    registerBuildInfo(r, 'projector', { version: '0.1.0', commit: 'abc1234' });
    const [info, ...rest] = await r.getMetricsAsJSON();
    assert.equal(rest.length, 0);
    assert.equal(info?.name, BUILD_INFO_METRIC);
    assert.equal(info?.type, 'gauge');
    assert.deepEqual(
      info?.values.map((v) => ({ labels: v.labels, value: v.value })),
      [
        { labels: { version: '0.1.0', commit: 'abc1234', component: 'watcher' }, value: 1 },
        { labels: { version: '0.1.0', commit: 'abc1234', component: 'projector' }, value: 1 },
      ],
    );
  });
});
