// The StaticEgressIP API: the three CustomResourceDefinitions of staticegressips.nirmata.io/v1alpha1
// (StaticEgressIP, ClusterStaticEgressIP, StaticEgressIPPool), built as data.
// Pure. This file is the single source of the CRD manifests in k8s/crds/: `src/api/write-crds.ts`
// renders them to YAML, and a unit test fails when the committed files drift from this source.
// The shared pieces (rule, label selector, status, CEL checks) exist once here, where three
// hand-written YAML files would repeat them. docs/api.md is the prose reference for these fields.
//
// CEL notes (Kubernetes 1.34, checked against a real kube-apiserver by test/crds.int.test.ts):
// - The apiserver estimates every rule's worst-case cost from maxItems/maxLength and refuses a
//   CRD whose estimate is too high, so every string and list below is bounded.
// - `string(<ip|cidr|int>)` and `join()` have no size estimate (they count as unbounded), so
//   rules compare parsed values or the user's own text, and messages quote only the user's own
//   value (`self`), never a computed canonical form.
// - Rules that look at a value another rule checks (family, containment, order) first test that
//   the value parses, so one mistake yields one message instead of an evaluation error.
// - CRD validation has no `cel.bind`, so repeated sub-expressions are spelled out.

import { stringify } from 'yaml';
import { GROUP, limits, VERSION } from './group.ts';

export { GROUP, limits, VERSION };

type Schema = Record<string, unknown>;

interface Validation {
  rule: string;
  message: string;
  messageExpression?: string;
  fieldPath?: string;
}

// ------------------------------------------------------------------------------------------------
// CEL building blocks

/** `field` quoted for a message expression: the user's own value, whose size is bounded. */
const quoted = (label: string): string => `'${label} ' + self + '`;

function egressIPValidations(label: string): Validation[] {
  return [
    {
      rule: 'isIP(self)',
      message: `${label} must be one IPv4 or IPv6 address such as 198.51.100.10 or 2001:db8::10`,
      messageExpression: `${quoted(label)} is not an IP address: write one IPv4 or IPv6 address such as 198.51.100.10 or 2001:db8::10, without prefix length, leading zeros or zone'`,
    },
    {
      rule: '!isIP(self) || ip.isCanonical(self)',
      message: `${label} must be written in canonical form (lowercase IPv6, longest zero run as ::)`,
      messageExpression: `${quoted(label)} is not in canonical form: write IPv6 in lowercase with the longest run of zero groups shortened to ::, such as 2001:db8::10'`,
    },
    {
      rule: '!isIP(self) || ip(self).isGlobalUnicast()',
      message: `${label} must be a unicast address: loopback, unspecified, link-local, multicast and broadcast addresses cannot be egress IPs`,
      messageExpression:
        `${quoted(label)} is ' + (ip(self).isLoopback() ? 'a loopback address' : ip(self).isUnspecified() ? 'the unspecified address' : ` +
        `ip(self).isLinkLocalUnicast() ? 'a link-local address' : 'a multicast or broadcast address') + ', which cannot be an egress IP: ` +
        `use a unicast address that the network routes to the gateway nodes'`,
    },
  ];
}

function cidrValidations(label: string): Validation[] {
  return [
    {
      rule: 'isCIDR(self)',
      message: `${label} must be a CIDR such as 203.0.113.0/24 or 2001:db8::/64`,
      messageExpression: `${quoted(label)} is not a CIDR: write an address and a prefix length such as 203.0.113.0/24 or 2001:db8::/64 (one host is /32 or /128)'`,
    },
    {
      rule: '!isCIDR(self) || cidr(self) == cidr(self).masked()',
      message: `${label} has host bits set: write the network address of the block, such as 203.0.113.0/24 rather than 203.0.113.7/24`,
      messageExpression: `${quoted(label)} has host bits set after the prefix length: write the network address of the block, such as 203.0.113.0/24 rather than 203.0.113.7/24'`,
    },
    {
      rule: "!isCIDR(self) || ip.isCanonical(self.split('/')[0])",
      message: `${label} must be written in canonical form (lowercase IPv6, longest zero run as ::)`,
      messageExpression: `${quoted(label)} is not in canonical form: write IPv6 in lowercase with the longest run of zero groups shortened to ::, such as 2001:db8::/32'`,
    },
  ];
}

