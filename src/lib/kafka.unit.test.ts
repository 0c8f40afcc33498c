// The retry settings every client gets (CLIENT_RETRY), run through kafkajs' own retrier with mocked
// timers: no attempt is put more than a second off, and the attempts span a broker restart of tens
// of seconds. kafkajs' default doubling put attempts 7 to 14 s off after a few seconds of outage,
// which is how long clients then stayed away after the broker was back (issue 12, finding 8).
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { mock, test } from 'node:test';
import { CLIENT_RETRY, OWN_GROUP_CONSUMER, nextGroupId } from './kafka.ts';

type Retrier = (
  fn: (bail: (e: Error) => void, count: number, retryTime: number) => Promise<unknown>,
) => Promise<unknown>;
const createRetry = createRequire(import.meta.url)('kafkajs/src/retry/index.js') as (opts: object) => Retrier;

/** The delays kafkajs waits between attempts of a request that always fails, until it gives up. */
async function delaysOf(opts: object): Promise<number[]> {
  mock.timers.enable({ apis: ['setTimeout'] });
  try {
    const delays: number[] = [];
    const done = createRetry(opts)((_bail, _count, retryTime) => {
      delays.push(retryTime);
      return Promise.reject(
        Object.assign(new Error('Connection error: connect ECONNREFUSED'), { retriable: true }),
      );
    }).catch(() => undefined);
    for (let i = 0; i < 100; i++) {
      mock.timers.tick(1_000);
      for (let j = 0; j < 5; j++) await Promise.resolve();
    }
    await done;
    return delays;
  } finally {
    mock.timers.reset();
  }
}

void test('clients retry after 100 ms, then at most every second, for about half a minute', async () => {
  for (const retry of [CLIENT_RETRY, OWN_GROUP_CONSUMER.retry]) {
    const delays = await delaysOf(retry);
    assert.equal(delays.length, 31, 'the first attempt and 30 retries');
    assert.ok(delays[0]! <= 120, `first retry ${delays[0]} ms`);
    assert.ok(Math.max(...delays) <= 1_000, `longest delay ${Math.max(...delays)} ms`);
    const total = delays.slice(0, -1).reduce((a, b) => a + b, 0);
    assert.ok(total >= 20_000, `attempts span ${total} ms of outage`);
  }
});

void test("kafkajs' own backoff, for contrast, puts attempts many seconds off", async () => {
  const delays = await delaysOf({ initialRetryTime: 100, retries: 8 });
  assert.ok(Math.max(...delays) > 5_000, `longest delay ${Math.max(...delays)} ms`);
});

void test('a consumer made again joins a group of its own', () => {
  assert.equal(nextGroupId('kseip-agent-n1-abc', 0), 'kseip-agent-n1-abc');
  assert.equal(nextGroupId('kseip-agent-n1-abc', 2), 'kseip-agent-n1-abc-r2');
});
