// Scenario files (test/scenarios/*.txtar): Kubernetes YAML and log events in; the decisions, node
// rules, policy and pool statuses and each node's kernel state out. Test support, pure apart from reading
// and writing the files: a scenario runs the production path in one process, without Kafka:
//
//   YAML → parseObject (the watcher's edge) → cluster events → evolve (the projection)
//        → decisions + node rules → computeKernelState per node (the agent's model)
//        → evolveStatus (the status writer's model, every node acking every record as the agent
//          would: applied, with the rules it left out) → dump
//
// The format is txtar, as Cilium's egress-gateway scenarios: free text first (what the scenario
// is about), then sections `-- name --`. Input sections, run in order:
//   -- apply[: note] --      Kubernetes objects (YAML documents): each one Observed
//   -- delete[: note] --     one object a line: `Kind namespace/name` or `Kind name`
//   -- events[: note] --     log facts, one a line: `NodeBack node1 node2`, `NodeLost node2`
//                            (liveness); `LeadershipAcquired <component> <term> <holder>` (a
//                            term announced, maybe forged: later inputs keep their term);
//                            `Term <component> <term>`: later inputs of that component are
//                            written in that term (a new leader, or a deposed one still writing)
//   -- snapshot: <label> --  empty; the outputs are taken here too, under that label
// Output sections (`-- out: ... --`) are written by the runner: every decision (grouped by the
// input section that caused it), then, at every snapshot and at the end, the node rules, the
// policy statuses, the pool statuses and the kernel dump of every node; an event the fold refused or fenced is a
// `# refused: <reason>` or `# fenced: ...` line among the decisions. Update them after an intended change with
// `UPDATE_GOLDEN=1 npm run test:unit` (or the one file: test/scenarios.unit.test.ts) and review
// the diff.
import { readFileSync } from 'node:fs';
import { parseAllDocuments, stringify } from 'yaml';
import type { KubernetesObject } from '@kubernetes/client-node';
import type { ClusterEvent, Producer } from '../../src/contracts/cluster-events.ts';
import type { Decision } from '../../src/contracts/decisions.ts';
import type { NodeRules } from '../../src/contracts/node-rules.ts';
import type { ObjectKind, ObjectRef } from '../../src/contracts/primitives.ts';
import {
  computeKernelState,
  DEFAULT_DATAPLANE_CONFIG,
  type DataplaneConfig,
  type KernelState,
} from '../../src/dataplane/kernel-state.ts';
import { renderAddress, renderLinkAdd, renderRoute, renderRule } from '../../src/dataplane/ip-transaction.ts';
import { dumpNftState } from '../../src/dataplane/nft-transaction.ts';
import { compare } from '../../src/lib/compare.ts';
import { evolve, initialState } from '../../src/projection/projection.ts';
import {
  evolveStatus,
  initialStatusState,
  selectPolicyStatus,
  selectPoolStatus,
} from '../../src/status/status-model.ts';
import { buildEvent } from '../../src/watcher/envelope.ts';
import { eventTypesOf, parseObject } from '../../src/watcher/parse.ts';

/** The agent's configuration on every scenario node: uplink eth0, pod and service CIDRs. */
export const SCENARIO_DATAPLANE: DataplaneConfig = {
  ...DEFAULT_DATAPLANE_CONFIG,
  uplink: 'eth0',
  neverSteer: ['10.244.0.0/16', '10.96.0.0/12'],
};
const UPLINK_MTU = 1500;

export interface Section {
  readonly name: string;
  readonly body: string;
}

export interface Txtar {
  readonly comment: string;
  readonly sections: readonly Section[];
}

const MARKER = /^-- (.+) --$/;

export function parseTxtar(text: string): Txtar {
  const lines = text.split('\n');
  const comment: string[] = [];
  const sections: { name: string; lines: string[] }[] = [];
  for (const line of lines) {
    const m = MARKER.exec(line);
    if (m !== null) sections.push({ name: m[1]!, lines: [] });
    else if (sections.length === 0) comment.push(line);
    else sections.at(-1)!.lines.push(line);
  }
  const join = (ls: string[]): string => {
    const body = ls.join('\n');
    return body === '' || body.endsWith('\n') ? body : body + '\n';
  };
  return { comment: join(comment), sections: sections.map((s) => ({ name: s.name, body: join(s.lines) })) };
}

