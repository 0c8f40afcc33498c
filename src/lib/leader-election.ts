// Leader election on a coordination.k8s.io/v1 Lease, for components of which exactly one replica
// may write (watcher, liveness). Effectful: owns reads and resourceVersion-conditioned writes of
// one Lease object, and nothing else.
//
// The algorithm is client-go's leaderelection, reduced to what we need:
// - A candidate takes the Lease when it is free (no holder) or expired. "Expired" is judged on
//   the candidate's own clock: the time since it last saw the Lease's record change, never the
//   renewTime written by another machine, so clock skew between nodes cannot cause two leaders.
// - Every write is conditioned on the resourceVersion last read. A 409 Conflict means somebody
//   else wrote the Lease first, i.e. this candidate lost; a leader that sees one steps down.
// - A leader that could not renew within renewDeadline steps down by itself. renewDeadline is
//   shorter than leaseDuration, so it stops acting before any other replica may take over.
// - term = spec.leaseTransitions after acquiring: it grows with every change of holder, which is
//   what readers of our events fence on (src/contracts/cluster-events.ts Producer.term).
// - A taker never lets the count fall: it writes one more than the highest of the Lease's count,
//   every count it saw before, and the optional termFloor (the newest term the log holds,
//   src/lib/term-floor.ts). A Lease deleted with its namespace, then made anew, would otherwise
//   start at 0 under a log that readers fence at term 3.
import { setTimeout as sleep } from 'node:timers/promises';
import {
  ApiException,
  CoordinationV1Api,
  V1MicroTime,
  type KubeConfig,
  type V1Lease,
} from '@kubernetes/client-node';
import { MAX_TERM } from '../contracts/cluster-events.ts';
import type { Logger } from './log.ts';
import { createLogger } from './log.ts';

export interface LeaderElectionOptions {
  kubeConfig: KubeConfig;
  namespace: string;
  name: string;
  /** Unique per process (a restart is a new candidate): e.g. `${hostname}-${pid}-${random}`. */
  identity: string;
  /** How long others wait after the last renewal they saw before taking over. Default 15 s. */
  leaseDurationMs?: number;
  /** A leader that has not renewed for this long steps down. Default 10 s; < leaseDurationMs. */
  renewDeadlineMs?: number;
  /** Pause between attempts to acquire or renew. Default 2 s. */
  retryPeriodMs?: number;
  /**
   * The newest term already used for this Lease's component (-1: none), read once before the
   * first take-over; retried until it answers, since a term below it would be fenced.
   */
  termFloor?: () => Promise<number>;
  log?: Logger;
}

export interface Leadership {
  /** spec.leaseTransitions when this candidate took the Lease. */
  readonly term: number;
  readonly identity: string;
  /** Aborted the moment leadership is lost (or released); reason says why. */
  readonly signal: AbortSignal;
  /** Resolves with the reason once leadership is lost or released. */
  readonly lost: Promise<string>;
}

export interface LeaderElector {
  /** Waits until this candidate holds the Lease (rejects only if `signal` aborts first). */
  acquire(signal?: AbortSignal): Promise<Leadership>;
  /**
   * Gives the Lease up now (holder cleared, duration 1 s) so a standby takes over at once instead
   * of after leaseDuration. Best effort: a failure only means the others wait for expiry.
   */
  release(): Promise<void>;
}

type Attempt =
  | { kind: 'held'; lease: V1Lease }
  | { kind: 'taken'; holder: string }
  | { kind: 'conflict' }
  | { kind: 'error'; err: unknown };

