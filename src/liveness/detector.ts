// Liveness judgement: turns heartbeat arrivals and the passing of time into NodeLost / NodeBack
// verdicts. Pure: no clock and no I/O — every input carries its own timestamps (liveness'
// monotonic ms for measuring silence, its wall time for what goes into the events); the state is
// updated in place (see DetectorState). The shell (./liveness.ts) feeds it and publishes the
// verdicts to cluster-events.
//
// Rules:
// - Liveness starts knowing nothing. The first heartbeat of a node gives NodeBack, as does the
//   first heartbeat after a NodeLost. A node that never heartbeats gets no verdict, and the
//   projector never treats it as an eligible gateway.
// - An alive node whose last heartbeat arrived more than lostAfterMs ago gets NodeLost, once.
// - Seeding (optional, at start-up): nodes that heartbeated shortly before this process started
//   may be alive in the log, left so by a previous liveness process. If they stay silent for
//   lostAfterMs after the seed, they get NodeLost, so a node that died while no liveness ran is
//   still declared lost. They get no NodeBack until they heartbeat.
// - Silence is judged only on liveness' own clock (arrival times), never on agents' clocks.
// - Blindness: silence means something only while liveness itself can read the heartbeats topic.
//   When no fetch has completed for blindAfterMs (broker unreachable from liveness, or liveness
//   stalled), no NodeLost is given; when fetches complete again, every node's silence restarts
//   from that moment. A Kafka outage is thus not taken for the death of every node at once:
//   cut-off agents fence themselves (src/agents/fencing.ts) and recover on their own, and no
//   gateway moves. A node cut off alone is still declared lost, because liveness still sees.
import { compare } from '../lib/compare.ts';

export type NodeStatus = 'alive' | 'lost' | 'seeded';

export interface NodeTrack {
  readonly status: NodeStatus;
  /** Arrival of the last heartbeat (monotonic ms); for a seeded node, the seed time. */
  readonly lastAt: number;
  /** Wall time of that arrival (RFC 3339), or the seeded record's time. */
  readonly lastWall: string;
}

/**
 * Mutable on purpose, like the projector's view: at 5,000 nodes heartbeating every 100 ms a copy
 * per heartbeat would cost more than everything else liveness does. Only evolveDetector writes it.
 */
export interface DetectorState {
  readonly nodes: Map<string, NodeTrack>;
  /** When a fetch of the heartbeats topic last completed (undefined: never reported). */
  lastSightedAt: number | undefined;
  blind: boolean;
}

export interface DetectorThresholds {
  /** Silence after which an alive node is lost. */
  readonly lostAfterMs: number;
  /** No completed fetch for this long: liveness is blind and judges nobody. */
  readonly blindAfterMs: number;
}

export type DetectorInput =
  | { readonly type: 'HeartbeatArrived'; readonly node: string; readonly at: number; readonly wall: string }
  | { readonly type: 'Tick'; readonly now: number }
  /** A fetch of the heartbeats topic completed (with or without records). */
  | { readonly type: 'Sighted'; readonly at: number }
  /** Nodes seen heartbeating before start (with the time of their last record), at `at`. */
  | {
      readonly type: 'Seeded';
      readonly nodes: readonly { readonly node: string; readonly lastWall: string }[];
      readonly at: number;
    };

export type Verdict =
  | { readonly type: 'NodeBack'; readonly node: string; readonly heartbeatAt: string }
  | {
      readonly type: 'NodeLost';
      readonly node: string;
      readonly lastHeartbeatAt: string;
      readonly silenceMs: number;
    };

export const initialDetectorState = (): DetectorState => ({
  nodes: new Map(),
  lastSightedAt: undefined,
  blind: false,
});

/** Applies one input to `state` (in place) and returns the verdicts it produces, in order. */
export function evolveDetector(
  state: DetectorState,
  input: DetectorInput,
  thresholds: DetectorThresholds,
): Verdict[] {
  const { lostAfterMs, blindAfterMs } = thresholds;
  switch (input.type) {
    case 'HeartbeatArrived': {
      const previous = state.nodes.get(input.node);
      state.nodes.set(input.node, { status: 'alive', lastAt: input.at, lastWall: input.wall });
      return previous?.status === 'alive'
        ? []
        : [{ type: 'NodeBack', node: input.node, heartbeatAt: input.wall }];
    }
    case 'Tick': {
      if (state.lastSightedAt !== undefined && input.now - state.lastSightedAt > blindAfterMs) {
        state.blind = true;
        return [];
      }
      const lost: string[] = [];
      for (const [node, track] of state.nodes) {
        if (track.status !== 'lost' && input.now - track.lastAt > lostAfterMs) lost.push(node);
      }
      // Several nodes lost in one tick are reported in a stable order.
      return lost.sort(compare).map((node): Verdict => {
        const track = state.nodes.get(node)!;
        state.nodes.set(node, { ...track, status: 'lost' });
        return {
          type: 'NodeLost',
          node,
          lastHeartbeatAt: track.lastWall,
          silenceMs: Math.round(input.now - track.lastAt),
        };
      });
    }
    case 'Sighted': {
      if (state.blind) {
        state.blind = false;
        for (const [node, track] of state.nodes) {
          if (track.status !== 'lost' && track.lastAt < input.at)
            state.nodes.set(node, { ...track, lastAt: input.at });
        }
      }
      state.lastSightedAt = input.at;
      return [];
    }
    case 'Seeded': {
      for (const { node, lastWall } of input.nodes) {
        if (!state.nodes.has(node)) state.nodes.set(node, { status: 'seeded', lastAt: input.at, lastWall });
      }
      return [];
    }
    default: {
      const _exhaustive: never = input;
      return _exhaustive;
    }
  }
}

/**
 * The current verdict for every node liveness has an opinion on, for a new leader to publish
 * (it cannot know which of them the previous leader managed to write). Seeded nodes have none
 * yet. Both verdicts are idempotent for the projector.
 */
export function selectCurrentVerdicts(state: DetectorState): Verdict[] {
  return [...state.nodes]
    .sort(([a], [b]) => compare(a, b))
    .flatMap(([node, track]): Verdict[] => {
      if (track.status === 'alive') return [{ type: 'NodeBack', node, heartbeatAt: track.lastWall }];
      if (track.status === 'lost')
        return [{ type: 'NodeLost', node, lastHeartbeatAt: track.lastWall, silenceMs: 0 }];
      return [];
    });
}
