// Label selectors, with Kubernetes semantics. Pure.
// - A LabelSelector ({matchLabels, matchExpressions}) that is present but empty selects
//   everything; the caller decides what an *absent* selector means.
// - A Service's selector (a plain label map) selects nothing when empty: Kubernetes manages no
//   endpoints for such a Service, and neither do we.
// Labels come from JSON, so keys are checked with Object.hasOwn: `labels.constructor` must not
// find Object.prototype's.
import type { LabelSelector, Labels } from '../contracts/primitives.ts';
import { compare } from '../lib/compare.ts';

export function matchesSelector(selector: LabelSelector, labels: Labels): boolean {
  const matchLabels = selector.matchLabels;
  if (matchLabels !== undefined) {
    for (const key in matchLabels) {
      if (!Object.hasOwn(labels, key) || labels[key] !== matchLabels[key]) return false;
    }
  }
  const expressions = selector.matchExpressions;
  if (expressions !== undefined) {
    for (const req of expressions) {
      const has = Object.hasOwn(labels, req.key);
      const values = req.values ?? [];
      switch (req.operator) {
        case 'In':
          if (!has || !values.includes(labels[req.key] as string)) return false;
          break;
        case 'NotIn':
          if (has && values.includes(labels[req.key] as string)) return false;
          break;
        case 'Exists':
          if (!has) return false;
          break;
        case 'DoesNotExist':
          if (has) return false;
          break;
        default: {
          const _exhaustive: never = req.operator;
          return _exhaustive;
        }
      }
    }
  }
  return true;
}

/** An absent selector here means "no restriction" (pool and gateway node selectors). */
export function matchesOptionalSelector(selector: LabelSelector | undefined, labels: Labels): boolean {
  return selector === undefined || matchesSelector(selector, labels);
}

/** A Service selector: every pair must match, and an empty map selects nothing. */
export function matchesServiceSelector(selector: Labels | undefined, labels: Labels): boolean {
  if (selector === undefined) return false;
  let any = false;
  for (const key in selector) {
    any = true;
    if (!Object.hasOwn(labels, key) || labels[key] !== selector[key]) return false;
  }
  return any;
}

/**
 * A canonical text for a selector, equal for selectors that select the same way regardless of
 * key order, so that equal gateway selectors share one eligible-node set.
 */
export function selectorKey(selector: LabelSelector | undefined): string {
  if (selector === undefined) return '*';
  const labels = Object.entries(selector.matchLabels ?? {})
    .sort(([a], [b]) => compare(a, b))
    .map(([k, v]) => `${k}=${v}`);
  const exprs = (selector.matchExpressions ?? [])
    .map((e) => `${e.key} ${e.operator} (${[...(e.values ?? [])].sort().join(',')})`)
    .sort();
  return JSON.stringify([labels, exprs]);
}
