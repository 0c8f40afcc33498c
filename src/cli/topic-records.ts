// What `kseip events tail` (and later log commands) make of one Kafka record: decode it with the
// codec of its topic, filter it, and render it as a table row or a JSON line. Pure.
//
// A record that does not decode is never skipped silently: it is shown as UNDECODABLE with the
// decoder's reason, and it passes every filter that cannot be judged without decoding.
import type { Either } from 'fp-ts/lib/Either.js';
import { decodeClusterEvent, type ClusterEvent } from '../contracts/cluster-events.ts';
import { parseJson, type DecodeFailure } from '../contracts/decode.ts';
import { decodeDecision } from '../contracts/decisions.ts';
import { decodeHeartbeat, decodeNodeApplyStatus } from '../contracts/node-reports.ts';
import { decodeNodeRules } from '../contracts/node-rules.ts';
import { TOPICS } from '../contracts/topics.ts';
import { compare } from '../lib/compare.ts';
import type { TopicRecord } from '../lib/read-topic.ts';

/** The parts filters and renderers need, whatever the topic. */
export interface Decoded {
  readonly type: string;
  readonly kind?: string;
  readonly namespace?: string;
  readonly name?: string;
  readonly time?: string;
  readonly term?: number;
  readonly summary: string;
  readonly value: unknown;
}

export type RecordView =
  | { readonly record: TopicRecord; readonly ok: true; readonly decoded: Decoded }
  | { readonly record: TopicRecord; readonly ok: false; readonly reason: string };

/** Short names accepted for --topic, e.g. "cluster-events" for kseip.cluster-events.v1. */
export function resolveTopicName(name: string): string {
  const short = Object.values(TOPICS).find((t) => t === `kseip.${name}.v1`);
  return short ?? name;
}

type Decoder = (value: Buffer | null, record: TopicRecord) => Either<DecodeFailure, Decoded>;

const map =
  <A>(
    decode: (v: Buffer | null) => Either<DecodeFailure, A>,
    view: (a: A, r: TopicRecord) => Decoded,
  ): Decoder =>
  (value, record) => {
    const result = decode(value);
    return result._tag === 'Left' ? result : { _tag: 'Right', right: view(result.right, record) };
  };

const decoders: ReadonlyMap<string, Decoder> = new Map<string, Decoder>([
  [
    TOPICS.clusterEvents,
    map(decodeClusterEvent, (e) => ({
      type: e.type,
      kind: e.object.kind,
      ...(e.object.namespace === undefined ? {} : { namespace: e.object.namespace }),
      name: e.object.name,
      time: e.observedAt,
      term: e.producer.term,
      summary: renderEventSummary(e),
      value: e,
    })),
  ],
  [
    TOPICS.decisions,
    map(decodeDecision, (d, r) => ({
      type: d.type,
      ...(r.key === null ? {} : { name: r.key }),
      summary: compact(d, ['schema', 'id', 'type']),
      value: d,
    })),
  ],
  [
    TOPICS.nodeRules,
    map(decodeNodeRules, (n) => ({
      type: 'NodeRules',
      kind: 'Node',
      name: n.node,
      summary: `generation=${n.generation} nodeIP=${n.nodeIP || '-'} steers=${n.steers.length} egressIPs=${n.egressIPs.map((e) => e.egressIP).join(',') || '-'}`,
      value: n,
    })),
  ],
  [
    TOPICS.heartbeats,
    map(decodeHeartbeat, (h) => ({
      type: 'Heartbeat',
      kind: 'Node',
      name: h.node,
      time: h.sentAt,
      summary: `seq=${h.seq} boot=${h.bootId}`,
      value: h,
    })),
  ],
  [
    TOPICS.nodeStatus,
    map(decodeNodeApplyStatus, (s) => ({
      type: 'NodeApplyStatus',
      kind: 'Node',
      name: s.node,
      time: s.appliedAt,
      summary: compact(s, ['node', 'appliedAt']),
      value: s,
    })),
  ],
]);

