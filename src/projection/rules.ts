// Policy rules: from a normalized spec to a RuleRec, and whether a rule is Accepted (pools).
// Pure.
//
// Pools (docs/api.md): an egress IP is usable only when an Accepted StaticEgressIPPool covers it
// (a CIDR or a first-last range) and admits the policy's namespace; the pool's nodeSelector then
// limits which nodes may hold it. Accepted pools do not overlap (pools.ts), so the governing pool
// of an address is the one Accepted pool that covers it.
// - StaticEgressIP: the governing pool must admit the policy's namespace (absent selector: every
//   namespace), else NamespaceNotPermitted. No pool covers the IP: NoPoolCoversIP; only pools
//   that are not Accepted cover it: PoolNotAccepted.
// - ClusterStaticEgressIP: the governing pool is the covering pool. Its namespaceSelector
//   still applies, per namespace: the rule's scope is the namespaces that the policy's
//   namespaceSelector selects AND the pool admits. A cluster admin can thereby not hand a
//   tenant's reserved IP to another namespace by accident; selection.ts applies the scope.
import type { EgressRule } from '../contracts/cluster-events.ts';
import type { Labels } from '../contracts/primitives.ts';
import { chain, isLeft, left, map, right, type Either } from 'fp-ts/lib/Either.js';
import { pipe } from 'fp-ts/lib/function.js';
import {
  computeDestinationSet,
  parseAddress,
  parseCidr,
  rangesCover,
  type DestinationSet,
  type Family,
  type ParsedAddress,
  type ParsedCidr,
} from './addresses.ts';
import { matchesOptionalSelector } from './labels.ts';
import {
  MAX_GATEWAYS,
  type AcceptReason,
  type PolicyRec,
  type PoolRec,
  type PoolStanding,
  type RuleRec,
} from './model.ts';

export function ruleId(policy: PolicyRec, index: number): string {
  return policy.namespace === undefined
    ? `cluster/${policy.name}#${index}`
    : `${policy.namespace}/${policy.name}#${index}`;
}

/** Why a rule's spec cannot be used at all (the API server should have refused it). */
export type RuleSpecError =
  | { readonly _tag: 'InvalidEgressIP'; readonly message: string }
  | { readonly _tag: 'InvalidDestination'; readonly message: string }
  | { readonly _tag: 'NoDestinations'; readonly message: string };

export interface ParsedRuleSpec {
  readonly egress: ParsedAddress;
  readonly destinations: readonly ParsedCidr[];
  readonly exceptions: readonly ParsedCidr[];
  /** The destinations minus the exceptions: never empty. */
  readonly destSet: DestinationSet;
}

const invalidDestination = (message: string): RuleSpecError => ({ _tag: 'InvalidDestination', message });

function parseCidrs(texts: readonly string[]): Either<RuleSpecError, ParsedCidr[]> {
  const out: ParsedCidr[] = [];
  for (const t of texts) {
    const c = parseCidr(t);
    if (c === undefined) return left(invalidDestination(`${JSON.stringify(t)} is not a CIDR`));
    out.push(c);
  }
  return right(out);
}

/**
 * The addresses of a rule, checked: one family throughout, at least one destination, and at
 * least one address left once the exceptions are taken out. The API server and the watcher
 * refuse an exception that covers a whole destination; several exceptions that together cover
 * every destination are caught only here (NoDestinations), as CEL cannot cheaply subtract sets.
 */
export function parseRuleSpec(spec: EgressRule): Either<RuleSpecError, ParsedRuleSpec> {
  const egress = parseAddress(spec.egressIP);
  return pipe(
    egress === undefined
      ? left<RuleSpecError, ParsedAddress>({
          _tag: 'InvalidEgressIP',
          message: `egress IP ${JSON.stringify(spec.egressIP)} is not an IP address`,
        })
      : right<RuleSpecError, ParsedAddress>(egress),
    chain((e) =>
      pipe(
        parseCidrs(spec.destinations),
        chain((destinations) =>
          pipe(
            parseCidrs(spec.exceptions),
            map((exceptions) => ({ egress: e, destinations, exceptions })),
          ),
        ),
      ),
    ),
    chain((parsed): Either<RuleSpecError, ParsedRuleSpec> => {
      if (parsed.destinations.length === 0) return left(invalidDestination('the rule has no destination'));
      const family = parsed.egress.family;
      if ([...parsed.destinations, ...parsed.exceptions].some((c) => c.family !== family))
        return left(
          invalidDestination(`destinations and exceptions must be of the egress IP's family (IPv${family})`),
        );
      const destSet = computeDestinationSet(family, parsed.destinations, parsed.exceptions);
      if (destSet.intervals.length === 0)
        return left({
          _tag: 'NoDestinations',
          message: `the exceptions cover every destination, so no traffic would leave with ${parsed.egress.text}: remove the exceptions that cover whole destinations, or add a destination they leave open`,
        });
      return right({ ...parsed, destSet });
    }),
  );
}

function uniqueSorted(cidrs: readonly ParsedCidr[]): string[] {
  return [...new Set(cidrs.map((c) => c.text))].sort();
}