export function formatTxtar(t: Txtar): string {
  return t.comment + t.sections.map((s) => `-- ${s.name} --\n${s.body}`).join('');
}

const KINDS = new Set<string>(Object.keys(eventTypesOf));

function isKind(kind: string): kind is ObjectKind {
  return KINDS.has(kind);
}

/** Runs the input sections of a scenario and returns it with freshly computed output sections. */
export function runScenario(file: string, scenario: Txtar): Txtar {
  const state = initialState();
  const status = initialStatusState();
  const latest = new Map<string, NodeRules>();
  const policies = new Set<string>();
  const out: Section[] = [];
  const decisionLines: string[] = [];
  let offset = 0;
  let n = 0;

  const at = (): string => new Date(Date.UTC(2026, 0, 1, 0, 0, 0, 0) + offset * 1000).toISOString();
  const terms: Record<Producer['component'], number> = { watcher: 1, liveness: 1 };
  const fold = (event: ClusterEvent): void => {
    const fenced = state.ignored.fenced;
    const { decisions, nodeRules, refused } = evolve(state, event, offset);
    if (refused !== undefined) decisionLines.push(`# refused: ${refused}`);
    if (state.ignored.fenced > fenced)
      decisionLines.push(
        `# fenced: ${event.type} ${refOf(event.object)} (${event.producer.component} term ${event.producer.term})`,
      );
    const time = at();
    for (const d of decisions) {
      evolveStatus(status, { kind: 'decision', decision: d, at: time });
      if (d.type === 'PolicyStatusComputed') policies.add(policyKeyOf(d.policy));
    }
    for (const r of nodeRules) {
      latest.set(r.node, r);
      evolveStatus(status, { kind: 'nodeRules', rules: r, at: time });
      const computed = computeKernelState(SCENARIO_DATAPLANE, r, UPLINK_MTU);
      const unprogrammable = computed._tag === 'Right' ? computed.right.unprogrammable : [];
      evolveStatus(status, {
        kind: 'ack',
        ack: {
          schema: 1,
          node: r.node,
          generation: r.generation,
          ok: computed._tag === 'Right',
          appliedAt: time,
          durationMs: 0,
          unchanged: false,
          ...(computed._tag === 'Left' ? { error: computed.left.reason } : {}),
          ...(unprogrammable.length > 0 ? { unprogrammable: [...unprogrammable] } : {}),
        },
        at: time,
      });
    }
    if (decisions.length > 0) decisionLines.push(renderDecisions(decisions));
    offset++;
  };
  const envelope = (component: Producer['component'], term = terms[component]) => ({
    id: `${file}#${++n}`,
    observedAt: at(),
    producer: { component, term },
  });
  const snapshot = (label: string): void => {
    out.push({ name: `out: ${label}: node-rules`, body: renderNodeRules(latest) });
    out.push({ name: `out: ${label}: status`, body: renderStatuses(status, policies) });
    out.push({ name: `out: ${label}: pool-status`, body: renderPoolStatuses(status, state.pools.keys()) });
    out.push({ name: `out: ${label}: kernel`, body: renderKernels(latest) });
  };

  for (const section of scenario.sections) {
    const [verb = '', ...rest] = section.name.split(':');
    const note = rest.join(':').trim();
    if (verb === 'out') continue;
    decisionLines.push(`# ${section.name}`);
    switch (verb) {
      case 'apply':
        for (const doc of parseAllDocuments(section.body)) {
          const obj = doc.toJS() as KubernetesObject | null;
          if (obj === null) continue;
          const kind = obj.kind ?? '';
          if (!isKind(kind))
            throw new Error(`${file}: ${section.name}: unknown kind ${JSON.stringify(kind)}`);
          const parsed = parseObject(kind, obj);
          if (parsed._tag === 'Left') {
            // What the watcher would do: nothing reaches the log (the API server's CEL rules
            // refuse such objects before that).
            decisionLines.push(`# not parsed: ${kind} ${parsed.left.object}: ${parsed.left.reason}`);
            continue;
          }
          const p = parsed.right;
          fold(buildEvent(p.type, p.object, p.payload as never, envelope('watcher')));
        }
        break;
      case 'delete':
        for (const line of lines(section.body)) {
          const [kind = '', ref = ''] = line.split(/\s+/);
          if (!isKind(kind))
            throw new Error(`${file}: ${section.name}: unknown kind in ${JSON.stringify(line)}`);
          const slash = ref.indexOf('/');
          const object: ObjectRef =
            slash < 0
              ? { kind, name: ref }
              : { kind, namespace: ref.slice(0, slash), name: ref.slice(slash + 1) };
          fold(buildEvent(eventTypesOf[kind].deleted, object, {}, envelope('watcher')));
        }
        break;
      case 'events':
        for (const line of lines(section.body)) {
          const [type, ...nodes] = line.split(/\s+/);
          if (type === 'LeadershipAcquired' || type === 'Term') {
            const [component = '', termText = '', holder = ''] = nodes;
            const term = Number(termText);
            if (!isComponent(component) || termText === '' || Number.isNaN(term))
              throw new Error(`${file}: ${section.name}: bad ${type} line ${JSON.stringify(line)}`);
            if (type === 'Term') terms[component] = term;
            else
              fold(
                buildEvent(
                  'LeadershipAcquired',
                  { kind: 'StaticEgressIP', namespace: 'kube-static-egress-ip', name: component },
                  { holder },
                  envelope(component, term),
                ),
              );
            continue;
          }
          for (const node of nodes) {
            const object: ObjectRef = { kind: 'Node', name: node };
            if (type === 'NodeBack')
              fold(buildEvent('NodeBack', object, { heartbeatAt: at() }, envelope('liveness')));
            else if (type === 'NodeLost')
              fold(
                buildEvent(
                  'NodeLost',
                  object,
                  { lastHeartbeatAt: at(), silenceMs: 900 },
                  envelope('liveness'),
                ),
              );
            else throw new Error(`${file}: ${section.name}: unknown event ${JSON.stringify(line)}`);
          }
        }
        break;
      case 'snapshot':
        if (note === '') throw new Error(`${file}: a snapshot needs a label: -- snapshot: <label> --`);
        snapshot(note);
        break;
      default:
        throw new Error(`${file}: unknown section ${JSON.stringify(section.name)}`);
    }
  }
  snapshot('end');
  const inputs = scenario.sections.filter((s) => !s.name.startsWith('out:'));
  return {
    comment: scenario.comment,
    sections: [...inputs, { name: 'out: decisions', body: decisionLines.join('\n') + '\n' }, ...out],
  };
}

