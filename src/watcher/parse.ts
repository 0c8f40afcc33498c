// Parse at the edge: Kubernetes objects → the payloads of cluster-events (src/contracts/cluster-events.ts).
// Pure. Owns the mapping from API objects to facts: what is kept (only what projections read),
// how it is normalized (the seed's `cidr` folded into `destinations`, `gateways` defaulted,
// addresses in canonical text, every list and map sorted), and which objects are refused.
//
// Why canonical output: the watcher compares a new payload with the last one it published for
// the same object (samePayload) and skips the change when they are equal, so a pod's status
// heartbeat or a reordered label map never reaches the log. Equal meaning must give equal bytes.
//
// Custom objects arrive as unknown JSON. The CRDs validate them with CEL, but an object stored
// before the CRD was tightened (or written with validation off) can still be anything, so the
// same checks run here (with the same wording as the CRD messages) and a failure is a tagged
// ParseError for the watcher to log and count, never an exception. Built-in objects come typed
// from client-node; their fields are read defensively because the informer also hands over
// plain JSON.
import * as t from 'io-ts';
import { left, right, type Either } from 'fp-ts/lib/Either.js';
import type {
  KubernetesObject,
  V1EndpointSlice,
  V1Namespace,
  V1Node,
  V1ServiceCIDR,
  V1ObjectMeta,
  V1Pod,
  V1Service,
} from '@kubernetes/client-node';
import { limits } from '../api/group.ts';
import { exceptionCoversDestinationMessage, exceptionOutsideMessage } from '../api/crds.ts';
import type { EgressRule, PayloadOf } from '../contracts/cluster-events.ts';
import {
  LabelSelectorRequirement,
  type LabelSelector,
  type Labels,
  type ObjectKind,
  type ObjectRef,
} from '../contracts/primitives.ts';
import {
  classifyIP,
  cidrContainsCIDR,
  formatCIDR,
  formatIP,
  hasHostBits,
  isCanonicalIP,
  networkOf,
  parseCIDR,
  parseIP,
  spanOfCIDR,
  type Address,
  type AddressSpan,
  type Cidr,
} from './net.ts';
import { compare, compareBig } from '../lib/compare.ts';

export interface ParseError {
  readonly _tag: 'ParseError';
  readonly kind: ObjectKind;
  /** namespace/name, or name for cluster-scoped objects; '' when the object has no name. */
  readonly object: string;
  /** One line per problem, each starting with the field path. */
  readonly reason: string;
}

/** The observed-event type of each kind, and of its deletion. */
export const eventTypesOf = {
  StaticEgressIP: { observed: 'StaticEgressIPObserved', deleted: 'StaticEgressIPDeleted' },
  ClusterStaticEgressIP: {
    observed: 'ClusterStaticEgressIPObserved',
    deleted: 'ClusterStaticEgressIPDeleted',
  },
  StaticEgressIPPool: { observed: 'StaticEgressIPPoolObserved', deleted: 'StaticEgressIPPoolDeleted' },
  Service: { observed: 'ServiceObserved', deleted: 'ServiceDeleted' },
  EndpointSlice: { observed: 'EndpointSliceObserved', deleted: 'EndpointSliceDeleted' },
  Pod: { observed: 'PodObserved', deleted: 'PodDeleted' },
  Node: { observed: 'NodeObserved', deleted: 'NodeDeleted' },
  Namespace: { observed: 'NamespaceObserved', deleted: 'NamespaceDeleted' },
  ServiceCIDR: { observed: 'ServiceCIDRObserved', deleted: 'ServiceCIDRDeleted' },
} as const satisfies Record<ObjectKind, { observed: string; deleted: string }>;

type ObservedTypeOf<K extends ObjectKind> = (typeof eventTypesOf)[K]['observed'];

/** A parsed object: which object, and the payload of its Observed event. */
export interface Parsed<K extends ObjectKind> {
  readonly type: ObservedTypeOf<K>;
  readonly object: ObjectRef;
  readonly payload: PayloadOf<ObservedTypeOf<K>>;
}

export type AnyParsed = { [K in ObjectKind]: Parsed<K> }[ObjectKind];

// ------------------------------------------------------------------------------------------------
// Helpers

function sortedLabels(labels: Readonly<Record<string, string>> | undefined): Labels {
  const out: Labels = {};
  for (const key of Object.keys(labels ?? {}).sort(compare))
    out[key] = (labels as Record<string, string>)[key] as string;
  return out;
}

