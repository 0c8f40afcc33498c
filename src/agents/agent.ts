// The node agent's runtime around the dataplane: follows this node's desired state, applies it
// through the single-flight apply loop, repairs drift, heartbeats, acknowledges applies, and
// fences itself when cut off from Kafka. Effectful orchestration over ports (dataplane, feed,
// heartbeat and status senders, clock), so unit tests drive it with fakes and a manual clock;
// src/agents/agent-service.ts plugs in kafkajs, the real dataplane and the health server.
//
// Order of things:
// - Heartbeats start at once (liveness must see the node even before it has caught up).
// - Nothing is applied before the feed has caught up with the node-rules log; then the latest
//   full state is applied ('startup'), then every newer one ('update').
// - Every driftIntervalMs the kernel is compared with the applied state ('drift' repairs).
// - Fencing (./fencing.ts decides, this file carries it out): withdraw egress IPs when no
//   heartbeat has been acknowledged for fenceAfterMs; when heartbeats are acknowledged again,
//   read node-rules to its current end, apply the latest full state, and only then unfence.
// - Every egressRenewIntervalMs the held egress IPs' lifetimes are renewed; a dead agent's node
//   drops them once their lifetime (--egress-address-lifetime) runs out.
// - Stopping keeps the dataplane as it is (a restarted agent finds its flows intact; the held
//   addresses are made permanent until it is back) unless uninstalling, which removes
//   everything of ours.
import { NODE_REPORTS_SCHEMA, type Heartbeat, type NodeApplyStatus } from '../contracts/node-reports.ts';
import { truncateText } from '../contracts/primitives.ts';
import type { NodeRules } from '../contracts/node-rules.ts';
import { createBackoff, sleepFor } from '../lib/backoff.ts';
import { every, type Clock, type TimerHandle } from '../lib/clock.ts';
import type { Logger } from '../lib/log.ts';
import { createApplyLoop, type AgentDataplane, type ApplyLoop, type ApplyOutcome } from './apply-loop.ts';
import { evolveFence, initialFenceState, isFenced, type FenceInput, type FenceState } from './fencing.ts';
import type { AgentMetrics } from './metrics.ts';
import type { NodeRulesFeed } from './node-rules-consumer.ts';

export interface HeartbeatSender {
  /** Resolves once Kafka acknowledged the heartbeat. */
  send(heartbeat: Heartbeat): Promise<void>;
}

export interface StatusSender {
  /** Fire and forget: a lost ack is repaired by the next one. */
  send(status: NodeApplyStatus): void;
}

export interface AgentOptions {
  node: string;
  /** Identifies this agent process in heartbeats (a restart is visible without a gap). */
  bootId: string;
  dataplane: AgentDataplane;
  /** Builds the feed of desired states; the agent says where they go. */
  createFeed: (onDesired: (rules: NodeRules) => void) => NodeRulesFeed;
  heartbeats: HeartbeatSender;
  status: StatusSender;
  clock: Clock;
  metrics: AgentMetrics;
  log: Logger;
  heartbeatIntervalMs: number;
  fenceAfterMs: number;
  driftIntervalMs: number;
  /** How often held egress IPs' lifetimes are renewed (egressRenewIntervalMs); default 1 s. */
  egressRenewIntervalMs?: number;
  /** How often the fence condition is checked; default fenceAfterMs / 10, between 5 and 25 ms. */
  fenceCheckIntervalMs?: number;
  applyBackoff?: { initialMs: number; maxMs: number };
}

export interface Agent {
  /** Starts the loops and the feed (which retries on its own until Kafka answers). */
  start(): void;
  /** Stops everything; removes our dataplane objects only when `uninstall`. */
  stop(opts: { uninstall: boolean }): Promise<void>;
  /** Caught up with node-rules and the last apply succeeded. */
  ready(): boolean;
  fenced(): boolean;
  /** Newest generation seen for this node minus the last applied one (0 when none seen). */
  generationLag(): number;
  /** Resolves when the apply loop has nothing to do (tests). */
  idle(): Promise<void>;
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** `promise`, or a rejection as soon as `signal` aborts (the promise itself keeps running). */
function abortable<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    if (signal.aborted) return reject(new Error('aborted'));
    signal.addEventListener('abort', () => reject(new Error('aborted')), { once: true });
    promise.then(resolve, reject);
  });
}

