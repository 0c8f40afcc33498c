// The agent's one door to the dataplane: the single loop that serialises every dataplane call
// (apply, drift check, egress-IP withdrawal, removal) so they never overlap, and the one place
// that retries. Effectful: owns the dataplane calls and the retry timer; time only through the
// injected Clock. The idea is kube-proxy's BoundedFrequencyRunner: callers only say that work is
// due, the loop runs it one call at a time, requests made meanwhile collapse into one run, and a
// failed run is retried after a backoff (kube-proxy's RetryAfter).
//
// - Coalescing: desire() only records the latest desired state and marks it `pending` (not yet
//   applied: the one meaning of "dirty" in the agent). While an apply runs, any number of newer
//   states collapse into one: the next apply uses whatever is latest then. The dataplane always
//   gets a FULL state, so skipping intermediate ones loses nothing.
// - Failure: one policy for every call. The dataplane makes ONE attempt per call (it does not
//   retry); after a failed one it no longer trusts the kernel, so the loop's retry, after a
//   backoff (src/lib/backoff.ts: doubling, capped, jittered), is a full resync. A newer desired state does not wait for the
//   backoff: it may be the fix. An error marked `retriable: false` (the state cannot be
//   rendered) is not retried; the loop waits for the next desired state.
// - Fencing: while fenced every apply carries the desired state WITHOUT its egress IPs, and the
//   withdrawal itself jumps the queue (it runs as soon as an in-flight call returns).
// - Removal (uninstall) is the last call: it supersedes any desired state and is retried on the
//   same backoff up to `removeAttempts` times, then the loop gives up and says why.
import type { NodeRules } from '../contracts/node-rules.ts';
import type { UnprogrammableRule } from '../contracts/node-reports.ts';
import type { Clock, TimerHandle } from '../lib/clock.ts';
import { createBackoff } from '../lib/backoff.ts';
import type { Logger } from '../lib/log.ts';
import type { Dataplane } from './dataplane.ts';

export type AgentDataplane = Pick<
  Dataplane,
  'reconcile' | 'checkDrift' | 'withdrawEgressIPs' | 'removeAll' | 'renewEgressAddresses'
>;

export type ApplyReason = 'startup' | 'update' | 'drift' | 'fence';

export interface ApplyOutcome {
  /** The state handed to the dataplane (egress IPs stripped while fenced). */
  readonly applied: NodeRules;
  readonly reason: ApplyReason;
  readonly ok: boolean;
  readonly changed: boolean;
  readonly durationMs: number;
  /** On success: the rules the dataplane left out (see ApplyResult). */
  readonly unprogrammable: readonly UnprogrammableRule[];
  readonly error?: unknown;
  readonly fenced: boolean;
}

export interface ApplyLoopOptions {
  dataplane: AgentDataplane;
  clock: Clock;
  log: Logger;
  onOutcome?: (outcome: ApplyOutcome) => void;
  /** A drift check found the kernel changed behind our back (a repair apply follows). */
  onDrift?: () => void;
  onWithdraw?: (ok: boolean, error?: unknown) => void;
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  /** The backoff's jitter source (tests pin it); default Math.random. */
  random?: () => number;
  /** Attempts at removeAll() before giving up (the first included); default 4. */
  removeAttempts?: number;
}

export interface ApplyLoop {
  desire(rules: NodeRules, reason: ApplyReason): void;
  /** Asks for a drift check (skipped while an apply is pending or backing off). */
  checkDrift(): void;
  /** Withdraw egress IPs now and strip them from every apply until unfence(). */
  fence(): void;
  /**
   * Allows egress IPs again and re-applies the latest full state; resolves after an unfenced
   * apply succeeded (at once if there is no desired state yet).
   */
  unfence(): Promise<void>;
  /** Resolves when nothing runs and nothing is due (a backoff wait counts as idle). */
  idle(): Promise<void>;
  /** Stops taking work; resolves once the in-flight call returned. */
  stop(): Promise<void>;
  /**
   * Stops taking work and removes every dataplane object of ours (uninstall), retried on the
   * loop's backoff; rejects with the last error after `removeAttempts` failed attempts.
   */
  removeAll(): Promise<void>;
  /** undefined before the first apply. */
  lastApplyOk(): boolean | undefined;
  /** Generation of the last successfully applied state. */
  appliedGeneration(): number | undefined;
}

/** The desired state minus the gateway role: what a fenced node may hold. */
export function withoutEgressIPs(rules: NodeRules): NodeRules {
  return rules.egressIPs.length === 0 ? rules : { ...rules, egressIPs: [] };
}

const isNonRetriable = (err: unknown): boolean =>
  typeof err === 'object' && err !== null && (err as { retriable?: unknown }).retriable === false;