/** A selector with sorted keys, expressions and values; empty parts dropped ({} selects everything). */
function canonicalSelector(selector: LabelSelector): LabelSelector {
  const out: LabelSelector = {};
  if (selector.matchLabels !== undefined && Object.keys(selector.matchLabels).length > 0)
    out.matchLabels = sortedLabels(selector.matchLabels);
  const expressions = (selector.matchExpressions ?? []).map((e) => ({
    key: e.key,
    operator: e.operator,
    ...(e.values !== undefined && e.values.length > 0
      ? { values: [...new Set(e.values)].sort(compare) }
      : {}),
  }));
  if (expressions.length > 0) {
    const keyOf = (e: (typeof expressions)[number]): string =>
      JSON.stringify([e.key, e.operator, e.values ?? []]);
    out.matchExpressions = expressions
      .sort((a, b) => compare(keyOf(a), keyOf(b)))
      .filter((e, i, all) => i === 0 || keyOf(e) !== keyOf(all[i - 1] as typeof e));
  }
  return out;
}

function selectorProblems(selector: LabelSelector, path: string): string[] {
  return (selector.matchExpressions ?? []).flatMap((e, i) => {
    const hasValues = e.values !== undefined && e.values.length > 0;
    const needsValues = e.operator === 'In' || e.operator === 'NotIn';
    return hasValues === needsValues
      ? []
      : [
          `${path}.matchExpressions[${i}]: operators In and NotIn need a non-empty values list; operators Exists and DoesNotExist take no values`,
        ];
  });
}

function compareCidrs(a: Cidr, b: Cidr): number {
  return a.family - b.family || compareBig(networkOf(a), networkOf(b)) || a.prefix - b.prefix;
}

function compareSpans(a: AddressSpan, b: AddressSpan): number {
  return a.family - b.family || compareBig(a.first, b.first) || compareBig(a.last, b.last);
}

/** The same checks, in the same words, as the CEL rules of a CIDR field in src/api/crds.ts. */
function cidrProblem(text: string, label: string): string | undefined {
  const cidr = parseCIDR(text);
  if (cidr === undefined)
    return `${label} ${text} is not a CIDR: write an address and a prefix length such as 203.0.113.0/24 or 2001:db8::/64 (one host is /32 or /128)`;
  if (hasHostBits(cidr))
    return `${label} ${text} has host bits set after the prefix length: write the network address of the block, such as 203.0.113.0/24 rather than 203.0.113.7/24`;
  if (!isCanonicalIP(text.slice(0, text.indexOf('/'))))
    return `${label} ${text} is not in canonical form: write IPv6 in lowercase with the longest run of zero groups shortened to ::, such as 2001:db8::/32`;
  return undefined;
}

const addressClassWords = {
  loopback: 'a loopback address',
  unspecified: 'the unspecified address',
  'link-local': 'a link-local address',
  multicast: 'a multicast or broadcast address',
  broadcast: 'a multicast or broadcast address',
} as const;

function egressIPProblem(text: string): string | undefined {
  const addr = parseIP(text);
  if (addr === undefined)
    return `egressip ${text} is not an IP address: write one IPv4 or IPv6 address such as 198.51.100.10 or 2001:db8::10, without prefix length, leading zeros or zone`;
  if (formatIP(addr) !== text)
    return `egressip ${text} is not in canonical form: write IPv6 in lowercase with the longest run of zero groups shortened to ::, such as 2001:db8::10`;
  const kind = classifyIP(addr);
  if (kind !== 'unicast')
    return `egressip ${text} is ${addressClassWords[kind]}, which cannot be an egress IP: use a unicast address that the network routes to the gateway nodes`;
  return undefined;
}

function fail(kind: ObjectKind, object: string, problems: readonly string[]): Either<ParseError, never> {
  return left({ _tag: 'ParseError', kind, object, reason: problems.join('\n') });
}

function displayName(meta: { name?: string; namespace?: string } | undefined): string {
  if (meta?.name === undefined) return '';
  return meta.namespace ? `${meta.namespace}/${meta.name}` : meta.name;
}

function objectRef(
  kind: ObjectKind,
  meta: Pick<V1ObjectMeta, 'name' | 'namespace' | 'uid' | 'resourceVersion'>,
): ObjectRef {
  return {
    kind,
    name: meta.name as string,
    ...(meta.namespace ? { namespace: meta.namespace } : {}),
    ...(meta.uid ? { uid: meta.uid } : {}),
    ...(meta.resourceVersion ? { resourceVersion: meta.resourceVersion } : {}),
  };
}

/** Which object a (deleted) object was: kind, name, namespace, uid, resourceVersion. */
export function parseObjectRef(kind: ObjectKind, obj: KubernetesObject): Either<ParseError, ObjectRef> {
  const meta = obj.metadata;
  if (meta?.name === undefined || meta.name === '') return fail(kind, '', ['metadata.name: missing']);
  return right(objectRef(kind, meta));
}

