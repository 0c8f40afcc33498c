// Test doubles for the agent runtime's ports: a dataplane that records calls and can be held or
// made to fail, and a feed the test drives by hand. Pure in-memory; used by unit tests only (int
// tests use the real Kafka feed, and the dataplane's own tests use the real kernel).
import type { NodeRules } from '../../src/contracts/node-rules.ts';
import type { UnprogrammableRule } from '../../src/contracts/node-reports.ts';
import type { ApplyResult } from '../../src/agents/dataplane.ts';
import type { AgentDataplane } from '../../src/agents/apply-loop.ts';
import type { NodeRulesFeed } from '../../src/agents/node-rules-consumer.ts';

interface Held {
  readonly release: () => void;
  readonly fail: (err: Error) => void;
}

/** Records every call as a line: "reconcile g=5 ips=198.51.100.10", "withdraw", "drift", "removeAll". */
export class FakeDataplane implements AgentDataplane {
  readonly calls: string[] = [];
  /** Each call with the performance.now() at which it started (int tests compare timings). */
  readonly timeline: { readonly line: string; readonly at: number }[] = [];
  /** Most calls that ever ran at the same time (the runtime promises 1). */
  maxConcurrent = 0;
  /** When true, each call waits until the test releases it via `held`. */
  hold = false;
  readonly held: Held[] = [];
  /** Errors thrown by the next reconciles, first first. */
  readonly failures: Error[] = [];
  /** Errors thrown by the next removeAll calls, first first. */
  readonly removeFailures: Error[] = [];
  drift = false;
  /** What every successful reconcile reports as left out. */
  unprogrammable: UnprogrammableRule[] = [];
  private active = 0;

  private async call<T>(line: string, result: () => T): Promise<T> {
    this.calls.push(line);
    this.timeline.push({ line, at: performance.now() });
    this.active++;
    this.maxConcurrent = Math.max(this.maxConcurrent, this.active);
    try {
      if (this.hold) {
        await new Promise<void>((resolve, reject) => this.held.push({ release: resolve, fail: reject }));
      }
      return result();
    } finally {
      this.active--;
    }
  }

  reconcile(desired: NodeRules): Promise<ApplyResult> {
    const ips = desired.egressIPs.map((e) => e.egressIP).join(',') || '-';
    return this.call(`reconcile g=${desired.generation} ips=${ips}`, () => {
      const failure = this.failures.shift();
      if (failure !== undefined) throw failure;
      return { changed: true, durationMs: 1, unprogrammable: this.unprogrammable };
    });
  }

  checkDrift(): Promise<boolean> {
    return this.call('drift', () => {
      const drifted = this.drift;
      this.drift = false;
      return drifted;
    });
  }

  withdrawEgressIPs(): Promise<void> {
    return this.call('withdraw', () => undefined);
  }

  removeAll(): Promise<void> {
    return this.call('removeAll', () => {
      const failure = this.removeFailures.shift();
      if (failure !== undefined) throw failure;
    });
  }

  /** Lifetime renewals, kept apart from `calls`: they run on their own timer. */
  readonly renewals: ('renew' | 'forever')[] = [];

  renewEgressAddresses(pin?: 'forever'): Promise<void> {
    this.renewals.push(pin ?? 'renew');
    return Promise.resolve();
  }

  /** Releases the oldest held call. */
  releaseNext(): void {
    const next = this.held.shift();
    if (next === undefined) throw new Error('no held dataplane call');
    next.release();
  }
}

/** A feed the test controls: deliver() plays the consumer delivering a desired state. */
export class FakeFeed implements NodeRulesFeed {
  onDesired: (rules: NodeRules) => void = () => undefined;
  isCaughtUp = false;
  seen: number | undefined;
  latest: NodeRules | undefined;
  syncCalls = 0;
  started = false;
  stopped = false;

  start(): Promise<void> {
    this.started = true;
    return Promise.resolve();
  }
  stop(): Promise<void> {
    this.stopped = true;
    return Promise.resolve();
  }
  caughtUp(): boolean {
    return this.isCaughtUp;
  }
  latestSeenGeneration(): number | undefined {
    return this.seen;
  }
  current(): NodeRules | undefined {
    return this.latest;
  }
  syncToEnd(): Promise<void> {
    this.syncCalls++;
    return Promise.resolve();
  }
  deliver(rules: NodeRules): void {
    this.isCaughtUp = true;
    this.latest = rules;
    this.seen = Math.max(this.seen ?? 0, rules.generation);
    this.onDesired(rules);
  }
}

/** Lets pending promise callbacks run (a few macrotask turns). */
export async function settle(turns = 5): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise((resolve) => setImmediate(resolve));
}

/**
 * What a node reports for the IPv6 rule the isolation tests put in slot 2 (egress IP 2001:db8::10,
 * source tenant/v6#0): both of its roles left out, with the reason.
 */
export const IPV6_SLOT2_LEFT_OUT = [
  { role: 'gateway', slot: 2, egressIP: '2001:db8::10', sources: [], reason: 'egress IP is not IPv4' },
  {
    role: 'steer',
    slot: 2,
    egressIP: '2001:db8::10',
    sources: ['tenant/v6#0'],
    reason: 'egress IP is not IPv4',
  },
] as const;