/** Topics without a codec (dead letters, anything else): JSON if it parses, else the text. */
function decodeGeneric(value: Buffer | null, record: TopicRecord): Either<DecodeFailure, Decoded> {
  if (value === null)
    return { _tag: 'Right', right: { type: 'Tombstone', summary: '(null value)', value: null } };
  const parsed = parseJson(value);
  const text = value.toString('utf8');
  const headers = Object.entries(record.headers)
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
  return {
    _tag: 'Right',
    right: {
      type: record.topic === TOPICS.deadLetter ? 'DeadLetter' : 'Record',
      ...(record.key === null ? {} : { name: record.key }),
      summary: [headers, parsed._tag === 'Right' ? JSON.stringify(parsed.right) : text]
        .filter((s) => s)
        .join(' '),
      value: parsed._tag === 'Right' ? parsed.right : text,
    },
  };
}

/**
 * The contract topic a topic name carries: the name itself, or the one it extends with a suffix
 * ("kseip.cluster-events.v1.replay-7" holds cluster events too: replays, tests, what-ifs).
 */
function contractOf(topic: string): string | undefined {
  if (decoders.has(topic)) return topic;
  return [...decoders.keys()].find((t) => topic.startsWith(`${t}.`));
}

/** True when --kind/--type/--namespace mean something for this topic. */
export function topicHasObjects(topic: string): boolean {
  return contractOf(topic) === TOPICS.clusterEvents;
}

export function decodeRecord(record: TopicRecord): RecordView {
  const contract = contractOf(record.topic);
  const decode = (contract === undefined ? undefined : decoders.get(contract)) ?? decodeGeneric;
  const result = decode(record.value, record);
  return result._tag === 'Right'
    ? { record, ok: true, decoded: result.right }
    : { record, ok: false, reason: result.left.reason };
}

export interface Filters {
  /** Case-insensitive. */
  readonly kinds?: readonly string[];
  readonly types?: readonly string[];
  readonly namespace?: string;
  readonly name?: string;
  /** Record timestamps, ms since the epoch, inclusive. */
  readonly sinceMs?: number;
  readonly untilMs?: number;
}

function rawType(value: Buffer | null): string | undefined {
  const parsed = parseJson(value);
  if (parsed._tag === 'Left' || typeof parsed.right !== 'object' || parsed.right === null) return undefined;
  const type = (parsed.right as { type?: unknown }).type;
  return typeof type === 'string' ? type : undefined;
}

export function selectMatching(view: RecordView, f: Filters): boolean {
  const ts = Number(view.record.timestamp);
  if (f.sinceMs !== undefined && ts < f.sinceMs) return false;
  if (f.untilMs !== undefined && ts > f.untilMs) return false;
  if (!view.ok) {
    // Undecodable: judged on what is still known, the key ("Kind/namespace/name" on
    // cluster-events) and the "type" field if the value is JSON; unknown parts never exclude.
    const key = view.record.key ?? '';
    const [kind, namespace, ...rest] = key.split('/');
    const keyed = rest.length > 0;
    const type = rawType(view.record.value);
    return (
      (f.types === undefined ||
        type === undefined ||
        f.types.some((t) => t.toLowerCase() === type.toLowerCase())) &&
      (f.kinds === undefined || !keyed || f.kinds.some((k) => k.toLowerCase() === kind?.toLowerCase())) &&
      (f.namespace === undefined || !keyed || namespace === f.namespace) &&
      (f.name === undefined || (keyed ? rest.join('/') === f.name : key === f.name))
    );
  }
  const d = view.decoded;
  if (f.types !== undefined && !f.types.some((t) => t.toLowerCase() === d.type.toLowerCase())) return false;
  if (f.kinds !== undefined && !f.kinds.some((k) => k.toLowerCase() === (d.kind ?? '').toLowerCase()))
    return false;
  if (f.namespace !== undefined && d.namespace !== f.namespace) return false;
  if (f.name !== undefined && d.name !== f.name) return false;
  return true;
}

