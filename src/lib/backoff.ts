// The one retry delay policy of every loop that retries (apply loop, fence recovery, consumers,
// publishers, informers, the projector's transactions, the owner watch): capped exponential
// growth with full jitter above a floor. Pure apart from the random source, which is injectable,
// and `sleepFor`, which waits on a Clock, so unit tests drive both deterministically.
//
// Why jitter: a DaemonSet of agents (or every replica after a broker restart) fails at the same
// instant; without jitter they all retry at the same instants too, forever in lockstep, and hit
// the recovering broker or apiserver together. Full jitter (a uniform draw up to the ceiling)
// spreads them widest; the floor keeps a draw near zero from turning into a hot loop.
//
// Attempt n waits a uniform draw in [minMs, min(maxMs, initialMs * factor^n)]. With a random
// source that always returns 1 the delays are exactly the old un-jittered doubling, which tests
// use to keep their timings exact.

import type { Clock } from './clock.ts';

export interface BackoffPolicy {
  /** Ceiling of the first delay. */
  initialMs: number;
  /** Cap of every delay. */
  maxMs: number;
  /** Floor of every delay; defaults to half of initialMs (never more than maxMs). */
  minMs?: number;
  /** Growth of the ceiling per attempt; defaults to 2. */
  factor?: number;
  /** Uniform in [0, 1); defaults to Math.random. */
  random?: () => number;
}

/** The delay before retry number `attempt` (0 for the first retry). */
export function backoffDelay(policy: BackoffPolicy, attempt: number): number {
  const factor = policy.factor ?? 2;
  const maxMs = Math.max(0, policy.maxMs);
  const minMs = Math.min(maxMs, Math.max(0, policy.minMs ?? policy.initialMs / 2));
  // Exponent capped: past ~1000 doublings the float is Infinity, which min() handles, but a huge
  // attempt count must not cost anything either.
  const ceiling = Math.max(minMs, Math.min(maxMs, policy.initialMs * factor ** Math.min(attempt, 1_000)));
  const r = Math.min(1, Math.max(0, (policy.random ?? Math.random)()));
  return Math.round(minMs + r * (ceiling - minMs));
}

export interface Backoff {
  /** The delay before the next retry; each call moves to the next attempt. */
  next(): number;
  /** After a success: the next failure starts again from the first delay. */
  reset(): void;
  /** Failures since the last reset (how many times next() was called). */
  readonly attempts: number;
}

export function createBackoff(policy: BackoffPolicy): Backoff {
  let attempts = 0;
  return {
    next: () => backoffDelay(policy, attempts++),
    reset: () => {
      attempts = 0;
    },
    get attempts() {
      return attempts;
    },
  };
}

/** Resolves after ms on the clock, or at once when the signal aborts (never rejects). */
export function sleepFor(clock: Clock, ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted === true) return resolve();
    const onAbort = (): void => {
      timer.cancel();
      resolve();
    };
    const timer = clock.setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
