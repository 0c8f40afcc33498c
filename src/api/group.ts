// The StaticEgressIP API's name and bounds, written once: the CRDs (./crds.ts) enforce the
// bounds, the watcher's parse refuses the same, the projection caps the work per egress IP by
// them, and the status writer addresses the group. Pure data.

export const GROUP = 'staticegressips.nirmata.io';
export const VERSION = 'v1alpha1';
export const GROUP_VERSION = `${GROUP}/${VERSION}`;

/** Upper bounds: what the CEL cost estimate is computed from; each is far above real use. */
export const limits = {
  rulesPerPolicy: 32,
  destinationsPerRule: 32,
  exceptionsPerRule: 32,
  poolAddresses: 64,
  maxGateways: 8,
  /** Longest IPv6 text form (with an embedded IPv4 tail): 45 characters. */
  ipLength: 45,
  /** An IP plus "/128". */
  cidrLength: 49,
  /** Two IPs and the dash of a range. */
  poolAddressLength: 91,
  selectorExpressions: 32,
  selectorValues: 64,
  selectorLabels: 64,
} as const;
