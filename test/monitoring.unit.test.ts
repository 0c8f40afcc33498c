// The monitoring kit (k8s/monitoring) is consistent with itself and with the code:
// - prometheusrule.yaml holds exactly the groups of kseip.rules.yaml (KSEIP_UPDATE_SNAPSHOTS=1
//   regenerates it from the plain file);
// - every kseip_* series the rules and the dashboard query is one the code registers with
//   prom-client (read from src/, histogram suffixes included) or one kube-state-metrics makes
//   from the config shipped next to them;
// - the ServiceMonitor scrapes the port every metrics Service of k8s/base names `metrics`, and
//   each component has one.
// Pure file reads; promtool itself runs in test/monitoring-rules.int.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parse, parseAllDocuments, stringify } from 'yaml';

const root = path.resolve(import.meta.dirname, '..');
const kit = path.join(root, 'k8s/monitoring');
const read = (file: string): string => readFileSync(path.join(kit, file), 'utf8');

interface Rule {
  alert: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
interface RulesFile {
  groups: { name: string; rules: Rule[] }[];
}

const rulesFile = parse(read('kseip.rules.yaml')) as RulesFile;

/** The PrometheusRule text kseip.rules.yaml implies (header comment + the same groups). */
function renderPrometheusRule(): string {
  const header = read('prometheusrule.yaml')
    .split('\n')
    .filter((l) => l.startsWith('#'))
    .join('\n');
  const object = {
    apiVersion: 'monitoring.coreos.com/v1',
    kind: 'PrometheusRule',
    metadata: { name: 'kube-static-egress-ip', namespace: 'kube-static-egress-ip' },
    spec: { groups: rulesFile.groups },
  };
  return `${header}\n${stringify(object, { lineWidth: 0 })}`;
}

/** Every file under src/ that is not a test. */
function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(p);
    return e.name.endsWith('.ts') && !e.name.endsWith('.test.ts') ? [p] : [];
  });
}

/** Series the code exports: prom-client metric names, with _bucket/_sum/_count for histograms. */
function exportedSeries(): Set<string> {
  const names = new Set<string>();
  for (const file of sourceFiles(path.join(root, 'src'))) {
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/new (Counter|Gauge|Histogram|Summary)\(\{\s*name: '(kseip_\w+)'/g)) {
      names.add(m[2]!);
      if (m[1] === 'Histogram' || m[1] === 'Summary')
        for (const suffix of ['_bucket', '_sum', '_count']) names.add(m[2]! + suffix);
    }
  }
  return names;
}

/** kube-state-metrics' names from the shipped custom-resource-state config. */
function kubeStateMetricsSeries(): Set<string> {
  const config = parse(read('kube-state-metrics-crs.yaml')) as {
    spec: { resources: { metricNamePrefix: string; metrics: { name: string }[] }[] };
  };
  return new Set(
    config.spec.resources.flatMap((r) => r.metrics.map((m) => `${r.metricNamePrefix}_${m.name}`)),
  );
}

/** kseip_* names a PromQL expression reads, the `__name__=~"kseip_(a|b)_x"` form expanded. */
function seriesIn(expr: string): string[] {
  const found = [...expr.matchAll(/\bkseip_[a-z_]+/g)].map((m) => m[0]);
  for (const m of expr.matchAll(/__name__=~"kseip_\(([a-z|]+)\)_([a-z_]+)"/g))
    for (const part of m[1]!.split('|')) found.push(`kseip_${part}_${m[2]!}`);
  // The regex's own prefix `kseip_` (before the group) is not a series.
  return found.filter((n) => n !== 'kseip_');
}