/** Every exception of a rule (`self`) lies inside its cidr or one of its destinations. */
const exceptionsInsideDestinations =
  'self.exceptions.all(e, !isCIDR(e) || ' +
  '(has(self.cidr) && isCIDR(self.cidr) && cidr(self.cidr).containsCIDR(e)) || ' +
  '(has(self.destinations) && self.destinations.exists(d, isCIDR(d) && cidr(d).containsCIDR(e))))';

/** The refusals about exceptions, word for word the watcher's (src/watcher/parse.ts). */
export const exceptionOutsideMessage =
  'every exception must lie inside one of the destinations (an exception carves a hole out of a destination): fix or remove the exceptions outside them';
export const exceptionCoversDestinationMessage =
  'an exception covers a whole destination, so no traffic to that destination would leave with the egress IP: remove the destination, or narrow the exception to the part that must keep leaving the usual way';

// Pool ranges "a-b". `first`/`last` are the two ends, valid only when `isRange` holds.
const first = "self.split('-')[0]";
const last = "self.split('-')[1]";
const isRange = `(self.contains('-') && size(self.split('-')) == 2 && isIP(${first}) && isIP(${last}))`;
const isCanonicalRange = `(${isRange} && ip.isCanonical(${first}) && ip.isCanonical(${last}) && ip(${first}).family() == ip(${last}).family())`;

/**
 * `first < last` for two IPs of one family, in CEL without integers of 128 bits: they differ for
 * the first time at bit m (they share the first m-1 bits, `last` is inside first/(m-1) but not
 * inside first/m), and at that bit `first` has a 0 (masking `first` to m bits equals masking it
 * to m-1 bits). Prefix lengths come from literal lists, because `string(int)` is unbounded for
 * the cost estimator.
 */
function rangeIsAscending(): string {
  const lengths = `[${Array.from({ length: 128 }, (_, i) => i + 1).join(',')}]`;
  const text = `[${Array.from({ length: 129 }, (_, i) => `'${i}'`).join(',')}]`;
  const prefix = (index: string): string => `cidr(${first} + '/' + ${text}[${index}]).masked()`;
  return (
    `ip(${first}) == ip(${last}) || ${lengths}.exists(m, (ip(${first}).family() == 6 || m <= 32) && ` +
    `${prefix('m - 1')}.containsIP(${last}) && !${prefix('m')}.containsIP(${last}) && ` +
    `${prefix('m')}.ip() == ${prefix('m - 1')}.ip())`
  );
}

function poolAddressValidations(): Validation[] {
  const example = 'such as 198.51.100.0/28 or 198.51.100.20-198.51.100.30';
  return [
    {
      rule: `self.contains('-') ? ${isRange} : isCIDR(self)`,
      message: `each address must be a CIDR or a range of two addresses joined by '-', ${example}`,
      messageExpression: `${quoted('address')} is neither a CIDR nor a range of two addresses joined by -: write it ${example}'`,
    },
    ...cidrValidations('address')
      .slice(1)
      .map((v) => ({ ...v, rule: `self.contains('-') || ${v.rule}` })),
    {
      rule: `!${isRange} || (ip.isCanonical(${first}) && ip.isCanonical(${last}))`,
      message:
        'both ends of a range must be written in canonical form (lowercase IPv6, longest zero run as ::)',
      messageExpression: `${quoted('range')} is not in canonical form: write IPv6 in lowercase with the longest run of zero groups shortened to ::, such as 2001:db8::10-2001:db8::20'`,
    },
    {
      rule: `!${isRange} || ip(${first}).family() == ip(${last}).family()`,
      message: 'both ends of a range must be of one IP family',
      messageExpression: `${quoted('range')} mixes IPv4 and IPv6: both ends must be of one family'`,
    },
    {
      rule: `!${isCanonicalRange} || ${rangeIsAscending()}`,
      message: 'a range must start at its lower address: write the lower address first',
      messageExpression: `${quoted('range')} ends before it starts: write the lower address first'`,
    },
    {
      rule:
        `self.contains('-') ? !${isRange} || (ip(${first}).isGlobalUnicast() && ip(${last}).isGlobalUnicast()) : ` +
        '!isCIDR(self) || cidr(self).ip().isGlobalUnicast()',
      message:
        'pool addresses must be unicast: loopback, unspecified, link-local, multicast and broadcast addresses cannot be egress IPs',
      messageExpression: `${quoted('address')} starts or ends at a loopback, unspecified, link-local, multicast or broadcast address, which cannot be an egress IP: use unicast addresses that the network routes to the gateway nodes'`,
    },
  ];
}

