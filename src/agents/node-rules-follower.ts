// What an agent makes of its node's records in kseip.node-rules.v1: the catch-up rule and the
// generation rule, as a pure state machine. No I/O; src/agents/node-rules-consumer.ts feeds it
// decoded records and read positions and applies what it delivers.
//
// Contract:
// - Catching up: the agent saw the partition's end offset at start (`target`). It delivers
//   NOTHING until it has read up to target - 1, keeping only the latest record for its node;
//   then it delivers that record's state, or the empty state if there was none (or it was a
//   tombstone). Applying a half-read log could undo a newer state with an older one.
// - Following: a record for the node is delivered only if it is newer than the last delivered
//   one: a higher offset, and for a state a higher generation. Re-reads after a consumer
//   rebalance (offsets are not committed, so a re-joined consumer starts from the beginning)
//   therefore deliver nothing twice. A tombstone after catch-up means "nothing of ours here".
import { emptyNodeRules, type NodeRules } from '../contracts/node-rules.ts';

/** A record of this node's key: its decoded state, or null for a tombstone. */
export interface NodeRecord {
  readonly offset: bigint;
  readonly rules: NodeRules | null;
}

export type FollowerState =
  | {
      readonly phase: 'catching-up';
      readonly node: string;
      /** End offset (exclusive) seen at start: caught up once offset target - 1 has been read. */
      readonly target: bigint;
      readonly latest: NodeRecord | undefined;
      readonly latestGeneration: number | undefined;
    }
  | {
      readonly phase: 'following';
      readonly node: string;
      /** Offset of the last delivered record (-1 when the delivered state was "absent"). */
      readonly offset: bigint;
      readonly generation: number;
      readonly latestGeneration: number | undefined;
    };

export type FollowerInput =
  | { readonly type: 'RecordRead'; readonly record: NodeRecord }
  /** Everything up to and including `offset` has been read (from the consumer's batch events). */
  | { readonly type: 'PositionReached'; readonly offset: bigint };

export interface FollowerStep {
  readonly state: FollowerState;
  /** The full desired state to apply now, if any. */
  readonly deliver?: NodeRules;
}

/** Starts from the partition's offsets; a partition with nothing to read is caught up at once. */
export function startFollower(node: string, low: bigint, high: bigint): FollowerStep {
  const state: FollowerState = {
    phase: 'catching-up',
    node,
    target: high,
    latest: undefined,
    latestGeneration: undefined,
  };
  return high <= low ? catchUp(state) : { state };
}

function catchUp(state: Extract<FollowerState, { phase: 'catching-up' }>): FollowerStep {
  const latest = state.latest;
  const generation = latest?.rules?.generation ?? state.latestGeneration ?? 0;
  const deliver = latest?.rules ?? emptyNodeRules(state.node, generation);
  return {
    state: {
      phase: 'following',
      node: state.node,
      offset: latest?.offset ?? -1n,
      generation,
      latestGeneration: state.latestGeneration,
    },
    deliver,
  };
}

const newerGeneration = (seen: number | undefined, g: number): number =>
  seen === undefined || g > seen ? g : seen;

export function evolveFollower(state: FollowerState, input: FollowerInput): FollowerStep {
  switch (input.type) {
    case 'RecordRead': {
      const { record } = input;
      const latestGeneration =
        record.rules === null
          ? state.latestGeneration
          : newerGeneration(state.latestGeneration, record.rules.generation);
      if (state.phase === 'catching-up') {
        const latest =
          state.latest === undefined || record.offset > state.latest.offset ? record : state.latest;
        const next = { ...state, latest, latestGeneration };
        return record.offset >= state.target - 1n ? catchUp(next) : { state: next };
      }
      if (record.offset <= state.offset) return { state: { ...state, latestGeneration } };
      if (record.rules === null) {
        return {
          state: { ...state, offset: record.offset, latestGeneration },
          deliver: emptyNodeRules(state.node, state.generation),
        };
      }
      if (record.rules.generation <= state.generation) return { state: { ...state, latestGeneration } };
      return {
        state: { ...state, offset: record.offset, generation: record.rules.generation, latestGeneration },
        deliver: record.rules,
      };
    }
    case 'PositionReached':
      if (state.phase === 'catching-up' && input.offset >= state.target - 1n) return catchUp(state);
      return { state };
    default: {
      const _exhaustive: never = input;
      return _exhaustive;
    }
  }
}

export const isCaughtUp = (state: FollowerState): boolean => state.phase === 'following';
