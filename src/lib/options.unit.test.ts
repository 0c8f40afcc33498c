// The shared option specs (./options.ts) as components use them: spread into a spec, parsed by
// ./config.ts, checked by checkLeaseOptions and handed on by leaseSettingsOf.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfig, renderHelp } from './config.ts';
import {
  checkLeaseOptions,
  healthPortOption,
  kafkaOptions,
  leaseOptions,
  leaseSettingsOf,
  optionalLeaseOptions,
} from './options.ts';

/** Like the watcher: always elects, on a Lease with defaults. */
const electingSpec = {
  ...kafkaOptions,
  ...leaseOptions({ namespace: 'kube-system', name: 'kseip-test' }),
  healthPort: healthPortOption(8080),
};
/** Like liveness and the status writer: elects only when given a Lease. */
const optionalSpec = {
  ...kafkaOptions,
  ...optionalLeaseOptions('kseip-test'),
  healthPort: healthPortOption(9465, { metricsPortAlias: true }),
};

const problemsOf = (parsed: { _tag: string; left?: { problems: readonly string[] } }): readonly string[] =>
  parsed._tag === 'Left' ? parsed.left!.problems : [];

void describe('shared options', () => {
  void test('given only brokers, an electing component gets the default Lease and its timing', () => {
    const parsed = parseConfig(electingSpec, ['--brokers', 'k:1'], {}, checkLeaseOptions);
    assert.equal(parsed._tag, 'Right');
    if (parsed._tag !== 'Right') return;
    assert.deepEqual(leaseSettingsOf(parsed.right), {
      namespace: 'kube-system',
      name: 'kseip-test',
      leaseDurationMs: 15_000,
      renewDeadlineMs: 10_000,
      retryPeriodMs: 2_000,
    });
    assert.equal(parsed.right.healthPort, 8080);
  });

  void test('given POD_NAMESPACE, the electing Lease is in the pod namespace; a flag still wins', () => {
    const env = { POD_NAMESPACE: 'ns-a', KSEIP_LEASE_DURATION: '20s' };
    const fromEnv = parseConfig(electingSpec, ['--brokers', 'k:1'], env, checkLeaseOptions);
    assert.equal(fromEnv._tag === 'Right' && leaseSettingsOf(fromEnv.right).namespace, 'ns-a');
    assert.equal(fromEnv._tag === 'Right' && fromEnv.right.leaseDurationMs, 20_000);
    const fromFlag = parseConfig(electingSpec, ['--brokers', 'k:1', '--lease-namespace', 'ns-b'], env);
    assert.equal(fromFlag._tag === 'Right' && fromFlag.right.leaseNamespace, 'ns-b');
  });

  void test('given no Lease, an optional component runs alone; given both flags, it elects', () => {
    const alone = parseConfig(optionalSpec, ['--brokers', 'k:1'], {}, checkLeaseOptions);
    assert.equal(alone._tag === 'Right' && leaseSettingsOf(alone.right), undefined);
    const elected = parseConfig(
      optionalSpec,
      ['--brokers', 'k:1', '--retry-period', '250ms'],
      { KSEIP_LEASE_NAMESPACE: 'ns', KSEIP_LEASE_NAME: 'kseip-x' },
      checkLeaseOptions,
    );
    assert.deepEqual(elected._tag === 'Right' && leaseSettingsOf(elected.right), {
      namespace: 'ns',
      name: 'kseip-x',
      leaseDurationMs: 15_000,
      renewDeadlineMs: 10_000,
      retryPeriodMs: 250,
    });
  });

  void test('given half a Lease or a renew deadline not below the duration, then each is a problem', () => {
    const parsed = parseConfig(
      optionalSpec,
      ['--brokers', 'k:1', '--lease-name', 'x', '--lease-duration', '2s', '--renew-deadline', '2s'],
      {},
      checkLeaseOptions,
    );
    assert.deepEqual(problemsOf(parsed), [
      '--lease-namespace and --lease-name go together (both for leader election, neither to run alone)',
      '--renew-deadline (2000ms) must be below --lease-duration (2000ms)',
    ]);
  });

  void test('given a bad timing value, then the message names the flag, its env variable and the range', () => {
    const parsed = parseConfig(electingSpec, ['--brokers', 'k:1'], { KSEIP_RETRY_PERIOD: '10ms' });
    assert.deepEqual(problemsOf(parsed), [
      '--retry-period (env KSEIP_RETRY_PERIOD): expected a duration from 50ms to 60000ms, like 100ms or 5s, got "10ms"',
    ]);
  });

  void test('the --metrics-port alias exists only where asked for', () => {
    const withAlias = parseConfig(optionalSpec, ['--brokers', 'k:1', '--metrics-port', '9000'], {});
    assert.equal(withAlias._tag === 'Right' && withAlias.right.healthPort, 9000);
    assert.deepEqual(problemsOf(parseConfig(electingSpec, ['--brokers', 'k:1', '--metrics-port=9000'], {})), [
      'unknown option --metrics-port',
    ]);
    assert.doesNotMatch(renderHelp(electingSpec, 'usage'), /metrics-port/);
    assert.match(
      renderHelp(optionalSpec, 'usage'),
      /deprecated alias: --metrics-port, env KSEIP_METRICS_PORT/,
    );
  });

  void test('brokers and the Kafka security options come together', () => {
    const parsed = parseConfig(kafkaOptions, [], {});
    assert.deepEqual(problemsOf(parsed), [
      '--brokers (env KSEIP_BROKERS) is required: Kafka bootstrap brokers, host:port[,host:port...]',
    ]);
    const ok = parseConfig(kafkaOptions, ['--brokers', 'a:1,b:2', '--kafka-tls'], {});
    assert.equal(ok._tag, 'Right');
    if (ok._tag !== 'Right') return;
    assert.deepEqual(ok.right.brokers, ['a:1', 'b:2']);
    assert.equal(ok.right.kafkaTls, true);
  });
});