// ------------------------------------------------------------------------------------------------
// Schema building blocks

const str = (description: string, maxLength: number, extra: Schema = {}): Schema => ({
  type: 'string',
  description,
  maxLength,
  ...extra,
});

const withValidations = (schema: Schema, validations: Validation[]): Schema => ({
  ...schema,
  'x-kubernetes-validations': validations,
});

function labelSelector(description: string): Schema {
  return {
    type: 'object',
    description,
    'x-kubernetes-map-type': 'atomic',
    properties: {
      matchLabels: {
        type: 'object',
        description:
          'Labels that must all be present with exactly these values. Combined with matchExpressions by AND.',
        maxProperties: limits.selectorLabels,
        additionalProperties: {
          type: 'string',
          maxLength: 63,
          description: 'The required value of the label.',
        },
      },
      matchExpressions: {
        type: 'array',
        description: 'Requirements that must all hold. Combined with matchLabels by AND.',
        maxItems: limits.selectorExpressions,
        'x-kubernetes-list-type': 'atomic',
        items: {
          type: 'object',
          description: 'One requirement on one label key.',
          required: ['key', 'operator'],
          properties: {
            key: str('The label key the requirement is about.', 317),
            operator: {
              type: 'string',
              description:
                'How the label relates to values: In (value is one of values), NotIn (label absent or value not in values), Exists (label present), DoesNotExist (label absent).',
              enum: ['In', 'NotIn', 'Exists', 'DoesNotExist'],
            },
            values: {
              type: 'array',
              description:
                'The values for In and NotIn (non-empty); must be absent or empty for Exists and DoesNotExist.',
              maxItems: limits.selectorValues,
              'x-kubernetes-list-type': 'atomic',
              items: { type: 'string', maxLength: 63, description: 'One label value.' },
            },
          },
          'x-kubernetes-validations': [
            {
              rule: "self.operator in ['In', 'NotIn'] ? has(self.values) && size(self.values) > 0 : !has(self.values) || size(self.values) == 0",
              message:
                'operators In and NotIn need a non-empty values list; operators Exists and DoesNotExist take no values',
            },
          ],
        },
      },
    },
  };
}

function cidrList(description: string, label: string, maxItems: number, nonEmpty?: Validation): Schema {
  return {
    type: 'array',
    description,
    maxItems,
    'x-kubernetes-list-type': 'set',
    items: withValidations(str(`One ${label} CIDR.`, limits.cidrLength), cidrValidations(label)),
    ...(nonEmpty ? { 'x-kubernetes-validations': [nonEmpty] } : {}),
  };
}