// ---- rendering ----------------------------------------------------------------------------------

const labels = (l: Readonly<Record<string, string>>): string =>
  Object.keys(l).length === 0
    ? '{}'
    : Object.entries(l)
        .sort(([a], [b]) => compare(a, b))
        .map(([k, v]) => `${k}=${v}`)
        .join(',');

function compact(value: object, omit: readonly string[] = []): string {
  return Object.entries(value)
    .filter(([k]) => !omit.includes(k))
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' ');
}

const selector = (
  s: { matchLabels?: Record<string, string>; matchExpressions?: unknown[] } | undefined,
): string => (s === undefined ? '-' : JSON.stringify(s));

/** One line that says what an event states; every event type has its own wording. */
export function renderEventSummary(e: ClusterEvent): string {
  switch (e.type) {
    case 'StaticEgressIPObserved':
      return `generation=${e.payload.generation} rules=${JSON.stringify(e.payload.rules)}`;
    case 'ClusterStaticEgressIPObserved':
      return `generation=${e.payload.generation} namespaceSelector=${selector(e.payload.namespaceSelector)} rules=${JSON.stringify(e.payload.rules)}`;
    case 'StaticEgressIPPoolObserved':
      return `generation=${e.payload.generation} addresses=${e.payload.addresses.join(',')} namespaceSelector=${selector(e.payload.namespaceSelector)} nodeSelector=${selector(e.payload.nodeSelector)}`;
    case 'ServiceObserved':
      return `selector=${e.payload.selector === undefined ? '-' : labels(e.payload.selector)}`;
    case 'EndpointSliceObserved':
      return `service=${e.payload.serviceName} endpoints=${
        e.payload.endpoints
          .map(
            (ep) => `${ep.addresses.join('|')}${ep.podName ? `(${ep.podName}@${ep.nodeName ?? '?'})` : ''}`,
          )
          .join(',') || '-'
      }`;
    case 'PodObserved':
      return `node=${e.payload.nodeName ?? '-'} ips=${e.payload.podIPs.join(',') || '-'} labels=${labels(e.payload.labels)}${e.payload.hostNetwork ? ' hostNetwork' : ''}${e.payload.terminal ? ' terminal' : ''}`;
    case 'NodeObserved':
      return `ip=${e.payload.internalIP ?? '-'} ready=${e.payload.ready}${e.payload.unschedulable ? ' unschedulable' : ''}${e.payload.addresses?.length ? ` addresses=${e.payload.addresses.join(',')}` : ''}${e.payload.podCIDRs?.length ? ` podCIDRs=${e.payload.podCIDRs.join(',')}` : ''} labels=${labels(e.payload.labels)}`;
    case 'NamespaceObserved':
      return `labels=${labels(e.payload.labels)}`;
    case 'ServiceCIDRObserved':
      return `cidrs=${e.payload.cidrs.join(',') || '-'}`;
    case 'StaticEgressIPDeleted':
    case 'ClusterStaticEgressIPDeleted':
    case 'StaticEgressIPPoolDeleted':
    case 'ServiceDeleted':
    case 'EndpointSliceDeleted':
    case 'PodDeleted':
    case 'NodeDeleted':
    case 'NamespaceDeleted':
    case 'ServiceCIDRDeleted':
      return '';
    case 'LeadershipAcquired':
      return `holder=${e.payload.holder}`;
    case 'ListStarted':
      return `kind=${e.payload.kind} list=${e.payload.listId}`;
    case 'ListCompleted':
      return `kind=${e.payload.kind} list=${e.payload.listId} count=${e.payload.count}`;
    case 'NodeLost':
      return `lastHeartbeat=${e.payload.lastHeartbeatAt} silence=${e.payload.silenceMs}ms`;
    case 'NodeBack':
      return `heartbeat=${e.payload.heartbeatAt}`;
    default: {
      const _exhaustive: never = e;
      return JSON.stringify(_exhaustive);
    }
  }
}