// ------------------------------------------------------------------------------------------------
// Custom objects

// Named codecs, so that a refusal says "expected LabelSelector", not the codec's whole structure.
const Selector = t.partial(
  {
    matchLabels: t.record(t.string, t.string, 'map of strings'),
    matchExpressions: t.array(
      t.intersection(
        [
          t.type({ key: t.string, operator: LabelSelectorRequirement.types[0].props.operator }),
          t.partial({ values: t.array(t.string, 'list of strings') }),
        ],
        'LabelSelectorRequirement',
      ),
      'list of LabelSelectorRequirement',
    ),
  },
  'LabelSelector',
);

const RawMeta = t.intersection(
  [
    t.type({ name: t.string }),
    t.partial({
      namespace: t.string,
      uid: t.string,
      resourceVersion: t.string,
      generation: t.number,
      creationTimestamp: t.string,
    }),
  ],
  'ObjectMeta',
);
type RawMeta = t.TypeOf<typeof RawMeta>;

const strings = t.array(t.string, 'list of strings');
const RawRuleCommon = t.partial({
  cidr: t.string,
  destinations: strings,
  exceptions: strings,
  gatewaySelector: Selector,
  gateways: t.number,
});
const RawRule = t.intersection(
  [
    t.type({ egressip: t.string }),
    RawRuleCommon,
    t.partial({ 'service-name': t.string, podSelector: Selector }),
  ],
  'Rule',
);
type RawRule = t.TypeOf<typeof RawRule>;

const RawStaticEgressIP = t.type(
  { metadata: RawMeta, spec: t.type({ rules: t.array(RawRule, 'list of Rule') }, 'StaticEgressIPSpec') },
  'StaticEgressIP',
);
const RawClusterStaticEgressIP = t.type(
  {
    metadata: RawMeta,
    spec: t.type(
      {
        namespaceSelector: Selector,
        rules: t.array(
          t.intersection([t.type({ egressip: t.string, podSelector: Selector }), RawRuleCommon], 'Rule'),
          'list of Rule',
        ),
      },
      'ClusterStaticEgressIPSpec',
    ),
  },
  'ClusterStaticEgressIP',
);
const RawStaticEgressIPPool = t.type(
  {
    metadata: RawMeta,
    spec: t.intersection(
      [t.type({ addresses: strings }), t.partial({ namespaceSelector: Selector, nodeSelector: Selector })],
      'StaticEgressIPPoolSpec',
    ),
  },
  'StaticEgressIPPool',
);

/** JSON from the API server never holds null for a set field, but a hand-made object may: drop them. */
function withoutNulls(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutNulls);
  if (typeof value !== 'object' || value === null) return value;
  return Object.fromEntries(
    Object.entries(value)
      .filter(([, v]) => v !== null)
      .map(([k, v]) => [k, withoutNulls(v)]),
  );
}

/**
 * "spec.rules[0].egressip: expected string, got 1": the field path as the API server writes it.
 * io-ts puts the member index of an intersection into the path; those are left out.
 */
function describeDecodeError(error: t.ValidationError): string {
  let at = '';
  error.context.forEach((entry, i) => {
    const parent = i > 0 ? error.context[i - 1]?.type : undefined;
    if (i === 0 || parent instanceof t.IntersectionType) return;
    at += parent instanceof t.ArrayType ? `[${entry.key}]` : `${at === '' ? '' : '.'}${entry.key}`;
  });
  const expected = error.context[error.context.length - 1]?.type.name ?? 'value';
  const got = JSON.stringify(error.value)?.slice(0, 80) ?? 'nothing';
  return `${at || '<root>'}: expected ${expected}, got ${got}`;
}

function decodeCustom<C extends t.Mixed>(
  kind: ObjectKind,
  codec: C,
  raw: unknown,
): Either<ParseError, t.TypeOf<C>> {
  const decoded = codec.decode(withoutNulls(raw));
  if (decoded._tag === 'Right') return right(decoded.right as t.TypeOf<C>);
  const meta = (raw as { metadata?: { name?: unknown; namespace?: unknown } } | null)?.metadata;
  const name = typeof meta?.name === 'string' ? meta.name : undefined;
  const namespace = typeof meta?.namespace === 'string' ? meta.namespace : undefined;
  const problems = [...new Set(decoded.left.map(describeDecodeError))];
  return fail(
    kind,
    displayName({ name, namespace }),
    problems.length > 8 ? [...problems.slice(0, 8), '…'] : problems,
  );
}