/** Fields and checks shared by the rules of both policy kinds; `selection` adds who is selected. */
function ruleSchema(scope: 'Namespaced' | 'Cluster'): Schema {
  const selection: Schema =
    scope === 'Namespaced'
      ? {
          'service-name': withValidations(
            str(
              "Selects the pods behind the Service of this name in the policy's namespace (the pods its EndpointSlices list, so a Service without a selector works through hand-made EndpointSlices). Exactly one of service-name and podSelector is required.",
              63,
            ),
            [
              {
                rule: "self.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",
                message:
                  'service-name must be the name of a Service: lowercase letters, digits and -, starting with a letter and ending with a letter or digit',
              },
            ],
          ),
          podSelector: labelSelector(
            "Selects pods by label in the policy's own namespace (a namespaced policy never selects pods of another namespace; use ClusterStaticEgressIP for that). An empty selector selects every pod of the namespace. Exactly one of service-name and podSelector is required.",
          ),
        }
      : {
          podSelector: labelSelector(
            'Selects pods by label in every namespace that spec.namespaceSelector selects. An empty selector selects every pod there. Required.',
          ),
        };
  const validations: Validation[] = [
    ...(scope === 'Namespaced'
      ? [
          {
            rule: '!(has(self.service__dash__name) && has(self.podSelector))',
            message:
              'service-name and podSelector are mutually exclusive: keep service-name to select the pods behind that Service, or podSelector to select pods by label, not both',
          },
          {
            rule: 'has(self.service__dash__name) || has(self.podSelector)',
            message:
              'a rule needs service-name (the pods behind that Service) or podSelector (pods by label) to say whose traffic leaves with the egress IP',
          },
        ]
      : []),
    {
      rule: '!(has(self.cidr) && has(self.destinations))',
      message:
        'cidr and destinations are mutually exclusive: list every destination under destinations and drop cidr',
    },
    {
      rule: 'has(self.cidr) || has(self.destinations)',
      message:
        'a rule needs cidr (one destination) or destinations (a list of CIDRs) to say which traffic leaves with the egress IP',
    },
    {
      rule:
        '!isIP(self.egressip) || ((!has(self.cidr) || !isCIDR(self.cidr) || cidr(self.cidr).ip().family() == ip(self.egressip).family()) && ' +
        '(!has(self.destinations) || self.destinations.all(d, !isCIDR(d) || cidr(d).ip().family() == ip(self.egressip).family())))',
      message:
        'egressip and every destination must be of one IP family: an IPv4 egressip serves only IPv4 destinations and an IPv6 egressip only IPv6 ones; split the rule per family',
      messageExpression:
        "'egressip ' + self.egressip + ' and every destination must be of one IP family: an IPv4 egressip serves only IPv4 destinations and an IPv6 egressip only IPv6 ones; split the rule per family'",
    },
    {
      rule: `!has(self.exceptions) || ${exceptionsInsideDestinations}`,
      fieldPath: '.exceptions',
      message: exceptionOutsideMessage,
    },
    {
      // Only once every exception lies inside a destination (else the rule above speaks): an
      // exception that then contains a destination empties it. Several exceptions that together
      // cover a destination are the projection's to report (Accepted=False, NoDestinations):
      // CEL cannot subtract address sets at a cost the API server accepts.
      rule:
        `!has(self.exceptions) || !${exceptionsInsideDestinations} || !self.exceptions.exists(e, isCIDR(e) && (` +
        '(has(self.cidr) && isCIDR(self.cidr) && cidr(e).containsCIDR(self.cidr)) || ' +
        '(has(self.destinations) && self.destinations.exists(d, isCIDR(d) && cidr(e).containsCIDR(d)))))',
      fieldPath: '.exceptions',
      message: exceptionCoversDestinationMessage,
    },
  ];
  return {
    type: 'object',
    description:
      'One rule: traffic from the selected pods to the destinations (minus the exceptions) leaves the cluster with source IP egressip.',
    required: scope === 'Namespaced' ? ['egressip'] : ['egressip', 'podSelector'],
    properties: {
      egressip: withValidations(
        str(
          'The source IP that the selected traffic leaves the cluster with (IPv4, or IPv6 which the API accepts and the dataplane does not program yet). Required. It is held by one active gateway node at a time, and it is used only when a StaticEgressIPPool covers it and admits the namespace (see docs/api.md).',
          limits.ipLength,
        ),
        egressIPValidations('egressip'),
      ),
      ...selection,
      cidr: withValidations(
        str(
          "One destination CIDR (the original project's field, kept for compatibility). Exactly one of cidr and destinations is required; the controller treats cidr as destinations with one entry.",
          limits.cidrLength,
        ),
        cidrValidations('cidr'),
      ),
      destinations: cidrList(
        'Destination CIDRs (1 to 32) whose traffic leaves with egressip, all of the egressip family. Exactly one of cidr and destinations is required.',
        'destination',
        limits.destinationsPerRule,
        {
          rule: 'size(self) > 0',
          message: 'destinations is empty: list at least one CIDR (or give the single destination as cidr)',
        },
      ),
      exceptions: cidrList(
        'CIDRs (up to 32) inside the destinations whose traffic keeps leaving the usual way (not through the egress gateway). Each must lie inside one of the destinations.',
        'exception',
        limits.exceptionsPerRule,
      ),
      gatewaySelector: labelSelector(
        'Which nodes may hold egressip, by node label. Absent: any node that a covering pool allows. Nodes must also be Ready, schedulable and have a live agent.',
      ),
      gateways: withValidations(
        {
          type: 'integer',
          description: `How many nodes take part for this egress IP: one active holder plus gateways-1 hot standbys that take over on failure. Default 1, between 1 and ${limits.maxGateways}.`,
          default: 1,
        },
        [
          {
            rule: `self >= 1 && self <= ${limits.maxGateways}`,
            message: `gateways must be between 1 and ${limits.maxGateways}: 1 is one active holder and no standby, N is one active holder and N-1 standbys`,
          },
        ],
      ),
    },
    'x-kubernetes-validations': validations,
  };
}

