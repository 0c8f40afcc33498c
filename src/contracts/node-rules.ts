// The node-rules contract: the full desired dataplane state of one node, produced by the projector
// (src/projection/) and applied by that node's agent (src/agents/). Pure codecs.
// Topic: kseip.node-rules.v1, key = node name, log-compacted, so the latest record per node is
// always there for an agent that (re)starts. A record is the WHOLE state, never a delta: applying
// it twice changes nothing, and an agent that missed records only needs the latest.
//
// Every field is checked when decoded (./primitives.ts): an agent renders these values into
// `nft` and `ip` input, so a record that anyone but the projector wrote and that carries
// anything else than addresses, CIDRs, node names, rule names and integers is dead-lettered
// whole, never applied in part (test/node-rules-hostile.unit.test.ts feeds it hostile strings).
import * as t from 'io-ts';
import type { Either } from 'fp-ts/lib/Either.js';
import { decodeJson, type DecodeFailure } from './decode.ts';
import {
  CIDR,
  IPAddress,
  IPAddressOrNone,
  NodeName,
  NodeNameOrNone,
  NonNegativeInt,
  RuleRef,
} from './primitives.ts';

export const NODE_RULES_SCHEMA = 1;

/**
 * Every egress IP in use gets a slot, allocated by the projection (lowest free, kept while the IP
 * is in use, so an unrelated change never renumbers it). The slot derives, identically on every
 * node: the packet mark (slot << markShift within the configured mask), the routing table
 * (tableBase + slot), the VXLAN VNI (vniBase + slot) and the device name (kseip-v<slot>).
 * Slots start at 1 (a mark of 0 would mean "unmarked"). Several steers may share a slot (one
 * egress IP, different destinations or pod sets); each steer's pods go with its own
 * destinations only. The codec admits any positive integer; the agent leaves a slot its mark mask
 * cannot hold out of what it applies and reports it (src/dataplane/kernel-state.ts).
 */
export const Slot = t.refinement(t.number, (n) => Number.isSafeInteger(n) && n >= 1, 'Slot');

/** Director role: steer this node's selected pods' traffic for these destinations to a gateway. */
export const Steer = t.type({
  slot: Slot,
  egressIP: IPAddress,
  gatewayNode: NodeNameOrNone,
  /** Underlay address of the active gateway: the tunnel's remote. Equal to this node's own IP
   *  when the gateway is this node, in which case traffic is SNATed locally without a tunnel.
   *  gatewayNode and gatewayIP are both "" while no node is eligible to hold the egress IP: the
   *  director must then DROP the matching traffic of these pods (never let it leave with the
   *  node IP) until a gateway is assigned. */
  gatewayIP: IPAddressOrNone,
  /** Local pod IPs only (sorted); never pods of other nodes. */
  podIPs: t.array(IPAddress),
  /** Sorted destination CIDRs and the sorted CIDRs excepted from them. */
  destinations: t.array(CIDR),
  exceptions: t.array(CIDR),
  /** The policy rules this steer comes from ("ns/name#0", "cluster/name#1"), for explain/audit. */
  sources: t.array(RuleRef),
});
export type Steer = t.TypeOf<typeof Steer>;

/** Gateway role: this node actively holds the egress IP. Standbys hold nothing until promoted. */
export const HeldEgressIP = t.type({
  slot: Slot,
  egressIP: IPAddress,
});
export type HeldEgressIP = t.TypeOf<typeof HeldEgressIP>;

export const NodeRules = t.intersection([
  t.type({
    schema: t.literal(NODE_RULES_SCHEMA),
    node: NodeName,
    /**
     * Strictly increasing per node: the cluster-events offset of the event that last changed this
     * node's rules. Deterministic on replay, and it points at the fact that caused the change.
     */
    generation: NonNegativeInt,
    /** This node's own underlay address (source of its tunnels); empty if unknown yet. */
    nodeIP: IPAddressOrNone,
    steers: t.array(Steer),
    egressIPs: t.array(HeldEgressIP),
  }),
  t.partial({
    /**
     * Destinations never steered, whatever a steer says: the cluster's own node addresses, pod
     * CIDRs and service CIDRs that this node's steers' destinations overlap (absent: none). The
     * agent adds its --never-steer flag to them.
     */
    neverSteer: t.array(CIDR),
  }),
]);
export type NodeRules = t.TypeOf<typeof NodeRules>;

export function decodeNodeRules(value: Buffer | string | null): Either<DecodeFailure, NodeRules> {
  return decodeJson(NodeRules, value, { schema: { current: NODE_RULES_SCHEMA } });
}

/** The state that means "nothing of ours on this node": what removal converges to. */
export function emptyNodeRules(node: string, generation: number): NodeRules {
  return { schema: NODE_RULES_SCHEMA, node, generation, nodeIP: '', steers: [], egressIPs: [] };
}
