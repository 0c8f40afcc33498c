import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { repoRoot } from './artifacts.ts';
import { chartValuesOf, readDevOverlay } from './dev-chart-values.ts';

void test('the dev overlay maps onto chart values: brokers, timing, image never pulled', () => {
  const values = chartValuesOf(readDevOverlay(path.join(repoRoot, 'k8s/overlays/dev'))) as {
    kafka: { brokers: string; replicationFactor: number };
    failover: Record<string, string>;
    image: Record<string, string>;
  };
  assert.equal(values.kafka.brokers, '10.240.0.1:9092');
  assert.equal(values.kafka.replicationFactor, 1);
  assert.deepEqual(values.image, { repository: 'kube-static-egress-ip', tag: 'dev', pullPolicy: 'Never' });
  assert.ok(values.failover.fenceAfter !== undefined && values.failover.lostAfter !== undefined);
});

void test('an overlay setting that no chart value renders is an error, not dropped', () => {
  assert.throws(
    () =>
      chartValuesOf({
        configData: { KSEIP_SOMETHING_NEW: '1' },
        image: { newName: 'x', newTag: 'y' },
        pullNever: false,
      }),
    /sets KSEIP_SOMETHING_NEW, which no value of the chart renders/,
  );
});