function isComponent(c: string): c is Producer['component'] {
  return c === 'watcher' || c === 'liveness';
}

function refOf(ref: ObjectRef): string {
  return ref.namespace === undefined ? ref.name : `${ref.namespace}/${ref.name}`;
}

function lines(body: string): string[] {
  return body
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
}

function policyKeyOf(ref: { namespace?: string; name: string }): string {
  return ref.namespace === undefined ? `cluster/${ref.name}` : `${ref.namespace}/${ref.name}`;
}

function yaml(value: unknown): string {
  return stringify(value, { lineWidth: 0, aliasDuplicateObjects: false });
}

/** Decisions without their envelope's constant parts (schema, id). */
function renderDecisions(decisions: readonly Decision[]): string {
  return yaml(decisions.map(({ schema: _schema, id: _id, ...d }) => d)).trimEnd();
}

function renderNodeRules(latest: ReadonlyMap<string, NodeRules>): string {
  if (latest.size === 0) return '# no node rules\n';
  const nodes = [...latest.keys()].sort(compare);
  return yaml(Object.fromEntries(nodes.map((node) => [node, withoutSchema(latest.get(node)!)])));
}

function withoutSchema({ schema: _schema, ...rules }: NodeRules): Omit<NodeRules, 'schema'> {
  return rules;
}

function renderStatuses(
  status: ReturnType<typeof initialStatusState>,
  policies: ReadonlySet<string>,
): string {
  const views: Record<string, unknown> = {};
  for (const key of [...policies].sort(compare)) {
    const s = selectPolicyStatus(status, key);
    if (s !== undefined) views[key] = s.status;
  }
  return Object.keys(views).length === 0 ? '# no policy status\n' : yaml(views);
}

/** The status of every pool that exists at this point (a deleted pool's status went with it). */
function renderPoolStatuses(status: ReturnType<typeof initialStatusState>, pools: Iterable<string>): string {
  const views: Record<string, unknown> = {};
  for (const name of [...pools].sort(compare)) {
    const s = selectPoolStatus(status, name);
    if (s !== undefined) views[name] = s.status;
  }
  return Object.keys(views).length === 0 ? '# no pool status\n' : yaml(views);
}