/** Checks one rule as the CRD does and normalizes it; `path` is like spec.rules[0]. */
function parseRule(
  rule: RawRule,
  path: string,
  scope: 'Namespaced' | 'Cluster',
): Either<string[], EgressRule> {
  const problems: string[] = [];
  const at = (field: string, message: string): number => problems.push(`${path}.${field}: ${message}`);
  const egressProblem = egressIPProblem(rule.egressip);
  if (egressProblem !== undefined) at('egressip', egressProblem);

  const serviceName = rule['service-name'];
  if (scope === 'Namespaced') {
    if (serviceName !== undefined && rule.podSelector !== undefined)
      problems.push(
        `${path}: service-name and podSelector are mutually exclusive: keep service-name to select the pods behind that Service, or podSelector to select pods by label, not both`,
      );
    if (serviceName === undefined && rule.podSelector === undefined)
      problems.push(
        `${path}: a rule needs service-name (the pods behind that Service) or podSelector (pods by label) to say whose traffic leaves with the egress IP`,
      );
    if (serviceName !== undefined && !/^[a-z]([-a-z0-9]*[a-z0-9])?$/.test(serviceName))
      at(
        'service-name',
        'service-name must be the name of a Service: lowercase letters, digits and -, starting with a letter and ending with a letter or digit',
      );
  }
  if (rule.cidr !== undefined && rule.destinations !== undefined)
    problems.push(
      `${path}: cidr and destinations are mutually exclusive: list every destination under destinations and drop cidr`,
    );
  if (rule.cidr === undefined && rule.destinations === undefined)
    problems.push(
      `${path}: a rule needs cidr (one destination) or destinations (a list of CIDRs) to say which traffic leaves with the egress IP`,
    );
  if (rule.destinations !== undefined && rule.destinations.length === 0)
    at(
      'destinations',
      'destinations is empty: list at least one CIDR (or give the single destination as cidr)',
    );
  if ((rule.destinations?.length ?? 0) > limits.destinationsPerRule)
    at('destinations', `must have at most ${limits.destinationsPerRule} items`);
  if ((rule.exceptions?.length ?? 0) > limits.exceptionsPerRule)
    at('exceptions', `must have at most ${limits.exceptionsPerRule} items`);

  const destinationTexts = rule.destinations ?? (rule.cidr !== undefined ? [rule.cidr] : []);
  const destinationLabel = rule.destinations !== undefined ? 'destination' : 'cidr';
  destinationTexts.forEach((d, i) => {
    const problem = cidrProblem(d, destinationLabel);
    if (problem !== undefined) at(rule.destinations !== undefined ? `destinations[${i}]` : 'cidr', problem);
  });
  (rule.exceptions ?? []).forEach((e, i) => {
    const problem = cidrProblem(e, 'exception');
    if (problem !== undefined) at(`exceptions[${i}]`, problem);
  });
  for (const [field, list] of [
    ['destinations', rule.destinations],
    ['exceptions', rule.exceptions],
  ] as const) {
    const duplicateAt = list?.findIndex((x, i) => list.indexOf(x) !== i) ?? -1;
    if (duplicateAt >= 0)
      at(`${field}[${duplicateAt}]`, `Duplicate value: ${JSON.stringify(list?.[duplicateAt])}`);
  }

  const destinations = destinationTexts.map(parseCIDR).filter((c): c is Cidr => c !== undefined);
  const exceptions = (rule.exceptions ?? []).map(parseCIDR).filter((c): c is Cidr => c !== undefined);
  const egress = parseIP(rule.egressip);
  if (egress !== undefined && destinations.some((d) => d.family !== egress.family))
    problems.push(
      `${path}: egressip ${rule.egressip} and every destination must be of one IP family: an IPv4 egressip serves only IPv4 destinations and an IPv6 egressip only IPv6 ones; split the rule per family`,
    );
  if (exceptions.some((e) => !destinations.some((d) => cidrContainsCIDR(d, e))))
    at('exceptions', exceptionOutsideMessage);
  // As the CRD: only once every exception lies inside a destination.
  else if (exceptions.some((e) => destinations.some((d) => cidrContainsCIDR(e, d))))
    at('exceptions', exceptionCoversDestinationMessage);

  const gateways = rule.gateways ?? 1;
  if (!Number.isInteger(gateways) || gateways < 1 || gateways > limits.maxGateways)
    at(
      'gateways',
      `gateways must be between 1 and ${limits.maxGateways}: 1 is one active holder and no standby, N is one active holder and N-1 standbys`,
    );
  if (rule.podSelector !== undefined)
    problems.push(...selectorProblems(rule.podSelector, `${path}.podSelector`));
  if (rule.gatewaySelector !== undefined)
    problems.push(...selectorProblems(rule.gatewaySelector, `${path}.gatewaySelector`));
  if (problems.length > 0) return left(problems);

  const canonicalCidrs = (cidrs: Cidr[]): string[] =>
    [...cidrs]
      .sort(compareCidrs)
      .map((c) => `${formatIP({ family: c.family, value: networkOf(c) })}/${c.prefix}`);
  return right({
    egressIP: rule.egressip,
    destinations: canonicalCidrs(destinations),
    exceptions: canonicalCidrs(exceptions),
    gateways,
    ...(scope === 'Namespaced' && serviceName !== undefined ? { serviceName } : {}),
    ...(rule.podSelector !== undefined ? { podSelector: canonicalSelector(rule.podSelector) } : {}),
    ...(rule.gatewaySelector !== undefined
      ? { gatewaySelector: canonicalSelector(rule.gatewaySelector) }
      : {}),
  });
}

