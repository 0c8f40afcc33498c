// What agents report: heartbeats (liveness input) and apply acks (status input). Pure codecs.
// Topics: kseip.heartbeats.v1 and kseip.node-status.v1, both keyed by node name.
//
// Both carry `schema` like every other topic. Records written before the field existed have none
// and are read as schema 1 (the topics keep days of them, and `kseip events tail` reads them);
// a record of a schema this reader does not know is refused with that reason, never read as if
// it were schema 1.
import * as t from 'io-ts';
import type { Either } from 'fp-ts/lib/Either.js';
import { decodeJson, decodeParsed, type DecodeFailure, type SchemaVersion } from './decode.ts';
import {
  IPAddress,
  NodeName,
  NonNegativeInt,
  NonNegativeNumber,
  RuleRef,
  Text,
  Timestamp,
} from './primitives.ts';
import { Slot } from './node-rules.ts';

export const NODE_REPORTS_SCHEMA = 1 as const;
/** How readers treat `schema` on both report topics (see the header). */
export const NODE_REPORTS_SCHEMA_VERSION: SchemaVersion = {
  current: NODE_REPORTS_SCHEMA,
  absentMeans: NODE_REPORTS_SCHEMA,
};

export const Heartbeat = t.type({
  schema: t.literal(NODE_REPORTS_SCHEMA),
  node: NodeName,
  /** The agent's clock when sent; informational only — liveness judges silence on its own clock. */
  sentAt: Timestamp,
  /** Increments per heartbeat within one agent process; restarts from 0 with the process. */
  seq: NonNegativeInt,
  /** Agent process start time, so a restart is visible even without a gap. */
  bootId: Text,
});
export type Heartbeat = t.TypeOf<typeof Heartbeat>;

/**
 * A rule the agent left out of an otherwise applied state, because it cannot be programmed on this
 * node (an IPv6 egress IP, a slot out of range, steers of one slot that disagree). `role: steer`
 * names the policy rules it comes from in `sources`; `role: gateway` is a held egress IP, known by
 * its IP (a gateway entry names no rule). Everything else of the record was applied.
 */
export const UnprogrammableRule = t.type({
  role: t.keyof({ steer: null, gateway: null }),
  slot: Slot,
  egressIP: IPAddress,
  sources: t.array(RuleRef),
  reason: Text,
});
export type UnprogrammableRule = t.TypeOf<typeof UnprogrammableRule>;

export const NodeApplyStatus = t.intersection([
  t.type({
    schema: t.literal(NODE_REPORTS_SCHEMA),
    node: NodeName,
    /** The NodeRules generation this report is about. */
    generation: NonNegativeInt,
    ok: t.boolean,
    appliedAt: Timestamp,
    durationMs: NonNegativeNumber,
    /** True when the apply found the kernel already matching (nothing written). */
    unchanged: t.boolean,
  }),
  t.partial({
    /** Cut to MAX_TEXT_LENGTH by the agent (truncateText). */
    error: Text,
    reason: t.keyof({ update: null, drift: null, startup: null, fence: null }),
    /** On an ok apply: the rules left out (absent or empty: every rule applied). Optional, so
     *  acks of older agents still decode. */
    unprogrammable: t.array(UnprogrammableRule),
  }),
]);
export type NodeApplyStatus = t.TypeOf<typeof NodeApplyStatus>;

export const decodeHeartbeat = (v: Buffer | string | null): Either<DecodeFailure, Heartbeat> =>
  decodeJson(Heartbeat, v, { schema: NODE_REPORTS_SCHEMA_VERSION });
export const decodeNodeApplyStatus = (v: Buffer | string | null): Either<DecodeFailure, NodeApplyStatus> =>
  decodeJson(NodeApplyStatus, v, { schema: NODE_REPORTS_SCHEMA_VERSION });
/** decodeNodeApplyStatus for a value already parsed from JSON. */
export const decodeNodeApplyStatusValue = (v: unknown): Either<DecodeFailure, NodeApplyStatus> =>
  decodeParsed(NodeApplyStatus, v, { schema: NODE_REPORTS_SCHEMA_VERSION });
