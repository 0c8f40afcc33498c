// Time as a port: the runtime loops (heartbeats, fencing, drift checks, liveness ticks, backoff)
// read the time and schedule work only through a Clock, so unit tests drive them with a manual
// clock instead of waiting on real timers. Effectful (systemClock) and pure test double
// (createManualClock), nothing else.

export interface TimerHandle {
  cancel(): void;
}

export interface Clock {
  /** Monotonic milliseconds: for measuring durations and silences, never for display. */
  now(): number;
  /** Wall-clock time as RFC 3339 (ms), for what goes on the wire. */
  wallTime(): string;
  /** Runs fn once after ms. */
  setTimeout(fn: () => void, ms: number): TimerHandle;
}

export const systemClock: Clock = {
  now: () => performance.now(),
  wallTime: () => new Date().toISOString(),
  setTimeout(fn, ms) {
    const t = setTimeout(fn, ms);
    return { cancel: () => clearTimeout(t) };
  },
};

/** Runs fn every ms until cancelled (a chain of timeouts, so a slow fn never overlaps itself). */
export function every(clock: Clock, ms: number, fn: () => void): TimerHandle {
  let handle: TimerHandle | undefined;
  let cancelled = false;
  const tick = (): void => {
    if (cancelled) return;
    handle = clock.setTimeout(() => {
      if (cancelled) return;
      fn();
      tick();
    }, ms);
  };
  tick();
  return {
    cancel() {
      cancelled = true;
      handle?.cancel();
    },
  };
}

export interface ManualClock extends Clock {
  /** Moves time forward, running due timers in time order (timers they set run too, if due). */
  advance(ms: number): void;
  /** Timers still pending. */
  pending(): number;
}

/** A clock that moves only when told to; starts at `start` ms (wall time from 2026-01-01). */
export function createManualClock(start = 0): ManualClock {
  let now = start;
  let nextId = 0;
  const timers = new Map<number, { at: number; fn: () => void; id: number }>();
  return {
    now: () => now,
    wallTime: () => new Date(Date.UTC(2026, 0, 1) + now).toISOString(),
    setTimeout(fn, ms) {
      const id = nextId++;
      timers.set(id, { at: now + Math.max(0, ms), fn, id });
      return { cancel: () => timers.delete(id) };
    },
    advance(ms) {
      const until = now + ms;
      for (;;) {
        let due: { at: number; fn: () => void; id: number } | undefined;
        for (const t of timers.values()) {
          if (t.at <= until && (due === undefined || t.at < due.at || (t.at === due.at && t.id < due.id)))
            due = t;
        }
        if (due === undefined) break;
        timers.delete(due.id);
        now = Math.max(now, due.at);
        due.fn();
      }
      now = until;
    },
    pending: () => timers.size,
  };
}