function rulesList(scope: 'Namespaced' | 'Cluster'): Schema {
  return {
    type: 'array',
    description: `The egress rules (1 to ${limits.rulesPerPolicy}). Rules are independent; their order is kept in status.rules.`,
    maxItems: limits.rulesPerPolicy,
    'x-kubernetes-list-type': 'atomic',
    items: ruleSchema(scope),
    'x-kubernetes-validations': [
      {
        rule: 'size(self) > 0',
        message: 'spec.rules is empty: add at least one rule with an egressip, the pods and the destinations',
      },
    ],
  };
}

// ------------------------------------------------------------------------------------------------
// Status

function conditions(what: string, types: string): Schema {
  return {
    type: 'array',
    description: `The standard conditions of this ${what}, one per type: ${types}`,
    maxItems: 8,
    'x-kubernetes-list-type': 'map',
    'x-kubernetes-list-map-keys': ['type'],
    items: {
      type: 'object',
      description: 'One condition (the shape of metav1.Condition).',
      required: ['type', 'status', 'reason', 'message', 'lastTransitionTime'],
      properties: {
        type: str('The condition type, in CamelCase.', 316),
        status: {
          type: 'string',
          description: 'True, False or Unknown.',
          enum: ['True', 'False', 'Unknown'],
        },
        reason: str(
          'A CamelCase word saying why the condition has its status, for tools and alerts to match on.',
          1024,
          { minLength: 1, pattern: '^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$' },
        ),
        message: str('A human-readable explanation of the status.', 32768),
        lastTransitionTime: {
          type: 'string',
          format: 'date-time',
          description: 'When the status last changed (not when it was last checked).',
        },
        observedGeneration: {
          type: 'integer',
          format: 'int64',
          minimum: 0,
          description: 'The metadata.generation the condition was computed from.',
        },
      },
    },
  };
}

const policyConditionTypes =
  'Accepted (the spec is usable: every egress IP is covered by a pool that admits the namespace; False with the reason otherwise), ' +
  'PodsSelected (every rule selects at least one pod; False names a missing Service or a selector that matches no running pod), ' +
  'Assigned (every egress IP has an active gateway), Programmed (every node involved applied its rules), ' +
  'Conflict (True when an egress IP or destination collides with another policy; the reason names it), ' +
  'Ready (Accepted, PodsSelected, Assigned and Programmed, and no Conflict: traffic leaves with the egress IPs).';

function policyStatus(): Schema {
  return {
    type: 'object',
    description:
      'What the controller made of this policy. Written by kube-static-egress-ip; never set it by hand.',
    properties: {
      observedGeneration: {
        type: 'integer',
        format: 'int64',
        description:
          'The metadata.generation this status describes; older than metadata.generation while an update is being processed.',
      },
      egressIPs: str('Summary for kubectl get: the egress IPs of the rules, comma-separated.', 2048),
      activeGateways: str(
        'Summary for kubectl get: the active gateway node of each egress IP, comma-separated, in the order of egressIPs.',
        4096,
      ),
      rules: {
        type: 'array',
        description: 'One entry per spec rule, in spec order.',
        maxItems: limits.rulesPerPolicy,
        'x-kubernetes-list-type': 'atomic',
        items: {
          type: 'object',
          description: 'The state of one rule.',
          properties: {
            egressip: str("The rule's egress IP.", limits.ipLength),
            activeGateway: str(
              'The node that holds the egress IP now; absent while no node is eligible.',
              253,
            ),
            standbyGateways: {
              type: 'array',
              description: 'Nodes ready to take the egress IP over, in takeover order.',
              maxItems: limits.maxGateways,
              'x-kubernetes-list-type': 'atomic',
              items: { type: 'string', maxLength: 253, description: 'A node name.' },
            },
            selectedPods: { type: 'integer', description: 'How many pods the rule selects now.' },
            selectedNodes: {
              type: 'integer',
              description:
                'How many nodes run selected pods (the directors), not counting nodes declared lost.',
            },
            programmedNodes: {
              type: 'integer',
              description: 'How many of the nodes involved (directors and gateways) applied the rule.',
            },
          },
        },
      },
      conditions: conditions('policy', policyConditionTypes),
    },
  };
}

