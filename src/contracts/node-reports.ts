// What agents report: heartbeats (liveness input) and apply acks (status input). Pure codecs.
// Topics: kseip.heartbeats.v1 and kseip.node-status.v1, both keyed by node name.
import * as t from 'io-ts';
import type { Either } from 'fp-ts/lib/Either.js';
import { decodeJson, type DecodeFailure } from './decode.ts';

export const Heartbeat = t.type({
  node: t.string,
  /** The agent's clock when sent; informational only — liveness judges silence on its own clock. */
  sentAt: t.string,
  /** Increments per heartbeat within one agent process; restarts from 0 with the process. */
  seq: t.number,
  /** Agent process start time, so a restart is visible even without a gap. */
  bootId: t.string,
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
  slot: t.number,
  egressIP: t.string,
  sources: t.array(t.string),
  reason: t.string,
});
export type UnprogrammableRule = t.TypeOf<typeof UnprogrammableRule>;

export const NodeApplyStatus = t.intersection([
  t.type({
    node: t.string,
    /** The NodeRules generation this report is about. */
    generation: t.number,
    ok: t.boolean,
    appliedAt: t.string,
    durationMs: t.number,
    /** True when the apply found the kernel already matching (nothing written). */
    unchanged: t.boolean,
  }),
  t.partial({
    error: t.string,
    reason: t.keyof({ update: null, drift: null, startup: null, fence: null }),
    /** On an ok apply: the rules left out (absent or empty: every rule applied). Optional, so
     *  acks of older agents still decode. */
    unprogrammable: t.array(UnprogrammableRule),
  }),
]);
export type NodeApplyStatus = t.TypeOf<typeof NodeApplyStatus>;

export const decodeHeartbeat = (v: Buffer | string | null): Either<DecodeFailure, Heartbeat> =>
  decodeJson(Heartbeat, v);
export const decodeNodeApplyStatus = (v: Buffer | string | null): Either<DecodeFailure, NodeApplyStatus> =>
  decodeJson(NodeApplyStatus, v);
