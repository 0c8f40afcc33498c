// Shared io-ts codecs for the values that appear inside events and topic messages.
// Pure. These codecs are the single source of truth for the wire format; types derive from them.
import { isIP } from 'node:net';
import * as t from 'io-ts';

// Every string a projection or an agent uses is checked here when a record is decoded, so that a
// record from anyone but our own writers (a forged node-rules record, a hand-written heartbeat)
// that carries something else fails to decode and is dead-lettered with the field named, instead
// of reaching a fold, a status or the kernel (issue 12, finding 9). Each codec is a refinement of
// t.string named for what it checks: the name appears in the dead-letter reason
// ("steers.0.podIPs.1: expected IPAddress, got \"not-an-ip\""). Their static type stays `string`:
// our own writers build these records from values they parsed, and every reader decodes with
// these codecs, so the check lives once, at the edge.

/**
 * An IPv4 or IPv6 address as text (no prefix length, no IPv6 zone: `fe80::1%eth0` is an
 * interface's, never a pod's or a node's). Node's isIP refuses IPv4 with leading zeros
 * (`010.0.0.1`, which inet_aton-style parsers read as octal) and anything with spaces, quotes or
 * separators (`10.244.1.250; flush ruleset`), and `999.1.1.1`.
 */
const isAddressText = (text: string): boolean => isIP(text) !== 0 && !text.includes('%');
export const IPAddress = t.refinement(t.string, isAddressText, 'IPAddress');

/** A prefix length as written by our writers: decimal, no leading zero. */
const PREFIX_LENGTH = /^(0|[1-9]\d{0,2})$/;

/** An address and a prefix length within its family ("10.244.1.0/24", "fd00::/64"). */
function isCidrText(text: string): boolean {
  const slash = text.indexOf('/');
  if (slash < 0 || text.includes('%')) return false;
  const family = isIP(text.slice(0, slash));
  const bits = text.slice(slash + 1);
  return family !== 0 && PREFIX_LENGTH.test(bits) && Number(bits) <= (family === 4 ? 32 : 128);
}
export const CIDR = t.refinement(t.string, isCidrText, 'CIDR');

/** An IP address, or "" where the contract says "none (yet)" (a node IP not known yet, a steer
 *  without a gateway). */
export const IPAddressOrNone = t.union([IPAddress, t.literal('')], 'IPAddressOrNone');

/**
 * A Kubernetes object name as the API server admits it for Nodes, Pods, EndpointSlices, custom
 * resources and the other kinds we read (RFC 1123 subdomain: lowercase alphanumerics, '-' and
 * '.', at most 253 characters, alphanumeric at both ends).
 */
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
/** A namespace name (RFC 1123 label: at most 63 characters, no '.'). */
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const isSubdomain = (text: string): boolean => text.length <= 253 && DNS_SUBDOMAIN.test(text);
const isLabel = (text: string): boolean => text.length <= 63 && DNS_LABEL.test(text);

export const KubeName = t.refinement(t.string, isSubdomain, 'KubeName');
export const NamespaceName = t.refinement(t.string, isLabel, 'NamespaceName');
/** A Node's name: what an agent is keyed by and what decisions name as gateways. */
export const NodeName = t.refinement(t.string, isSubdomain, 'NodeName');
/** A node name, or "" where the contract says "no node" (no active gateway yet). */
export const NodeNameOrNone = t.union([NodeName, t.literal('')], 'NodeNameOrNone');

/**
 * A policy rule as decisions, node rules and reports name it: "<namespace>/<name>#<index>" for a
 * StaticEgressIP, "cluster/<name>#<index>" for a ClusterStaticEgressIP (src/projection/rules.ts).
 */
