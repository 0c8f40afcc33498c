// Self-fencing, as a pure state machine over explicit timestamps (monotonic ms). No I/O and no
// clock: src/agents/agent.ts feeds it heartbeat acknowledgements and timer ticks and carries out
// the effects it returns. Why it exists (fail safe): a gateway cut off from the log must drop its
// egress IPs before liveness declares it lost and the projector gives the IPs to another node, so
// that no two nodes ever answer ARP for one IP.
//
// Contact is measured from the moment a heartbeat that Kafka later acknowledged was *sent*, not
// acknowledged: liveness starts its silence clock when that heartbeat arrives, which is no
// earlier than its send. So with fenceAfterMs below liveness' lost threshold, the fence fires
// first (docs/failover.md has the arithmetic). A late acknowledgement of an old heartbeat does
// not count as contact being back.
//
// Phases: in-contact → (silence > fenceAfterMs) → fenced → (a fresh heartbeat is acknowledged)
// → recovering → (the agent has read the node-rules log to its current end and applied the
// latest full state) → in-contact. Losing contact again while recovering fences again and bumps
// the epoch, so the stale recovery's completion is ignored.

export type FencePhase = 'in-contact' | 'fenced' | 'recovering';

export interface FenceState {
  readonly phase: FencePhase;
  /** Send time of the newest acknowledged heartbeat (or the agent's start). */
  readonly lastContactAt: number;
  /** Bumped on every fence; a recovery carries the epoch it started in. */
  readonly epoch: number;
}

export type FenceInput =
  | { readonly type: 'ContactConfirmed'; readonly sentAt: number; readonly now: number }
  | { readonly type: 'Tick'; readonly now: number }
  | { readonly type: 'Recovered'; readonly epoch: number; readonly now: number };

export type FenceEffect =
  /** Withdraw egress IPs now, and keep them withdrawn until Unfenced. */
  | { readonly type: 'Withdraw'; readonly silenceMs: number }
  /** Contact is back: catch up with node-rules, apply the latest full state, then send Recovered. */
  | { readonly type: 'BeginRecovery'; readonly epoch: number }
  /** The latest full state (egress IPs included) is applied: no longer fenced. */
  | { readonly type: 'Unfenced'; readonly epoch: number };

export interface FenceStep {
  readonly state: FenceState;
  readonly effect?: FenceEffect;
}

/**
 * An agent starts in contact, with the silence clock starting at its own start: a restarted
 * agent keeps what the previous process applied (established flows survive a restart) unless
 * it cannot reach Kafka within fenceAfterMs.
 */
export function initialFenceState(startedAt: number): FenceState {
  return { phase: 'in-contact', lastContactAt: startedAt, epoch: 0 };
}

export const isFenced = (state: FenceState): boolean => state.phase !== 'in-contact';

export function evolveFence(state: FenceState, input: FenceInput, fenceAfterMs: number): FenceStep {
  switch (input.type) {
    case 'ContactConfirmed': {
      const lastContactAt = Math.max(state.lastContactAt, input.sentAt);
      const fresh = input.now - input.sentAt <= fenceAfterMs;
      if (state.phase === 'fenced' && fresh) {
        return {
          state: { ...state, phase: 'recovering', lastContactAt },
          effect: { type: 'BeginRecovery', epoch: state.epoch },
        };
      }
      return { state: { ...state, lastContactAt } };
    }
    case 'Tick':
      return checkSilence(state, input.now, fenceAfterMs);
    case 'Recovered': {
      if (state.phase !== 'recovering' || input.epoch !== state.epoch) return { state };
      const silenced = checkSilence(state, input.now, fenceAfterMs);
      if (silenced.effect !== undefined) return silenced;
      return { state: { ...state, phase: 'in-contact' }, effect: { type: 'Unfenced', epoch: state.epoch } };
    }
    default: {
      const _exhaustive: never = input;
      return _exhaustive;
    }
  }
}

function checkSilence(state: FenceState, now: number, fenceAfterMs: number): FenceStep {
  const silenceMs = now - state.lastContactAt;
  if (state.phase === 'fenced' || silenceMs <= fenceAfterMs) return { state };
  return {
    state: { ...state, phase: 'fenced', epoch: state.epoch + 1 },
    effect: { type: 'Withdraw', silenceMs },
  };
}