export function createLeaderElector(opts: LeaderElectionOptions): LeaderElector {
  const leaseDurationMs = opts.leaseDurationMs ?? 15_000;
  const renewDeadlineMs = opts.renewDeadlineMs ?? 10_000;
  const retryPeriodMs = opts.retryPeriodMs ?? 2_000;
  if (renewDeadlineMs >= leaseDurationMs) {
    throw new Error(
      `renewDeadlineMs (${renewDeadlineMs}) must be shorter than leaseDurationMs (${leaseDurationMs})`,
    );
  }
  const log = (opts.log ?? createLogger('leader-election')).child({
    lease: `${opts.namespace}/${opts.name}`,
    identity: opts.identity,
  });
  const api = opts.kubeConfig.makeApiClient(CoordinationV1Api);
  const { namespace, name, identity } = opts;
  const leaseDurationSeconds = Math.max(1, Math.ceil(leaseDurationMs / 1000));

  // What this candidate last saw of the Lease, and when (its own monotonic clock).
  let observed: { holder: string; renewTime: string; resourceVersion: string } | undefined;
  let observedAt = 0;
  let current: { lease: V1Lease; stop: (reason: string) => void } | undefined;
  // The highest term known to be taken: every leaseTransitions seen, and the log's floor.
  let highestTerm = -1;
  let floorRead = opts.termFloor === undefined;

  /** The term a taker writes: above everything known, within the int32 the API allows. */
  const nextTerm = (leaseTransitions: number): number =>
    Math.min(MAX_TERM, Math.max(leaseTransitions, highestTerm) + 1);

  async function readFloor(signal: AbortSignal | undefined): Promise<void> {
    while (!floorRead) {
      signal?.throwIfAborted();
      try {
        const floor = await opts.termFloor!();
        if (floor > highestTerm) highestTerm = floor;
        floorRead = true;
        log.info({ termFloor: floor }, 'term floor known');
      } catch (err) {
        log.warn({ err }, 'reading the term floor failed; retrying');
        await sleep(retryPeriodMs, undefined, signal ? { signal } : {});
      }
    }
  }

  function observe(lease: V1Lease): void {
    const transitions = lease.spec?.leaseTransitions ?? 0;
    if (transitions > highestTerm) highestTerm = transitions;
    const seen = {
      holder: lease.spec?.holderIdentity ?? '',
      renewTime: String(lease.spec?.renewTime ?? ''),
      resourceVersion: lease.metadata?.resourceVersion ?? '',
    };
    if (observed?.holder !== seen.holder || observed.renewTime !== seen.renewTime)
      observedAt = performance.now();
    observed = seen;
  }

  async function tryAcquireOrRenew(): Promise<Attempt> {
    const now = new V1MicroTime();
    let lease: V1Lease;
    try {
      lease = await api.readNamespacedLease({ name, namespace });
    } catch (err) {
      if (!(err instanceof ApiException) || err.code !== 404) return { kind: 'error', err };
      try {
        const created = await api.createNamespacedLease({
          namespace,
          body: {
            metadata: { name, namespace },
            spec: {
              holderIdentity: identity,
              leaseDurationSeconds,
              acquireTime: now,
              renewTime: now,
              // A new Lease under an old log (a reinstall) continues the log's count.
              leaseTransitions: nextTerm(-1),
            },
          },
        });
        observe(created);
        return { kind: 'held', lease: created };
      } catch (createErr) {
        if (createErr instanceof ApiException && createErr.code === 409) return { kind: 'conflict' };
        return { kind: 'error', err: createErr };
      }
    }
    observe(lease);
    const holder = lease.spec?.holderIdentity ?? '';
    const holderDurationMs = (lease.spec?.leaseDurationSeconds ?? leaseDurationSeconds) * 1000;
    const expired = performance.now() - observedAt > holderDurationMs;
    if (holder !== '' && holder !== identity && !expired) return { kind: 'taken', holder };
    const spec = lease.spec ?? {};
    const takingOver = holder !== identity;
    const body: V1Lease = {
      ...lease,
      spec: {
        ...spec,
        holderIdentity: identity,
        leaseDurationSeconds,
        renewTime: now,
        acquireTime: takingOver ? now : spec.acquireTime,
        leaseTransitions: takingOver ? nextTerm(spec.leaseTransitions ?? 0) : (spec.leaseTransitions ?? 0),
      },
    };
    try {
      // replace carries metadata.resourceVersion, so the write only succeeds if nobody wrote since.
      const updated = await api.replaceNamespacedLease({ name, namespace, body });
      observe(updated);
      return { kind: 'held', lease: updated };
    } catch (err) {
      if (err instanceof ApiException && err.code === 409) return { kind: 'conflict' };
      return { kind: 'error', err };
    }
  }

  function lead(lease: V1Lease): Leadership {
    const controller = new AbortController();
    let resolveLost!: (reason: string) => void;
    const lost = new Promise<string>((resolve) => (resolveLost = resolve));
    const term = lease.spec?.leaseTransitions ?? 0;
    const stop = (reason: string): void => {
      if (controller.signal.aborted) return;
      if (current?.stop === stop) current = undefined;
      controller.abort(new Error(reason));
      resolveLost(reason);
    };
    current = { lease, stop };
    log.info({ term }, 'leadership acquired');

    // Renew loop: runs until leadership ends; failures are retried until renewDeadline passes.
    void (async () => {
      let lastRenew = performance.now();
      while (!controller.signal.aborted) {
        await sleep(retryPeriodMs, undefined, { signal: controller.signal }).catch(() => undefined);
        if (controller.signal.aborted) return;
        const attempt = await tryAcquireOrRenew();
        if (controller.signal.aborted) return;
        switch (attempt.kind) {
          case 'held':
            if (current?.stop === stop) current.lease = attempt.lease;
            lastRenew = performance.now();
            break;
          case 'taken':
            log.warn({ term, holder: attempt.holder }, 'leadership lost: another candidate holds the lease');
            stop(`lease taken by ${attempt.holder}`);
            return;
          case 'conflict':
            log.warn({ term }, 'leadership lost: lease was written by someone else (409)');
            stop('lease conflict (409)');
            return;
          case 'error':
            log.warn({ term, err: attempt.err }, 'lease renewal failed; retrying');
            if (performance.now() - lastRenew > renewDeadlineMs) {
              log.warn({ term, renewDeadlineMs }, 'leadership lost: could not renew within the deadline');
              stop('renew deadline exceeded');
              return;
            }
            break;
          default: {
            const _exhaustive: never = attempt;
            return _exhaustive;
          }
        }
      }
    })();
    return { term, identity, signal: controller.signal, lost };
  }

  return {
    async acquire(signal) {
      if (current) throw new Error('already leading');
      await readFloor(signal);
      let lastHolder = '';
      for (;;) {
        signal?.throwIfAborted();
        const attempt = await tryAcquireOrRenew();
        if (attempt.kind === 'held') return lead(attempt.lease);
        if (attempt.kind === 'error') log.warn({ err: attempt.err }, 'lease acquisition failed; retrying');
        if (attempt.kind === 'taken' && attempt.holder !== lastHolder) {
          lastHolder = attempt.holder;
          log.info({ holder: attempt.holder }, 'standing by: lease held by another candidate');
        }
        // A fixed poll, not a failure backoff (src/lib/backoff.ts): the lease's timing contract
        // (leaseDuration > renewDeadline > retryPeriod) is what bounds a takeover.
        await sleep(retryPeriodMs, undefined, signal ? { signal } : {});
      }
    },

    async release() {
      const leading = current;
      if (!leading) return;
      leading.stop('released');
      const spec = leading.lease.spec ?? {};
      try {
        await api.replaceNamespacedLease({
          name,
          namespace,
          body: {
            ...leading.lease,
            spec: { ...spec, holderIdentity: '', leaseDurationSeconds: 1, renewTime: new V1MicroTime() },
          },
        });
        log.info({ term: spec.leaseTransitions ?? 0 }, 'lease released');
      } catch (err) {
        log.warn({ err }, 'lease release failed; standbys take over after the lease expires');
      }
    },
  };
}