function parseRules(
  rules: readonly RawRule[],
  scope: 'Namespaced' | 'Cluster',
): Either<string[], EgressRule[]> {
  if (rules.length === 0)
    return left([
      'spec.rules: spec.rules is empty: add at least one rule with an egressip, the pods and the destinations',
    ]);
  if (rules.length > limits.rulesPerPolicy)
    return left([`spec.rules: must have at most ${limits.rulesPerPolicy} items`]);
  const problems: string[] = [];
  const out: EgressRule[] = [];
  rules.forEach((rule, i) => {
    const parsed = parseRule(rule, `spec.rules[${i}]`, scope);
    if (parsed._tag === 'Left') problems.push(...parsed.left);
    else out.push(parsed.right);
  });
  // Rule order is kept: status.rules mirrors it, and nothing depends on it otherwise.
  return problems.length > 0 ? left(problems) : right(out);
}

const generationOf = (meta: RawMeta): number => meta.generation ?? 0;

export function parseStaticEgressIP(raw: unknown): Either<ParseError, Parsed<'StaticEgressIP'>> {
  const kind = 'StaticEgressIP';
  const decoded = decodeCustom(kind, RawStaticEgressIP, raw);
  if (decoded._tag === 'Left') return decoded;
  const { metadata, spec } = decoded.right;
  if (!metadata.namespace)
    return fail(kind, metadata.name, ['metadata.namespace: missing on a namespaced object']);
  const rules = parseRules(spec.rules, 'Namespaced');
  if (rules._tag === 'Left') return fail(kind, displayName(metadata), rules.left);
  return right({
    type: 'StaticEgressIPObserved',
    object: objectRef(kind, metadata),
    payload: { generation: generationOf(metadata), rules: rules.right },
  });
}

export function parseClusterStaticEgressIP(
  raw: unknown,
): Either<ParseError, Parsed<'ClusterStaticEgressIP'>> {
  const kind = 'ClusterStaticEgressIP';
  const decoded = decodeCustom(kind, RawClusterStaticEgressIP, raw);
  if (decoded._tag === 'Left') return decoded;
  const { metadata, spec } = decoded.right;
  const rules = parseRules(spec.rules, 'Cluster');
  const problems = [
    ...selectorProblems(spec.namespaceSelector, 'spec.namespaceSelector'),
    ...(rules._tag === 'Left' ? rules.left : []),
  ];
  if (problems.length > 0 || rules._tag === 'Left') return fail(kind, metadata.name, problems);
  return right({
    type: 'ClusterStaticEgressIPObserved',
    object: objectRef(kind, { ...metadata, namespace: undefined }),
    payload: {
      generation: generationOf(metadata),
      namespaceSelector: canonicalSelector(spec.namespaceSelector),
      rules: rules.right,
    },
  });
}

