// The shared config parser (./config.ts) and the agent's spec (src/agents/config.ts).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { agentConfigSpec, checkAgentConfig } from '../agents/config.ts';
import { livenessConfigSpec } from '../liveness/config.ts';
import {
  CidrListFromString,
  deprecatedUses,
  durationMsFromString,
  intFromString,
  parseConfig,
  renderHelp,
} from './config.ts';

const parseAgent = (argv: string[], env: Record<string, string> = {}) =>
  parseConfig(agentConfigSpec, argv, env, checkAgentConfig);

void describe('config parsing', () => {
  void test('given only the required values, defaults fill the rest', () => {
    const parsed = parseAgent(['--brokers', 'kafka:9092'], { NODE_NAME: 'node-a' });
    assert.equal(parsed._tag, 'Right');
    if (parsed._tag !== 'Right') return;
    assert.equal(parsed.right.nodeName, 'node-a');
    assert.deepEqual(parsed.right.brokers, ['kafka:9092']);
    assert.equal(parsed.right.heartbeatIntervalMs, 100);
    assert.equal(parsed.right.fenceAfterMs, 250);
    assert.equal(parsed.right.driftIntervalMs, 5_000);
    assert.equal(parsed.right.netns, undefined);
    assert.equal(parsed.right.uninstall, false);
  });

  void test('flags win over env; --flag=value, bare boolean flags, hex and durations are understood', () => {
    const parsed = parseAgent(
      [
        '--node-name=node-b',
        '--brokers',
        'a:1,b:2',
        '--mark-mask',
        '0x00ff0000',
        '--drift-interval=1.5s',
        '--uninstall',
      ],
      { NODE_NAME: 'node-a', KSEIP_NEVER_STEER: '10.0.0.0/8, 10.96.0.0/12' },
    );
    assert.equal(parsed._tag, 'Right');
    if (parsed._tag !== 'Right') return;
    assert.equal(parsed.right.nodeName, 'node-b');
    assert.deepEqual(parsed.right.brokers, ['a:1', 'b:2']);
    assert.equal(parsed.right.markMask, 0x00ff0000);
    assert.equal(parsed.right.driftIntervalMs, 1_500);
    assert.equal(parsed.right.uninstall, true);
    assert.deepEqual(parsed.right.neverSteer, ['10.0.0.0/8', '10.96.0.0/12']);
  });

  void test('every bad value is reported at once, naming flag and env variable', () => {
    const parsed = parseAgent(['--brokers', 'nope', '--heartbeat-interval', 'fast', '--bogus', 'x']);
    assert.equal(parsed._tag, 'Left');
    if (parsed._tag !== 'Left') return;
    const text = parsed.left.problems.join('\n');
    assert.match(text, /unknown option --bogus/);
    assert.match(text, /--node-name \(env NODE_NAME\) is required/);
    assert.match(
      text,
      /--brokers \(env KSEIP_BROKERS\): expected a comma-separated list of host:port, got "nope"/,
    );
    assert.match(text, /--heartbeat-interval \(env KSEIP_HEARTBEAT_INTERVAL\): expected a duration/);
  });

  void test('cross-option rules: contiguous mark mask, fence bound above two heartbeats', () => {
    const parsed = parseAgent([
      '--node-name',
      'n',
      '--brokers',
      'k:1',
      '--mark-mask',
      '0x0f0f0000',
      '--fence-after',
      '150ms',
    ]);
    assert.equal(parsed._tag, 'Left');
    if (parsed._tag !== 'Left') return;
    assert.equal(parsed.left.problems.length, 2);
  });

  void test('string codecs', () => {
    assert.equal(intFromString(0, 10).decode('0xa')._tag, 'Right');
    assert.equal(intFromString(0, 10).decode('11')._tag, 'Left');
    assert.equal(durationMsFromString(1, 10_000).decode('2m')._tag, 'Left');
    assert.deepEqual(durationMsFromString(1, 200_000).decode('2m'), { _tag: 'Right', right: 120_000 });
    assert.equal(CidrListFromString.decode('10.1.2.3/8')._tag, 'Left', 'host bits set');
    assert.deepEqual(CidrListFromString.decode(''), { _tag: 'Right', right: [] });
  });

  void describe('--health-port, with --metrics-port as a deprecated alias (agent and liveness)', () => {
    const required = ['--node-name', 'n', '--brokers', 'k:1'];
    const port = (argv: string[], env: Record<string, string> = {}) => {
      const parsed = parseAgent([...required, ...argv], env);
      return parsed._tag === 'Right' ? parsed.right.metricsPort : parsed.left.problems;
    };

    void test('given the new flag or env, then it is the port', () => {
      assert.equal(port([]), 9464);
      assert.equal(port(['--health-port', '8081']), 8081);
      assert.equal(port([], { KSEIP_HEALTH_PORT: '8082' }), 8082);
    });

    void test('given only the old spelling, then it still works and is reported as deprecated', () => {
      assert.equal(port(['--metrics-port=8083']), 8083);
      assert.equal(port([], { KSEIP_METRICS_PORT: '8084' }), 8084);
      assert.deepEqual(deprecatedUses(agentConfigSpec, ['--metrics-port=1'], { KSEIP_METRICS_PORT: '1' }), [
        '--metrics-port is deprecated: use --health-port',
        'env KSEIP_METRICS_PORT is deprecated: use KSEIP_HEALTH_PORT',
      ]);
      assert.deepEqual(deprecatedUses(agentConfigSpec, ['--health-port', '1'], {}), []);
    });

    void test('given both spellings, then a flag wins over env and disagreeing ones are a problem', () => {
      assert.equal(port(['--metrics-port', '8085'], { KSEIP_HEALTH_PORT: '8086' }), 8085);
      assert.equal(port([], { KSEIP_HEALTH_PORT: '8087', KSEIP_METRICS_PORT: '8087' }), 8087);
      assert.deepEqual(port(['--health-port', '1', '--metrics-port', '2']), [
        '--health-port "1" and its deprecated alias --metrics-port "2" disagree: give only --health-port',
      ]);
      assert.deepEqual(port([], { KSEIP_HEALTH_PORT: '1', KSEIP_METRICS_PORT: '2' }), [
        'env KSEIP_HEALTH_PORT "1" and its deprecated alias KSEIP_METRICS_PORT "2" disagree: set only KSEIP_HEALTH_PORT',
      ]);
    });

    void test('given a bad value under the old name, then the message names both spellings', () => {
      assert.deepEqual(port(['--metrics-port', '70000']), [
        '--health-port (env KSEIP_HEALTH_PORT) [deprecated alias --metrics-port, env KSEIP_METRICS_PORT]: expected an integer from 0 to 65535, got "70000"',
      ]);
    });

    void test('liveness accepts the same spellings and --help lists the alias', () => {
      const parsed = parseConfig(livenessConfigSpec, ['--brokers', 'k:1', '--metrics-port', '9000'], {});
      assert.equal(parsed._tag === 'Right' && parsed.right.metricsPort, 9000);
      const help = renderHelp(livenessConfigSpec, 'usage');
      assert.match(help, /--health-port, env KSEIP_HEALTH_PORT/);
      assert.match(help, /deprecated alias: --metrics-port, env KSEIP_METRICS_PORT/);
    });
  });
});