const isoOf = (ms: string): string => {
  const d = new Date(Number(ms));
  return Number.isNaN(d.getTime()) ? ms : d.toISOString();
};

function objectColumn(d: Decoded): string {
  if (d.kind === undefined) return d.name ?? '-';
  const ns = d.namespace === undefined ? '' : `${d.namespace}/`;
  return d.name === undefined || d.name === '' ? d.kind : `${d.kind} ${ns}${d.name}`;
}

const pad = (s: string, n: number): string => (s.length >= n ? `${s} ` : s.padEnd(n + 1));

/**
 * The table heading. `wide` (-o wide) adds the record key and the time the broker logged the
 * record (TIME is the fact's own observedAt), and always writes offsets as "partition:offset".
 */
export function renderTableHeader(wide = false): string {
  const extra = wide ? `${pad('KEY', 40)}${pad('LOGGED', 24)}` : '';
  return `${pad('OFFSET', 8)}${pad('TIME', 24)}${pad('TERM', 4)}${pad('TYPE', 29)}${pad('OBJECT', 40)}${extra}DETAILS`;
}

/** One row; `partitioned` writes the offset as "partition:offset". */
export function renderTableRow(view: RecordView, partitioned: boolean, wide = false): string {
  const offset = partitioned || wide ? `${view.record.partition}:${view.record.offset}` : view.record.offset;
  const extra = wide ? `${pad(view.record.key ?? '-', 40)}${pad(isoOf(view.record.timestamp), 24)}` : '';
  if (!view.ok) {
    const where = `${pad(offset, 8)}${pad(isoOf(view.record.timestamp), 24)}${pad('-', 4)}`;
    return `${where}${pad('UNDECODABLE', 29)}${pad(view.record.key ?? '-', 40)}${extra}${view.reason}`;
  }
  const d = view.decoded;
  const time = d.time ?? isoOf(view.record.timestamp);
  const term = d.term === undefined ? '-' : String(d.term);
  return `${pad(offset, 8)}${pad(time, 24)}${pad(term, 4)}${pad(d.type, 29)}${pad(objectColumn(d), 40)}${extra}${d.summary}`.trimEnd();
}

/** The record as a document (-o json: one line each; -o yaml: one YAML document each). */
export function selectRecordDocument(view: RecordView): Record<string, unknown> {
  const where = {
    topic: view.record.topic,
    partition: view.record.partition,
    offset: Number(view.record.offset),
    timestamp: isoOf(view.record.timestamp),
    key: view.record.key,
  };
  return view.ok
    ? { ...where, value: view.decoded.value }
    : { ...where, undecodable: view.reason, raw: view.record.value?.toString('utf8') ?? null };
}

/** One JSON object per line: where the record is, and the decoded value or why it did not decode. */
export function renderJsonLine(view: RecordView): string {
  return JSON.stringify(selectRecordDocument(view));
}

export type TimeArgError = { readonly _tag: 'TimeArgError'; readonly reason: string };

const relativeUnits: Record<string, number> = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** --since/--until: an RFC 3339 time ("2026-01-02T15:04:05Z") or an age ("90s", "10m", "2h", "7d"). */
export function parseTimeArg(text: string, nowMs: number): Either<TimeArgError, number> {
  const rel = /^(\d+(?:\.\d+)?)([smhd])$/.exec(text.trim());
  if (rel !== null) return { _tag: 'Right', right: nowMs - Number(rel[1]) * relativeUnits[rel[2]!]! };
  if (/^\d{4}-\d{2}-\d{2}/.test(text)) {
    const ms = Date.parse(text);
    if (!Number.isNaN(ms)) return { _tag: 'Right', right: ms };
  }
  return {
    _tag: 'Left',
    left: {
      _tag: 'TimeArgError',
      reason: `${JSON.stringify(text)} is neither an RFC 3339 time nor an age like 10m`,
    },
  };
}