/** One pool entry checked as the CRD does: a CIDR, or a canonical ascending range of one family. */
function poolEntry(text: string): Either<string, AddressSpan> {
  const example = 'such as 198.51.100.0/28 or 198.51.100.20-198.51.100.30';
  if (!text.includes('-')) {
    const problem = cidrProblem(text, 'address');
    if (problem !== undefined)
      return left(
        parseCIDR(text) === undefined
          ? `address ${text} is neither a CIDR nor a range of two addresses joined by -: write it ${example}`
          : problem,
      );
    const cidr = parseCIDR(text) as Cidr;
    if (classifyIP({ family: cidr.family, value: networkOf(cidr) }) !== 'unicast')
      return left(
        `address ${text} starts or ends at a loopback, unspecified, link-local, multicast or broadcast address, which cannot be an egress IP: use unicast addresses that the network routes to the gateway nodes`,
      );
    return right(spanOfCIDR(cidr));
  }
  const ends = text.split('-');
  const first = parseIP(ends[0] ?? '');
  const last = parseIP(ends[1] ?? '');
  if (ends.length !== 2 || first === undefined || last === undefined)
    return left(
      `address ${text} is neither a CIDR nor a range of two addresses joined by -: write it ${example}`,
    );
  if (formatIP(first) !== ends[0] || formatIP(last) !== ends[1])
    return left(
      `range ${text} is not in canonical form: write IPv6 in lowercase with the longest run of zero groups shortened to ::, such as 2001:db8::10-2001:db8::20`,
    );
  if (first.family !== last.family)
    return left(`range ${text} mixes IPv4 and IPv6: both ends must be of one family`);
  if (first.value > last.value)
    return left(`range ${text} ends before it starts: write the lower address first`);
  if (classifyIP(first) !== 'unicast' || classifyIP(last) !== 'unicast')
    return left(
      `address ${text} starts or ends at a loopback, unspecified, link-local, multicast or broadcast address, which cannot be an egress IP: use unicast addresses that the network routes to the gateway nodes`,
    );
  return right({ family: first.family, first: first.value, last: last.value });
}

export function parseStaticEgressIPPool(raw: unknown): Either<ParseError, Parsed<'StaticEgressIPPool'>> {
  const kind = 'StaticEgressIPPool';
  const decoded = decodeCustom(kind, RawStaticEgressIPPool, raw);
  if (decoded._tag === 'Left') return decoded;
  const { metadata, spec } = decoded.right;
  const problems: string[] = [];
  if (spec.addresses.length === 0)
    problems.push(
      'spec.addresses: spec.addresses is empty: list at least one CIDR or range, such as 198.51.100.0/28',
    );
  if (spec.addresses.length > limits.poolAddresses)
    problems.push(`spec.addresses: must have at most ${limits.poolAddresses} items`);
  const entries: Array<{ text: string; span: AddressSpan }> = [];
  spec.addresses.forEach((text, i) => {
    const entry = poolEntry(text);
    if (entry._tag === 'Left') problems.push(`spec.addresses[${i}]: ${entry.left}`);
    else if (entries.some((e) => e.text === text))
      problems.push(`spec.addresses[${i}]: Duplicate value: ${JSON.stringify(text)}`);
    else entries.push({ text, span: entry.right });
  });
  if (spec.namespaceSelector !== undefined)
    problems.push(...selectorProblems(spec.namespaceSelector, 'spec.namespaceSelector'));
  if (spec.nodeSelector !== undefined)
    problems.push(...selectorProblems(spec.nodeSelector, 'spec.nodeSelector'));
  if (problems.length > 0) return fail(kind, metadata.name, problems);
  return right({
    type: 'StaticEgressIPPoolObserved',
    object: objectRef(kind, { ...metadata, namespace: undefined }),
    payload: {
      generation: generationOf(metadata),
      // Entries are canonical text already (the checks above insist), so sorting them suffices.
      addresses: entries
        .sort((a, b) => compareSpans(a.span, b.span) || compare(a.text, b.text))
        .map((e) => e.text),
      ...(spec.namespaceSelector !== undefined
        ? { namespaceSelector: canonicalSelector(spec.namespaceSelector) }
        : {}),
      ...(spec.nodeSelector !== undefined ? { nodeSelector: canonicalSelector(spec.nodeSelector) } : {}),
      // Which of two overlapping pools keeps its addresses (docs/api.md, "Overlapping pools").
      ...(metadata.creationTimestamp !== undefined ? { creationTimestamp: metadata.creationTimestamp } : {}),
    },
  });
}

// ------------------------------------------------------------------------------------------------
// Built-in objects

function requireName<K extends ObjectKind>(
  kind: K,
  meta: V1ObjectMeta | undefined,
  namespaced: boolean,
): Either<ParseError, ObjectRef> {
  if (meta?.name === undefined || meta.name === '') return fail(kind, '', ['metadata.name: missing']);
  if (namespaced && !meta.namespace)
    return fail(kind, meta.name, ['metadata.namespace: missing on a namespaced object']);
  return right(objectRef(kind, namespaced ? meta : { ...meta, namespace: undefined }));
}

/** Canonical, deduplicated, IPv4 before IPv6, ascending. */
function canonicalIPs(texts: readonly string[], field: string): Either<string, string[]> {
  const addrs = [];
  for (const text of texts) {
    const addr = parseIP(text);
    if (addr === undefined) return left(`${field}: ${JSON.stringify(text)} is not an IP address`);
    addrs.push(addr);
  }
  addrs.sort((a, b) => a.family - b.family || compareBig(a.value, b.value));
  return right([...new Set(addrs.map(formatIP))]);
}