export function createApplyLoop(opts: ApplyLoopOptions): ApplyLoop {
  const { dataplane, clock, log } = opts;
  const backoff = createBackoff({
    initialMs: opts.initialBackoffMs ?? 100,
    maxMs: opts.maxBackoffMs ?? 10_000,
    ...(opts.random === undefined ? {} : { random: opts.random }),
  });

  const removeAttempts = opts.removeAttempts ?? 4;

  let desired: { rules: NodeRules; reason: ApplyReason } | undefined;
  /** The latest desired state has not been applied yet (or must be applied again). */
  let pending = false;
  let fenced = false;
  let withdrawPending = false;
  let driftRequested = false;
  let running = false;
  let stopped = false;
  let retryTimer: TimerHandle | undefined;
  let lastOk: boolean | undefined;
  let appliedGeneration: number | undefined;
  let removal: { attempts: number; done: () => void; fail: (err: unknown) => void } | undefined;
  let unfenceWaiters: (() => void)[] = [];
  let idleWaiters: (() => void)[] = [];
  let inFlight: Promise<void> = Promise.resolve();

  const backingOff = (): boolean => retryTimer !== undefined;
  const due = (): boolean =>
    !backingOff() &&
    (removal !== undefined ||
      (!stopped && (withdrawPending || (desired !== undefined && (pending || driftRequested)))));

  function scheduleRetry(): void {
    retryTimer?.cancel();
    const wait = backoff.next();
    retryTimer = clock.setTimeout(() => {
      retryTimer = undefined;
      kick();
    }, wait);
  }

  function clearRetry(): void {
    retryTimer?.cancel();
    retryTimer = undefined;
  }

  async function withdraw(): Promise<void> {
    try {
      await dataplane.withdrawEgressIPs();
      opts.onWithdraw?.(true);
    } catch (err) {
      // Safety-critical: keep trying, on the retry timer, until it works or we are unfenced.
      log.error({ err }, 'withdrawing egress IPs failed; retrying');
      opts.onWithdraw?.(false, err);
      withdrawPending = true;
      scheduleRetry();
    }
  }

  async function apply(target: { rules: NodeRules; reason: ApplyReason }): Promise<void> {
    const fencedAtStart = fenced;
    const rules = fencedAtStart ? withoutEgressIPs(target.rules) : target.rules;
    const started = clock.now();
    try {
      const result = await dataplane.reconcile(rules);
      lastOk = true;
      appliedGeneration = rules.generation;
      backoff.reset();
      opts.onOutcome?.({
        applied: rules,
        reason: target.reason,
        ok: true,
        changed: result.changed,
        durationMs: clock.now() - started,
        unprogrammable: result.unprogrammable,
        fenced: fencedAtStart,
      });
      if (!fencedAtStart && !fenced) {
        const waiters = unfenceWaiters;
        unfenceWaiters = [];
        for (const w of waiters) w();
      }
    } catch (err) {
      lastOk = false;
      const retriable = !isNonRetriable(err);
      log.warn({ err, generation: rules.generation, reason: target.reason, retriable }, 'apply failed');
      opts.onOutcome?.({
        applied: rules,
        reason: target.reason,
        ok: false,
        changed: false,
        durationMs: clock.now() - started,
        unprogrammable: [],
        error: err,
        fenced: fencedAtStart,
      });
      // A newer desire() during this apply already set pending; otherwise retry the same state.
      if (retriable) {
        pending = true;
        scheduleRetry();
      }
    }
  }

  async function checkDriftNow(): Promise<void> {
    try {
      if (await dataplane.checkDrift()) {
        log.warn({ generation: desired?.rules.generation }, 'dataplane drift detected; repairing');
        opts.onDrift?.();
        if (desired !== undefined) desired = { ...desired, reason: 'drift' };
        pending = true;
      }
    } catch (err) {
      log.warn({ err }, 'drift check failed');
    }
  }

  async function remove(r: NonNullable<typeof removal>): Promise<void> {
    r.attempts++;
    try {
      await dataplane.removeAll();
      removal = undefined;
      r.done();
    } catch (err) {
      log.warn({ err, attempt: r.attempts, attempts: removeAttempts }, 'removing the dataplane failed');
      if (r.attempts >= removeAttempts) {
        removal = undefined;
        r.fail(err);
      } else scheduleRetry();
    }
  }

  async function drain(): Promise<void> {
    running = true;
    try {
      while (due()) {
        if (removal !== undefined) {
          await remove(removal);
        } else if (withdrawPending) {
          withdrawPending = false;
          await withdraw();
        } else if (pending && desired !== undefined) {
          pending = false;
          driftRequested = false;
          await apply(desired);
        } else if (driftRequested) {
          driftRequested = false;
          await checkDriftNow();
        }
      }
    } finally {
      running = false;
      const waiters = idleWaiters;
      idleWaiters = [];
      for (const w of waiters) w();
    }
  }

  function kick(): void {
    if (running || !due()) return;
    inFlight = drain();
  }

  return {
    desire(rules, reason) {
      if (stopped) return;
      desired = { rules, reason };
      pending = true;
      clearRetry();
      kick();
    },
    checkDrift() {
      if (stopped || desired === undefined) return;
      driftRequested = true;
      kick();
    },
    fence() {
      if (stopped) return;
      fenced = true;
      withdrawPending = true;
      // The withdrawal must not wait for an apply's backoff.
      clearRetry();
      kick();
    },
    unfence() {
      fenced = false;
      if (desired === undefined || stopped) return Promise.resolve();
      const done = new Promise<void>((resolve) => unfenceWaiters.push(resolve));
      desired = { ...desired, reason: 'fence' };
      pending = true;
      clearRetry();
      kick();
      return done;
    },
    idle() {
      if (!running && !due()) return Promise.resolve();
      return new Promise<void>((resolve) => idleWaiters.push(resolve));
    },
    async stop() {
      stopped = true;
      clearRetry();
      await inFlight;
    },
    async removeAll() {
      stopped = true;
      clearRetry();
      await inFlight;
      backoff.reset();
      const done = new Promise<void>((resolve, reject) => {
        removal = { attempts: 0, done: resolve, fail: reject };
      });
      kick();
      return done;
    },
    lastApplyOk: () => lastOk,
    appliedGeneration: () => appliedGeneration,
  };
}
