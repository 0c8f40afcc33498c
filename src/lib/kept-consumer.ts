// Keeps one kafkajs consumer of a group of our own running through broker outages: whenever
// kafkajs gives up on the consumer (a CRASH; with OWN_GROUP_CONSUMER it never restarts one
// itself), a new consumer is made after a backoff, in a NEW group, until one runs or the keeper is
// stopped. Effectful: owns the consumers it makes (and disconnects them), nothing else. The
// component says how to make and run a consumer (`make`, `run`) and where it resumes: a new
// consumer commits nothing, so the component seeks it on GROUP_JOIN to just after what it read.
//
// Why a new group: kafkajs' own restart joins the SAME group with a new member id, and a member
// that crashed while the broker was away never left, so the coordinator holds the join until that
// member's session expires (10 s). Why the loop here and not in the CRASH listener alone: a
// consumer's run() resolves even when its first join fails (kafkajs reports that as a CRASH), so
// a restart can crash again while it is being made, and that crash must schedule the next one.
import type { Consumer } from 'kafkajs';
import { createBackoff, sleepFor } from './backoff.ts';
import { systemClock, type Clock } from './clock.ts';
import { countRejoins, nextGroupId, type ConsumerCounters } from './kafka.ts';
import type { Logger } from './log.ts';

export interface KeptConsumerOptions {
  /** Group of the first consumer; the n-th replacement joins nextGroupId(groupIdBase, n). */
  readonly groupIdBase: string;
  /** Makes a consumer in `groupId` with the component's listeners attached (not connected yet). */
  readonly make: (groupId: string) => Consumer;
  /** Connects, subscribes and runs it. */
  readonly run: (consumer: Consumer) => Promise<void>;
  readonly log: Logger;
  /** What the log lines call it, e.g. "node-rules consumer". */
  readonly what: string;
  readonly counters?: ConsumerCounters;
  readonly clock?: Clock;
}

export interface KeptConsumer {
  /** Makes and runs the first consumer; rejects if it cannot (the caller retries start()). */
  start(): Promise<void>;
  /** Stops restarting and disconnects the current consumer. */
  stop(): Promise<void>;
  /** The current consumer, if any. */
  current(): Consumer | undefined;
  /** True between a crash and the replacement consumer running. */
  restarting(): boolean;
}

export function keepConsumer(opts: KeptConsumerOptions): KeptConsumer {
  const clock = opts.clock ?? systemClock;
  const lifetime = new AbortController();
  const backoff = createBackoff({ initialMs: 200, maxMs: 5_000 });
  let consumer: Consumer | undefined;
  let replacements = 0;
  let pending = false;

  async function disconnectCurrent(): Promise<void> {
    const c = consumer;
    consumer = undefined;
    await c?.disconnect().catch(() => undefined);
  }

  async function runOne(groupId: string): Promise<void> {
    const c = opts.make(groupId);
    consumer = c;
    if (opts.counters !== undefined) countRejoins(c, opts.counters.rejoins);
    c.on(c.events.GROUP_JOIN, () => backoff.reset());
    c.on(c.events.CRASH, ({ payload }) => {
      if (c !== consumer || lifetime.signal.aborted) return;
      opts.log.warn({ err: payload.error, groupId }, `${opts.what} crashed; making a new one`);
      scheduleReplacement();
    });
    await opts.run(c);
  }

  function scheduleReplacement(): void {
    if (pending || lifetime.signal.aborted) return;
    pending = true;
    void (async () => {
      await disconnectCurrent();
      await sleepFor(clock, backoff.next(), lifetime.signal);
      pending = false;
      if (lifetime.signal.aborted) return;
      replacements++;
      opts.counters?.restarts.inc();
      const groupId = nextGroupId(opts.groupIdBase, replacements);
      try {
        await runOne(groupId);
        if (lifetime.signal.aborted) await disconnectCurrent();
        else opts.log.info({ groupId }, `${opts.what} made again`);
      } catch (err) {
        opts.log.warn({ err, groupId }, `${opts.what} could not be made again; retrying`);
        scheduleReplacement();
      }
    })();
  }

  return {
    async start() {
      try {
        await runOne(nextGroupId(opts.groupIdBase, replacements));
      } catch (err) {
        await disconnectCurrent();
        throw err;
      }
    },
    async stop() {
      lifetime.abort();
      const c = consumer;
      consumer = undefined;
      await c?.disconnect();
    },
    current: () => consumer,
    restarting: () => pending || (consumer === undefined && replacements > 0),
  };
}