function poolStatus(): Schema {
  return {
    type: 'object',
    description:
      'What the controller made of this pool. Written by kube-static-egress-ip; never set it by hand.',
    properties: {
      observedGeneration: {
        type: 'integer',
        format: 'int64',
        description: 'The metadata.generation this status describes.',
      },
      allocated: {
        type: 'integer',
        description: 'Summary for kubectl get: how many egress IPs of this pool policies use.',
      },
      allocations: {
        type: 'array',
        description:
          'The egress IPs of this pool that policies use (an accepted rule of the policy that won the IP), in address order, and which policy uses each.',
        maxItems: 4096,
        'x-kubernetes-list-type': 'atomic',
        items: {
          type: 'object',
          description: 'One egress IP in use.',
          properties: {
            egressip: str('The egress IP.', limits.ipLength),
            policy: str(
              'The policy that uses it: namespace/name for a StaticEgressIP, name for a ClusterStaticEgressIP.',
              317,
            ),
          },
        },
      },
      conditions: conditions(
        'pool',
        'Accepted (the addresses are usable; False, reason Overlaps, when they overlap a pool created earlier, which keeps them: then no address of this pool is used), ' +
          'Conflict (True, reason NamespaceNotAdmitted, when a StaticEgressIP asks for an address of this pool from a namespace the pool does not admit), ' +
          'Ready (Accepted and no Conflict).',
      ),
    },
  };
}

// ------------------------------------------------------------------------------------------------
// The three CRDs

interface Kind {
  kind: string;
  plural: string;
  singular: string;
  shortName: string;
  scope: 'Namespaced' | 'Cluster';
  description: string;
  spec: Schema;
  status: Schema;
  columns: Schema[];
}