function renderKernels(latest: ReadonlyMap<string, NodeRules>): string {
  if (latest.size === 0) return '# no node rules, so nothing of ours in any kernel\n';
  const parts: string[] = [];
  for (const node of [...latest.keys()].sort(compare)) {
    const computed = computeKernelState(SCENARIO_DATAPLANE, latest.get(node)!, UPLINK_MTU);
    parts.push(`## ${node}`);
    if (computed._tag === 'Left')
      parts.push(`cannot render: ${computed.left._tag}: ${JSON.stringify(computed.left)}`);
    else {
      for (const s of computed.right.skipped) parts.push(`# skipped: ${s}`);
      for (const u of computed.right.unprogrammable)
        parts.push(
          `# not programmable: ${u.role} slot ${u.slot} egress IP ${u.egressIP}` +
            `${u.sources.length > 0 ? ` (${u.sources.join(', ')})` : ''}: ${u.reason}`,
        );
      parts.push(dumpKernelState(computed.right.state).trimEnd());
    }
  }
  return parts.join('\n') + '\n';
}

/** Every object of ours in one node's kernel, one line each, in the order the agent writes them. */
export function dumpKernelState(state: KernelState): string {
  const lines = [
    dumpNftState(state.nft).trimEnd(),
    ...state.links.map((l) => `ip ${renderLinkAdd(l)}${l.up ? ' (up)' : ' (down)'}`),
    ...state.neighbours.map((x) => `ip neigh ${x.ip} dev ${x.dev} lladdr ${x.mac} nud permanent`),
    ...state.fdb.map((f) => `bridge fdb ${f.mac} dev ${f.dev} dst ${f.dst}`),
    ...state.routes.map((r) => `ip ${renderRoute('replace', r)}`),
    ...state.rules.map((r) => `ip ${renderRule('add', r)}`),
    ...state.addresses.map((a) => `ip ${renderAddress('replace', a)}`),
    ...state.sysctls.map((s) => `sysctl ${s.key}=${s.value}`),
  ];
  return lines.join('\n') + '\n';
}

/** A unified line diff (expected → actual) with `context` lines around each change. */
export function lineDiff(expected: string, actual: string, context = 3): string {
  const a = expected.split('\n');
  const b = actual.split('\n');
  // LCS table from the end; scenario files are a few hundred lines, so O(n·m) is fine.
  const lcs: Uint32Array[] = Array.from({ length: a.length + 1 }, () => new Uint32Array(b.length + 1));
  for (let i = a.length - 1; i >= 0; i--)
    for (let j = b.length - 1; j >= 0; j--)
      lcs[i]![j] = a[i] === b[j] ? lcs[i + 1]![j + 1]! + 1 : Math.max(lcs[i + 1]![j]!, lcs[i]![j + 1]!);
  const ops: { op: ' ' | '-' | '+'; line: string; at: number }[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    if (i < a.length && j < b.length && a[i] === b[j]) ops.push({ op: ' ', line: a[i++]!, at: j++ });
    else if (j < b.length && (i === a.length || lcs[i]![j + 1]! > lcs[i + 1]![j]!))
      ops.push({ op: '+', line: b[j++]!, at: j });
    else ops.push({ op: '-', line: a[i++]!, at: j });
  }
  const keep = ops.map(() => false);
  ops.forEach((o, k) => {
    if (o.op !== ' ')
      for (let c = Math.max(0, k - context); c <= Math.min(ops.length - 1, k + context); c++) keep[c] = true;
  });
  const out: string[] = [];
  let gap = false;
  let section = '(the free text)';
  ops.forEach((o, k) => {
    if (o.op !== '-' && MARKER.test(o.line)) section = o.line;
    if (!keep[k]) {
      gap = true;
      return;
    }
    if (gap || out.length === 0) out.push(`@@ line ${o.at + 1}, in ${section} @@`);
    gap = false;
    out.push(`${o.op} ${o.line}`);
  });
  return out.join('\n');
}

/** Reads, runs and re-formats one scenario file: the text it should have. */
export function expectedText(path: string, name: string): { actual: string; wanted: string } {
  const actual = readFileSync(path, 'utf8');
  return { actual, wanted: formatTxtar(runScenario(name, parseTxtar(actual))) };
}