const EMPTY_SPEC: { destinations: ParsedCidr[]; exceptions: ParsedCidr[] } = {
  destinations: [],
  exceptions: [],
};

export function buildRule(policy: PolicyRec, index: number, spec: EgressRule): RuleRec {
  const parsed = parseRuleSpec(spec);
  // An unusable spec still becomes a rule: it selects nothing and reports why (Accepted=False).
  const invalid: RuleRec['invalid'] = isLeft(parsed)
    ? { reason: parsed.left._tag, message: parsed.left.message }
    : undefined;
  const ok = isLeft(parsed) ? undefined : parsed.right;
  const family: Family = ok?.egress.family ?? parseAddress(spec.egressIP)?.family ?? 4;
  const dests = ok?.destinations ?? EMPTY_SPEC.destinations;
  const excs = ok?.exceptions ?? EMPTY_SPEC.exceptions;
  const egress = ok?.egress ?? parseAddress(spec.egressIP);
  const destinations = uniqueSorted(dests);
  const exceptions = uniqueSorted(excs);
  return {
    id: ruleId(policy, index),
    policy,
    index,
    spec,
    invalid,
    egressIP: egress?.text ?? spec.egressIP,
    family,
    destinations,
    exceptions,
    destKey: `${destinations.join(',')}!${exceptions.join(',')}`,
    destSet: ok?.destSet ?? { family, intervals: [] },
    gateways: Math.min(MAX_GATEWAYS, Math.max(1, Math.floor(spec.gateways))) || 1,
    serviceName: spec.serviceName,
    podSelector: spec.podSelector,
    gatewaySelector: spec.gatewaySelector,
    namespaceSelector: 'namespaceSelector' in policy.p ? policy.p.namespaceSelector : undefined,
    removed: false,
    accepted: false,
    acceptReason: invalid?.reason ?? 'NoPoolCoversIP',
    acceptMessage: invalid?.message ?? '',
    pool: undefined,
    scope: new Set(),
    excluded: new Set(),
    selected: new Set(),
    unprogrammable: 0,
    winner: false,
    claimLostTo: undefined,
    overlapLost: new Map(),
    overlapCache: new WeakMap(),
    nodeCounts: new Map(),
    ipRec: undefined,
  };
}

export interface Acceptance {
  readonly accepted: boolean;
  readonly reason: AcceptReason;
  readonly message: string;
  readonly pool: PoolRec | undefined;
}

/**
 * Which pool governs the rule, and whether it is Accepted. `pools` is the pool standing
 * (pools.ts): Accepted pools are disjoint, so the first Accepted pool that covers the egress IP
 * is the only one; a pool that is not Accepted governs nothing. `namespaceLabels` are the labels
 * of a namespaced policy's namespace ({} when unknown); `holderOf` says what in the cluster
 * already uses an address (reserved.ts), which makes a rule that a pool admits not Accepted all
 * the same.
 */
export function computeAcceptance(
  rule: RuleRec,
  pools: readonly PoolStanding[],
  namespaceLabels: Labels | undefined,
  holderOf: (addr: ParsedAddress) => string | undefined,
): Acceptance {
  if (rule.invalid !== undefined)
    return { accepted: false, reason: rule.invalid.reason, message: rule.invalid.message, pool: undefined };
  const addr = parseAddress(rule.egressIP) as ParsedAddress;
  let overlapping: PoolStanding | undefined;
  for (const standing of pools) {
    const pool = standing.pool;
    if (!rangesCover(pool.ranges, addr)) continue;
    if (!standing.accepted) {
      overlapping ??= standing;
      continue;
    }
    if (
      rule.policy.namespace !== undefined &&
      !matchesOptionalSelector(pool.p.namespaceSelector, namespaceLabels ?? {})
    )
      return {
        accepted: false,
        reason: 'NamespaceNotPermitted',
        message: `no pool that covers ${rule.egressIP} admits namespace ${rule.policy.namespace}`,
        pool: undefined,
      };
    const holder = holderOf(addr);
    if (holder !== undefined)
      return {
        accepted: false,
        reason: 'EgressIPInUse',
        message: `egress IP ${rule.egressIP} is in use: it is ${holder}; an egress IP must not be a node's address or a pod's IP, nor lie inside a pod or service CIDR: choose another address of pool ${pool.name}`,
        pool: undefined,
      };
    return { accepted: true, reason: 'Accepted', message: `pool ${pool.name} covers ${rule.egressIP}`, pool };
  }
  if (overlapping !== undefined)
    return {
      accepted: false,
      reason: 'PoolNotAccepted',
      message: `egress IP ${rule.egressIP} is covered only by pool ${overlapping.pool.name}, which is not Accepted: it overlaps pool ${overlapping.overlap?.pool ?? ''}, which takes precedence`,
      pool: undefined,
    };
  return {
    accepted: false,
    reason: 'NoPoolCoversIP',
    message: `no StaticEgressIPPool covers ${rule.egressIP}`,
    pool: undefined,
  };
}