void test('prometheusrule.yaml carries exactly the groups of kseip.rules.yaml', () => {
  const expected = renderPrometheusRule();
  if (process.env.KSEIP_UPDATE_SNAPSHOTS === '1')
    writeFileSync(path.join(kit, 'prometheusrule.yaml'), expected);
  const committed = parse(read('prometheusrule.yaml')) as { kind: string; spec: RulesFile };
  assert.equal(committed.kind, 'PrometheusRule');
  assert.deepEqual(
    committed.spec.groups,
    rulesFile.groups,
    'run with KSEIP_UPDATE_SNAPSHOTS=1 to regenerate',
  );
});

void test('the alerts the issue asks for exist, each with a severity, a summary and a description', () => {
  const rules = rulesFile.groups.flatMap((g) => g.rules);
  for (const alert of [
    'KseipAgentFenced',
    'KseipAgentGenerationLag',
    'KseipEgressIPWithoutGateway',
    'KseipLivenessBlind',
    'KseipDeadLetters',
    'KseipNodeStatusAcksMissing',
  ])
    assert.ok(
      rules.some((r) => r.alert === alert),
      `${alert} is missing`,
    );
  for (const r of rules) {
    assert.match(r.labels?.severity ?? '', /^(critical|warning)$/, r.alert);
    assert.ok(r.annotations?.summary && r.annotations.description, r.alert);
  }
});

void test('rules and dashboard query only series the code exports (or kube-state-metrics derives)', () => {
  const known = new Set([...exportedSeries(), ...kubeStateMetricsSeries()]);
  assert.ok(known.has('kseip_agent_fenced') && known.has('kseip_agent_apply_duration_seconds_bucket'));
  const dashboard = JSON.parse(read('grafana-dashboard.json')) as {
    uid: string;
    panels: { id: number; type: string; title: string; targets?: { expr: string }[] }[];
  };
  const queries = [
    ...rulesFile.groups.flatMap((g) => g.rules.map((r) => ({ where: `rule ${r.alert}`, expr: r.expr }))),
    ...dashboard.panels.flatMap((p) =>
      (p.targets ?? []).map((t) => ({ where: `panel ${p.title}`, expr: t.expr })),
    ),
  ];
  for (const { where, expr } of queries) {
    const names = seriesIn(expr);
    assert.ok(names.length > 0, `${where} reads no kseip series: ${expr}`);
    for (const name of names)
      assert.ok(known.has(name), `${where}: ${name} is not exported by any component`);
  }
  const ids = dashboard.panels.map((p) => p.id);
  assert.equal(new Set(ids).size, ids.length, 'panel ids are unique');
  assert.ok(
    dashboard.panels.filter((p) => p.type !== 'row').every((p) => (p.targets ?? []).length > 0),
    'every panel has a query',
  );
});

void test('every component has a metrics Service with a `metrics` port, which the ServiceMonitor scrapes', () => {
  const services = parseAllDocuments(
    readFileSync(path.join(root, 'k8s/base/metrics-services.yaml'), 'utf8'),
  ).map(
    (d) =>
      d.toJS() as {
        kind: string;
        metadata: { name: string; labels: Record<string, string> };
        spec: { selector: Record<string, string>; ports: { name: string; targetPort: string }[] };
      },
  );
  const monitor = parse(read('servicemonitor.yaml')) as {
    spec: {
      selector: { matchExpressions: { key: string; values: string[] }[] };
      endpoints: { port: string }[];
    };
  };
  const selected = monitor.spec.selector.matchExpressions[0]!;
  assert.deepEqual(
    services.map((s) => s.spec.selector['app.kubernetes.io/name']).sort(),
    [...selected.values].sort(),
  );
  for (const s of services) {
    assert.equal(s.kind, 'Service');
    assert.deepEqual(
      s.spec.ports.map((p) => [p.name, p.targetPort]),
      [['metrics', 'health']],
      s.metadata.name,
    );
    assert.ok(selected.values.includes(s.metadata.labels[selected.key]!), `${s.metadata.name} is selected`);
  }
  assert.deepEqual(
    monitor.spec.endpoints.map((e) => e.port),
    ['metrics'],
  );
});