const age = { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' };
const ready = {
  name: 'Ready',
  type: 'string',
  jsonPath: '.status.conditions[?(@.type=="Ready")].status',
  description: 'Whether traffic leaves with the egress IPs.',
};
const policyColumns = [
  {
    name: 'Egress IPs',
    type: 'string',
    jsonPath: '.status.egressIPs',
    description: 'The egress IPs of the rules.',
  },
  {
    name: 'Active Gateway',
    type: 'string',
    jsonPath: '.status.activeGateways',
    description: 'The node that holds each egress IP.',
  },
  ready,
  age,
];

const poolDecision =
  'An egress IP of a policy is used only when a StaticEgressIPPool covers it and admits the policy namespace (default deny): a tenant cannot claim an IP meant for someone else.';

const kinds: readonly Kind[] = [
  {
    kind: 'StaticEgressIP',
    plural: 'staticegressips',
    singular: 'staticegressip',
    shortName: 'seip',
    scope: 'Namespaced',
    description: `Gives chosen pods of this namespace a fixed source IP towards chosen destinations, so that firewalls outside the cluster can allow-list it. ${poolDecision}`,
    spec: {
      type: 'object',
      description: 'The desired egress rules.',
      required: ['rules'],
      properties: { rules: rulesList('Namespaced') },
    },
    status: policyStatus(),
    columns: policyColumns,
  },
  {
    kind: 'ClusterStaticEgressIP',
    plural: 'clusterstaticegressips',
    singular: 'clusterstaticegressip',
    shortName: 'cseip',
    scope: 'Cluster',
    description: `For cluster administrators: gives pods of every namespace that namespaceSelector selects a fixed source IP towards chosen destinations. ${poolDecision}`,
    spec: {
      type: 'object',
      description: 'The namespaces and the desired egress rules.',
      required: ['namespaceSelector', 'rules'],
      properties: {
        namespaceSelector: labelSelector(
          'Which namespaces the rules apply to, by namespace label. Required; an empty selector ({}) selects every namespace.',
        ),
        rules: rulesList('Cluster'),
      },
    },
    status: policyStatus(),
    columns: policyColumns,
  },
  {
    kind: 'StaticEgressIPPool',
    plural: 'staticegressippools',
    singular: 'staticegressippool',
    shortName: 'seippool',
    scope: 'Cluster',
    description:
      'For cluster administrators: egress IPs that policies may use, which namespaces may use them and which nodes may hold them. ' +
      `${poolDecision} Pools must not overlap.`,
    spec: {
      type: 'object',
      description: 'The addresses of the pool and who may use and hold them.',
      required: ['addresses'],
      properties: {
        addresses: {
          type: 'array',
          description: `The addresses of the pool (1 to ${limits.poolAddresses}): each a CIDR (198.51.100.0/28, every address of it usable) or an inclusive range of one family (198.51.100.20-198.51.100.30).`,
          maxItems: limits.poolAddresses,
          'x-kubernetes-list-type': 'set',
          items: withValidations(
            str('One CIDR or inclusive range "first-last".', limits.poolAddressLength),
            poolAddressValidations(),
          ),
          'x-kubernetes-validations': [
            {
              rule: 'size(self) > 0',
              message: 'spec.addresses is empty: list at least one CIDR or range, such as 198.51.100.0/28',
            },
          ],
        },
        namespaceSelector: labelSelector(
          'Which namespaces may use egress IPs of this pool, by namespace label. Absent or empty ({}): every namespace. A ClusterStaticEgressIP rule applies only in those of its namespaces that this pool admits.',
        ),
        nodeSelector: labelSelector(
          "Which nodes may hold egress IPs of this pool, by node label. Absent or empty ({}): every node. A rule's gatewaySelector narrows this further.",
        ),
      },
    },
    status: poolStatus(),
    columns: [
      {
        name: 'Addresses',
        type: 'string',
        jsonPath: '.spec.addresses[*]',
        description: 'The CIDRs and ranges of the pool.',
      },
      {
        name: 'Allocated',
        type: 'integer',
        jsonPath: '.status.allocated',
        description: 'Egress IPs in use.',
      },
      ready,
      age,
    ],
  },
];

function crd(k: Kind): Schema {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${k.plural}.${GROUP}` },
    spec: {
      group: GROUP,
      scope: k.scope,
      names: {
        kind: k.kind,
        listKind: `${k.kind}List`,
        plural: k.plural,
        singular: k.singular,
        shortNames: [k.shortName],
        categories: ['kseip'],
      },
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: k.columns,
          schema: {
            openAPIV3Schema: {
              type: 'object',
              description: k.description,
              required: ['spec'],
              properties: {
                apiVersion: {
                  type: 'string',
                  description: `The versioned schema of this object: ${GROUP}/${VERSION}.`,
                },
                kind: { type: 'string', description: `The kind of this object: ${k.kind}.` },
                // Only the type may be given for metadata; the apiserver documents ObjectMeta itself.
                metadata: { type: 'object' },
                spec: k.spec,
                status: k.status,
              },
            },
          },
        },
      ],
    },
  };
}

/** The CRD manifests by file name (under k8s/crds/), in a stable order. */
export function renderCrdObjects(): ReadonlyArray<{ file: string; object: Schema }> {
  return kinds.map((k) => ({ file: `${k.plural}.yaml`, object: crd(k) }));
}

export const crdKinds = kinds.map(({ kind, plural, shortName, scope }) => ({
  kind,
  plural,
  shortName,
  scope,
}));

const generatedHeader =
  '# Generated from src/api/crds.ts by `node src/api/write-crds.ts`: edit that file, not this one.\n';

/** The files of k8s/crds/ as text: one YAML file per CRD plus the kustomization that lists them. */
export function renderCrdFiles(): ReadonlyArray<{ file: string; text: string }> {
  const crds = renderCrdObjects().map(({ file, object }) => ({
    file,
    text: generatedHeader + stringify(object, { lineWidth: 0, aliasDuplicateObjects: false }),
  }));
  const kustomization = {
    apiVersion: 'kustomize.config.k8s.io/v1beta1',
    kind: 'Kustomization',
    resources: crds.map((c) => c.file),
  };
  return [...crds, { file: 'kustomization.yaml', text: generatedHeader + stringify(kustomization) }];
}

/**
 * The CRDs of the Helm chart (charts/kube-static-egress-ip/crds/): the same objects with the label
 * kustomize adds to everything in k8s/base, so the chart and the kustomize base hold equal CRDs.
 */
export function renderChartCrdFiles(): ReadonlyArray<{ file: string; text: string }> {
  return renderCrdObjects().map(({ file, object }) => {
    const metadata = object.metadata as Schema;
    const labelled = {
      ...object,
      metadata: { ...metadata, labels: { 'app.kubernetes.io/part-of': 'kube-static-egress-ip' } },
    };
    return {
      file,
      text: generatedHeader + stringify(labelled, { lineWidth: 0, aliasDuplicateObjects: false }),
    };
  });
}