export function createAgent(opts: AgentOptions): Agent {
  const { node, clock, metrics, log } = opts;
  const fenceCheckMs =
    opts.fenceCheckIntervalMs ?? Math.max(5, Math.min(25, Math.floor(opts.fenceAfterMs / 10)));
  const timers: TimerHandle[] = [];
  let stopped = false;
  let seq = 0;
  let heartbeatsInFlight = 0;
  // Heartbeats are pipelined: with one in flight, a slow ack would delay the next send and make
  // the silence seen by the fence clock latency + interval + latency instead of ~latency.
  const maxHeartbeatsInFlight = Math.max(1, Math.ceil(opts.fenceAfterMs / opts.heartbeatIntervalMs));
  let heartbeatFailing = false;
  let fence: FenceState = initialFenceState(clock.now());
  let recovery: AbortController | undefined;
  let firstDesired = true;
  let markCaughtUp!: () => void;
  const caughtUp = new Promise<void>((resolve) => (markCaughtUp = resolve));

  const applyLoop: ApplyLoop = createApplyLoop({
    dataplane: opts.dataplane,
    clock,
    log,
    onOutcome: report,
    onDrift: () => metrics.driftRepairs.inc(),
    onWithdraw: (ok) => {
      if (ok) log.warn({ node }, 'egress IPs withdrawn (fenced)');
      else metrics.withdrawErrors.inc();
    },
    initialBackoffMs: opts.applyBackoff?.initialMs,
    maxBackoffMs: opts.applyBackoff?.maxMs,
  });

  const feed = opts.createFeed((rules) => {
    const reason = firstDesired ? 'startup' : 'update';
    firstDesired = false;
    markCaughtUp();
    log.info({ node, generation: rules.generation, reason }, 'desired state received');
    applyLoop.desire(rules, reason);
  });

  function report(outcome: ApplyOutcome): void {
    const result = outcome.ok ? 'ok' : 'error';
    metrics.applyDuration.observe({ reason: outcome.reason, result }, outcome.durationMs / 1000);
    if (outcome.ok) metrics.appliedGeneration.set(outcome.applied.generation);
    else metrics.applyErrors.inc({ reason: outcome.reason });
    const status: NodeApplyStatus = {
      schema: NODE_REPORTS_SCHEMA,
      node,
      generation: outcome.applied.generation,
      ok: outcome.ok,
      appliedAt: clock.wallTime(),
      durationMs: Math.round(outcome.durationMs * 1000) / 1000,
      unchanged: outcome.ok && !outcome.changed,
      reason: outcome.reason,
      ...(outcome.ok ? {} : { error: truncateText(errorText(outcome.error)) }),
      // Only when there is something to say: acks of a node whose every rule applied stay as
      // they were, and older status writers ignore the field.
      ...(outcome.unprogrammable.length > 0 ? { unprogrammable: [...outcome.unprogrammable] } : {}),
    };
    opts.status.send(status);
  }

  function fenceStep(input: FenceInput): void {
    if (stopped) return;
    const step = evolveFence(fence, input, opts.fenceAfterMs);
    fence = step.state;
    const effect = step.effect;
    if (effect === undefined) return;
    switch (effect.type) {
      case 'Withdraw':
        log.warn(
          { node, silenceMs: Math.round(effect.silenceMs) },
          'lost contact with Kafka: fencing (withdrawing egress IPs)',
        );
        metrics.fences.inc();
        metrics.fenced.set(1);
        recovery?.abort();
        recovery = undefined;
        applyLoop.fence();
        break;
      case 'BeginRecovery':
        log.info({ node, epoch: effect.epoch }, 'contact with Kafka is back: catching up before unfencing');
        void recover(effect.epoch);
        break;
      case 'Unfenced':
        log.info({ node, epoch: effect.epoch }, 'unfenced: latest desired state applied');
        metrics.fenced.set(0);
        break;
      default: {
        const _exhaustive: never = effect;
        return _exhaustive;
      }
    }
  }

  async function recover(epoch: number): Promise<void> {
    const controller = new AbortController();
    recovery = controller;
    const { signal } = controller;
    const backoff = createBackoff({ initialMs: 100, maxMs: 2_000 });
    while (!signal.aborted) {
      try {
        await abortable(caughtUp, signal);
        await feed.syncToEnd(signal);
        if (signal.aborted) return;
        await abortable(applyLoop.unfence(), signal);
        fenceStep({ type: 'Recovered', epoch, now: clock.now() });
        return;
      } catch (err) {
        if (signal.aborted) return;
        const retryInMs = backoff.next();
        log.warn({ node, err, retryInMs }, 'recovery from fence failed; retrying');
        await sleepFor(clock, retryInMs, signal);
      }
    }
  }

  function beat(): void {
    if (stopped || heartbeatsInFlight >= maxHeartbeatsInFlight) return;
    heartbeatsInFlight++;
    const sentAt = clock.now();
    const heartbeat: Heartbeat = {
      schema: NODE_REPORTS_SCHEMA,
      node,
      sentAt: clock.wallTime(),
      seq: seq++,
      bootId: opts.bootId,
    };
    opts.heartbeats.send(heartbeat).then(
      () => {
        heartbeatsInFlight--;
        metrics.heartbeatsSent.inc();
        if (heartbeatFailing) log.info({ node }, 'heartbeats acknowledged again');
        heartbeatFailing = false;
        fenceStep({ type: 'ContactConfirmed', sentAt, now: clock.now() });
      },
      (err: unknown) => {
        heartbeatsInFlight--;
        metrics.heartbeatFailures.inc();
        if (!heartbeatFailing) log.warn({ node, err: errorText(err) }, 'heartbeat not acknowledged');
        heartbeatFailing = true;
      },
    );
  }

  function renewEgressAddresses(): void {
    if (stopped || isFenced(fence)) return;
    opts.dataplane.renewEgressAddresses().catch((err: unknown) => {
      log.warn({ node, err }, 'egress IP lifetime renewal failed');
    });
  }

  return {
    start() {
      log.info({ node, bootId: opts.bootId }, 'agent starting');
      beat();
      timers.push(every(clock, opts.heartbeatIntervalMs, beat));
      timers.push(every(clock, fenceCheckMs, () => fenceStep({ type: 'Tick', now: clock.now() })));
      timers.push(
        every(clock, opts.driftIntervalMs, () => {
          if (feed.caughtUp()) applyLoop.checkDrift();
        }),
      );
      // Held egress IPs expire unless renewed: a dead agent's node lets go of them by itself.
      timers.push(every(clock, opts.egressRenewIntervalMs ?? 1_000, renewEgressAddresses));
      feed.start().catch((err: unknown) => {
        if (!stopped) log.error({ node, err }, 'node-rules feed stopped');
      });
    },

    async stop({ uninstall }) {
      stopped = true;
      for (const t of timers) t.cancel();
      recovery?.abort();
      await feed.stop();
      if (uninstall) {
        log.info({ node }, 'uninstalling: removing every dataplane object of ours');
        await applyLoop.removeAll();
      } else {
        await applyLoop.stop();
        // A clean stop is a restart or a rollout: keep the addresses for the next agent.
        await opts.dataplane.renewEgressAddresses('forever').catch((err: unknown) => {
          log.warn({ node, err }, 'could not pin the egress IP lifetimes at stop');
        });
      }
      log.info({ node, uninstall }, 'agent stopped');
    },

    ready: () => feed.caughtUp() && applyLoop.lastApplyOk() === true,
    fenced: () => isFenced(fence),
    generationLag: () => computeGenerationLag(feed.latestSeenGeneration(), applyLoop.appliedGeneration()),
    idle: () => applyLoop.idle(),
  };
}

/** Newest generation seen minus applied, for the generation-lag gauge. */
export function computeGenerationLag(seen: number | undefined, applied: number | undefined): number {
  if (seen === undefined) return 0;
  return Math.max(0, seen - (applied ?? 0));
}