export function parsePod(pod: V1Pod): Either<ParseError, Parsed<'Pod'>> {
  const kind = 'Pod';
  const ref = requireName(kind, pod.metadata, true);
  if (ref._tag === 'Left') return ref;
  const status = pod.status;
  const ipTexts = (status?.podIPs ?? [])
    .map((p) => p.ip)
    .filter((ip): ip is string => typeof ip === 'string' && ip !== '');
  if (ipTexts.length === 0 && status?.podIP) ipTexts.push(status.podIP);
  const podIPs = canonicalIPs(ipTexts, 'status.podIPs');
  if (podIPs._tag === 'Left') return fail(kind, displayName(pod.metadata), [podIPs.left]);
  const nodeName = pod.spec?.nodeName;
  return right({
    type: 'PodObserved',
    object: ref.right,
    payload: {
      labels: sortedLabels(pod.metadata?.labels),
      podIPs: podIPs.right,
      hostNetwork: pod.spec?.hostNetwork === true,
      terminal: status?.phase === 'Succeeded' || status?.phase === 'Failed',
      ...(nodeName ? { nodeName } : {}),
    },
  });
}

export function parseService(service: V1Service): Either<ParseError, Parsed<'Service'>> {
  const ref = requireName('Service', service.metadata, true);
  if (ref._tag === 'Left') return ref;
  const selector = service.spec?.selector;
  // An empty selector and an absent one both mean "no selector" to Kubernetes: one form for both.
  const hasSelector = selector !== undefined && Object.keys(selector).length > 0;
  return right({
    type: 'ServiceObserved',
    object: ref.right,
    payload: hasSelector ? { selector: sortedLabels(selector) } : {},
  });
}

export const serviceNameLabel = 'kubernetes.io/service-name';

/**
 * Every endpoint is kept, ready or not: a pod that is not ready (or terminating) still sends
 * traffic, and its egress must not change because a probe failed. FQDN slices list no pod
 * addresses, so they yield no endpoints.
 */
export function parseEndpointSlice(slice: V1EndpointSlice): Either<ParseError, Parsed<'EndpointSlice'>> {
  const kind = 'EndpointSlice';
  const ref = requireName(kind, slice.metadata, true);
  if (ref._tag === 'Left') return ref;
  const serviceName = slice.metadata?.labels?.[serviceNameLabel];
  if (!serviceName)
    return fail(kind, displayName(slice.metadata), [
      `metadata.labels: no ${serviceNameLabel} label, so no Service owns this slice`,
    ]);
  const endpoints: PayloadOf<'EndpointSliceObserved'>['endpoints'] = [];
  if (slice.addressType !== 'FQDN') {
    for (const [i, endpoint] of (slice.endpoints ?? []).entries()) {
      const addresses = canonicalIPs(endpoint.addresses ?? [], `endpoints[${i}].addresses`);
      if (addresses._tag === 'Left') return fail(kind, displayName(slice.metadata), [addresses.left]);
      const target = endpoint.targetRef;
      const podName = target?.kind === 'Pod' && target.name ? target.name : undefined;
      endpoints.push({
        addresses: addresses.right,
        ...(podName !== undefined ? { podName } : {}),
        ...(endpoint.nodeName ? { nodeName: endpoint.nodeName } : {}),
      });
    }
  }
  const keyOf = (e: (typeof endpoints)[number]): string =>
    JSON.stringify([e.podName ?? '', e.addresses, e.nodeName ?? '']);
  endpoints.sort((a, b) => compare(keyOf(a), keyOf(b)));
  return right({ type: 'EndpointSliceObserved', object: ref.right, payload: { serviceName, endpoints } });
}

/** The IP-valued types of status.addresses (the others, Hostname and the DNS names, are names). */
const NODE_IP_ADDRESS_TYPES: ReadonlySet<string> = new Set(['InternalIP', 'ExternalIP']);

/** Canonical network texts, deduplicated and sorted (IPv4 first), and the texts that are no CIDR. */
function canonicalCidrList(texts: readonly string[]): { cidrs: string[]; invalid: string[] } {
  const parsed: Cidr[] = [];
  const invalid: string[] = [];
  for (const text of texts) {
    const cidr = parseCIDR(text);
    if (cidr === undefined) invalid.push(text);
    else parsed.push(cidr);
  }
  parsed.sort(compareCidrs);
  return { cidrs: [...new Set(parsed.map(formatCIDR))], invalid };
}

/**
 * internalIP is the first InternalIP the node lists (the kubelet lists its primary family
 * first), in canonical text; a node that lists none has none. `addresses` are all its IP-valued
 * addresses and `podCIDRs` its spec.podCIDRs: what no egress IP may be and no steer may capture
 * (issue 12, findings 1 and 7).
 */
