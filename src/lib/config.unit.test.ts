// The shared config parser (./config.ts) and the agent's spec (src/agents/config.ts).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { agentConfigSpec, checkAgentConfig } from '../agents/config.ts';
import { CidrListFromString, durationMsFromString, intFromString, parseConfig } from './config.ts';

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
});