export const RuleRef = t.refinement(
  t.string,
  (text) => {
    const match = /^([^/]+)\/([^#]+)#(0|[1-9]\d{0,5})$/.exec(text);
    return match !== null && isLabel(match[1]!) && isSubdomain(match[2]!);
  },
  'RuleRef',
);

/** A count, an index, a generation or an offset: a non-negative safe integer. */
export const NonNegativeInt = t.refinement(
  t.number,
  (n) => Number.isSafeInteger(n) && n >= 0,
  'NonNegativeInt',
);
/** A count that must be at least one (gateways per rule). */
export const PositiveInt = t.refinement(t.number, (n) => Number.isSafeInteger(n) && n >= 1, 'PositiveInt');
/** A duration or similar measure: a finite number, not negative. */
export const NonNegativeNumber = t.refinement(
  t.number,
  (n) => Number.isFinite(n) && n >= 0,
  'NonNegativeNumber',
);

/** A wall-clock instant as our writers print it (Date#toISOString, RFC 3339 in UTC). */
export const Timestamp = t.refinement(
  t.string,
  (text) => /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$/.test(text) && !Number.isNaN(Date.parse(text)),
  'Timestamp',
);

/**
 * Free text for people (an apply error, a reason a rule was left out) that ends up in a
 * condition message or a log: bounded, and without NUL or other control characters than
 * newline and tab. Writers cut their text to fit (truncateText).
 */
export const MAX_TEXT_LENGTH = 4096;
export const Text = t.refinement(
  t.string,
  (text) => text.length <= MAX_TEXT_LENGTH && !/[\u0000-\u0008\u000b-\u001f\u007f]/.test(text),
  'Text',
);

/** `text` made to fit Text: control characters become spaces, and it is cut to length. */
export function truncateText(text: string): string {
  const clean = text.replace(/[\u0000-\u0008\u000b-\u001f\u007f]/g, ' ');
  return clean.length <= MAX_TEXT_LENGTH ? clean : clean.slice(0, MAX_TEXT_LENGTH - 1) + '…';
}

/**
 * A network interface name as the agent's configuration gives it (the uplink): what the kernel
 * admits (at most 15 bytes, no '/', ':' or whitespace) narrowed to the characters real uplinks
 * use (eth0, ens3, enp0s31f6, bond0.100, br-lan), so that it is one token in `ip -batch` input,
 * where quotes and '#' mean something.
 */
export const InterfaceName = t.refinement(
  t.string,
  (text) => /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}$/.test(text),
  'InterfaceName',
);

/** A pool entry: a CIDR ("198.51.100.0/28") or an inclusive range of two addresses of one family
 *  ("198.51.100.20-198.51.100.30"). */
export const PoolAddress = t.refinement(
  t.string,
  (text) => {
    const parts = text.split('-');
    return (
      isCidrText(text) ||
      (parts.length === 2 &&
        isAddressText(parts[0]!) &&
        isIP(parts[0]!) === isIP(parts[1]!) &&
        isAddressText(parts[1]!))
    );
  },
  'PoolAddress',
);

/** A Kubernetes label selector, as in metav1.LabelSelector (kept verbatim from the API object). */
export const LabelSelectorRequirement = t.intersection([
  t.type({
    key: t.string,
    operator: t.keyof({ In: null, NotIn: null, Exists: null, DoesNotExist: null }),
  }),
  t.partial({ values: t.array(t.string) }),
]);
export type LabelSelectorRequirement = t.TypeOf<typeof LabelSelectorRequirement>;

export const LabelSelector = t.partial({
  matchLabels: t.record(t.string, t.string),
  matchExpressions: t.array(LabelSelectorRequirement),
});
export type LabelSelector = t.TypeOf<typeof LabelSelector>;

export const Labels = t.record(t.string, t.string);
export type Labels = t.TypeOf<typeof Labels>;

/** The kinds the watcher publishes. Liveness events name the Node they are about. */
export const ObjectKind = t.keyof({
  StaticEgressIP: null,
  ClusterStaticEgressIP: null,
  StaticEgressIPPool: null,
  Service: null,
  EndpointSlice: null,
  Pod: null,
  Node: null,
  Namespace: null,
  ServiceCIDR: null,
});
export type ObjectKind = t.TypeOf<typeof ObjectKind>;

/**
 * The Kubernetes object an event is about. uid and resourceVersion are absent only for facts
 * that do not come from an API object version (liveness, list markers).
 */
export const ObjectRef = t.intersection([
  /** name is "" only on list markers, which are about a kind rather than an object. */
  t.type({ kind: ObjectKind, name: t.union([KubeName, t.literal('')], 'KubeNameOrNone') }),
  t.partial({ namespace: NamespaceName, uid: Text, resourceVersion: Text }),
]);
export type ObjectRef = t.TypeOf<typeof ObjectRef>;