export function parseNode(node: V1Node): Either<ParseError, Parsed<'Node'>> {
  const kind = 'Node';
  const ref = requireName(kind, node.metadata, false);
  if (ref._tag === 'Left') return ref;
  const ready = (node.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');
  const problems: string[] = [];
  let internalIP: string | undefined;
  const addresses: Address[] = [];
  for (const a of node.status?.addresses ?? []) {
    if (!NODE_IP_ADDRESS_TYPES.has(a.type)) continue;
    const addr = parseIP(a.address);
    if (addr === undefined) {
      problems.push(`status.addresses: ${a.type} ${JSON.stringify(a.address)} is not an IP address`);
      continue;
    }
    if (a.type === 'InternalIP' && internalIP === undefined) internalIP = formatIP(addr);
    addresses.push(addr);
  }
  const podCIDRs = canonicalCidrList(node.spec?.podCIDRs ?? (node.spec?.podCIDR ? [node.spec.podCIDR] : []));
  for (const text of podCIDRs.invalid) problems.push(`spec.podCIDRs: ${JSON.stringify(text)} is not a CIDR`);
  if (problems.length > 0) return fail(kind, displayName(node.metadata), problems);
  addresses.sort((a, b) => a.family - b.family || compareBig(a.value, b.value));
  const addressTexts = [...new Set(addresses.map(formatIP))];
  return right({
    type: 'NodeObserved',
    object: ref.right,
    payload: {
      labels: sortedLabels(node.metadata?.labels),
      ready,
      unschedulable: node.spec?.unschedulable === true,
      ...(internalIP !== undefined ? { internalIP } : {}),
      ...(addressTexts.length > 0 ? { addresses: addressTexts } : {}),
      ...(podCIDRs.cidrs.length > 0 ? { podCIDRs: podCIDRs.cidrs } : {}),
    },
  });
}

/** A ServiceCIDR's spec.cidrs (immutable in the API, at most one per family). */
export function parseServiceCIDR(obj: V1ServiceCIDR): Either<ParseError, Parsed<'ServiceCIDR'>> {
  const kind = 'ServiceCIDR';
  const ref = requireName(kind, obj.metadata, false);
  if (ref._tag === 'Left') return ref;
  const list = canonicalCidrList(obj.spec?.cidrs ?? []);
  if (list.invalid.length > 0)
    return fail(
      kind,
      displayName(obj.metadata),
      list.invalid.map((text) => `spec.cidrs: ${JSON.stringify(text)} is not a CIDR`),
    );
  return right({ type: 'ServiceCIDRObserved', object: ref.right, payload: { cidrs: list.cidrs } });
}

export function parseNamespace(namespace: V1Namespace): Either<ParseError, Parsed<'Namespace'>> {
  const ref = requireName('Namespace', namespace.metadata, false);
  if (ref._tag === 'Left') return ref;
  return right({
    type: 'NamespaceObserved',
    object: ref.right,
    payload: { labels: sortedLabels(namespace.metadata?.labels) },
  });
}

/**
 * Parse an object the informer of `kind` delivered. The built-in kinds are trusted to have
 * their kind's shape (the informer of a kind lists only that kind); custom objects are checked.
 */
export function parseObject(kind: ObjectKind, obj: KubernetesObject): Either<ParseError, AnyParsed> {
  switch (kind) {
    case 'StaticEgressIP':
      return parseStaticEgressIP(obj);
    case 'ClusterStaticEgressIP':
      return parseClusterStaticEgressIP(obj);
    case 'StaticEgressIPPool':
      return parseStaticEgressIPPool(obj);
    case 'Service':
      return parseService(obj);
    case 'EndpointSlice':
      return parseEndpointSlice(obj as V1EndpointSlice);
    case 'Pod':
      return parsePod(obj);
    case 'Node':
      return parseNode(obj);
    case 'Namespace':
      return parseNamespace(obj);
    case 'ServiceCIDR':
      return parseServiceCIDR(obj);
    default: {
      const _exhaustive: never = kind;
      return _exhaustive;
    }
  }
}

// ------------------------------------------------------------------------------------------------
// Equality

/** JSON with object keys sorted at every level: equal values give equal text. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (typeof value === 'object' && value !== null) {
    const entries = Object.entries(value)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => compare(a, b));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/**
 * Whether two payloads of the same object say the same thing to projections. Lists are compared
 * in order: parse already sorted every list whose order means nothing, and kept the order of
 * those where it does (rules).
 */
export function samePayload<P>(a: P, b: P): boolean {
  return canonicalJson(a) === canonicalJson(b);
}
