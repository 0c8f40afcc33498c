// Shared io-ts codecs for the values that appear inside events and topic messages.
// Pure. These codecs are the single source of truth for the wire format; types derive from them.
import { isIP } from 'node:net';
import * as t from 'io-ts';

/**
 * An IPv4 or IPv6 address as text (no prefix length). The watcher only writes addresses it parsed
 * (src/watcher/parse.ts); this check makes a record from anyone else that carries something else
 * (`not-an-ip`, `10.244.1.250; flush ruleset`, `999.1.1.1`) fail to decode, so the projector
 * dead-letters it instead of folding it (issue 12, finding 9).
 */
export const IPAddress = t.refinement(t.string, (text) => isIP(text) !== 0, 'IPAddress');

/** An address and a prefix length within its family ("10.244.1.0/24", "fd00::/64"). */
export const CIDR = t.refinement(
  t.string,
  (text) => {
    const slash = text.indexOf('/');
    if (slash < 0) return false;
    const family = isIP(text.slice(0, slash));
    const bits = text.slice(slash + 1);
    return family !== 0 && /^\d{1,3}$/.test(bits) && Number(bits) <= (family === 4 ? 32 : 128);
  },
  'CIDR',
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
  t.type({ kind: ObjectKind, name: t.string }),
  t.partial({ namespace: t.string, uid: t.string, resourceVersion: t.string }),
]);
export type ObjectRef = t.TypeOf<typeof ObjectRef>;
