// Properties of the projection on random logs (fast-check; arbitraries.ts):
// - determinism: a log replayed twice gives byte-identical outputs;
// - agreement: after every event, the incremental state equals a from-scratch recomputation
//   (reference.ts), so no index or shortcut can drift;
// - redelivery: duplicated events (same id) anywhere later in the log change nothing;
// - relist order: the order of independent objects' events inside a relist does not change the
//   final assignment.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { ClusterEvent } from '../contracts/cluster-events.ts';
import type { ObjectKind } from '../contracts/primitives.ts';
import { NODES, logArb, objectStep, toLog } from '../../test/support/arbitraries.ts';
import { evolve, initialState, replay, selectAssignments, type Outputs } from './projection.ts';
import { selectNodeRules } from './queries.ts';
import { emptyNodeRules } from '../contracts/node-rules.ts';
import { diffWithReference, nodeRulesFingerprint } from './reference.ts';

const EMPTY = nodeRulesFingerprint(emptyNodeRules('', 0));
import { events, rule } from '../../test/support/fixtures.ts';

const RUNS = Number(process.env.KSEIP_PROPERTY_RUNS ?? 200);

const fold = (log: readonly ClusterEvent[]) => replay(log.map((event, offset) => ({ event, offset })));

/** Outputs with the log position taken out (offsets, ids, generations), for logs of different length. */
function positionFree(outputs: readonly Outputs[]): string {
  return JSON.stringify(
    outputs.map((o) => ({
      decisions: o.decisions.map(({ id: _id, offset: _offset, ...d }) => d),
      nodeRules: o.nodeRules.map(({ generation: _g, ...r }) => r),
    })),
  );
}

void describe('projection properties', () => {
  void it('any log replayed twice gives byte-identical outputs', () => {
    fc.assert(
      fc.property(logArb(), (log) => {
        const a = JSON.stringify(fold(log).outputs);
        const b = JSON.stringify(fold(structuredClone(log)).outputs);
        assert.equal(a, b);
      }),
      { numRuns: RUNS },
    );
  });

  void it('after every event the incremental state equals a from-scratch recomputation', () => {
    fc.assert(
      fc.property(logArb(), (log) => {
        const state = initialState();
        const emitted = new Map<string, string>();
        log.forEach((event, offset) => {
          const outputs = evolve(state, event, offset);
          const at = `after event ${offset} (${event.type} ${JSON.stringify(event.object)})`;
          assert.deepEqual(diffWithReference(state, 5), [], at);
          // What was emitted is what the node must hold now, and nothing is emitted unchanged.
          for (const rules of outputs.nodeRules) {
            const content = nodeRulesFingerprint(rules);
            assert.notEqual(
              content,
              emitted.get(rules.node) ?? EMPTY,
              `${at}: ${rules.node} emitted unchanged`,
            );
            emitted.set(rules.node, content);
          }
          for (const node of new Set([...emitted.keys(), ...state.nodes.keys()])) {
            const now = selectNodeRules(state, node);
            const current = now === undefined ? EMPTY : nodeRulesFingerprint(now);
            assert.equal(current, emitted.get(node) ?? EMPTY, `${at}: ${node}`);
          }
        });
      }),
      { numRuns: RUNS },
    );
  });

  void it('redelivered events (same id, anywhere later) change nothing', () => {
    fc.assert(
      fc.property(
        logArb(),
        fc.array(fc.tuple(fc.nat(), fc.nat()), { minLength: 1, maxLength: 10 }),
        (log, picks) => {
          const withDuplicates = [...log];
          for (const [which, where] of picks) {
            const original = log[which % log.length] as ClusterEvent;
            const pos = withDuplicates.indexOf(original);
            const at = pos + 1 + (where % (withDuplicates.length - pos));
            withDuplicates.splice(at, 0, structuredClone(original));
          }
          const original = fold(log);
          const duplicated = fold(withDuplicates);
          assert.equal(positionFree(duplicated.outputs), positionFree(original.outputs));
          assert.deepEqual(selectAssignments(duplicated.state), selectAssignments(original.state));
        },
      ),
      { numRuns: RUNS },
    );
  });

  void it('the order of independent objects inside a relist does not change the final assignment', () => {
    const kinds: ObjectKind[] = [
      'Namespace',
      'StaticEgressIPPool',
      'Node',
      'Service',
      'EndpointSlice',
      'Pod',
      'StaticEgressIP',
      'ClusterStaticEgressIP',
    ];
    // Policies with distinct egress IPs are independent of each other; so are all other objects.
    // (Two policies claiming one IP are not: the first seen wins, by design.) The history's own
    // policies share IPs, so the relist carries its own, from a range only its pool covers.
    const policies = fc.uniqueArray(fc.integer({ min: 100, max: 120 }), { minLength: 1, maxLength: 6 });
    fc.assert(
      fc.property(
        fc.array(objectStep, { minLength: 10, maxLength: 60 }),
        policies,
        fc.subarray(NODES, { minLength: 1 }),
        fc.boolean(),
        fc.integer(),
        (steps, ips, healthy, withHistory, seed) => {
          // The objects as they exist at the end of a history: each object's last Observed wins.
          const history = toLog(steps);
          const ev = events();
          const policyEvents = [
            ev.pool('pool-relist', ['198.51.100.96/27']),
            ...healthy.flatMap((n) => [ev.node(n), ev.nodeBack(n)]),
            ...ips.map((n, i) =>
              ev.policy(`ns-${'abc'[i % 3]}`, `p${n}`, [
                rule({ egressIP: `198.51.100.${n}`, podSelector: {}, gateways: 1 + (n % 3) }),
              ]),
            ),
          ];
          const latest = new Map<string, ClusterEvent>();
          const historyObjects = history.filter(
            (e) => e.object.kind !== 'StaticEgressIP' && e.object.kind !== 'ClusterStaticEgressIP',
          );
          for (const e of [...historyObjects, ...policyEvents]) {
            if (!e.type.endsWith('Observed') && e.type !== 'NodeBack' && e.type !== 'NodeLost') continue;
            const k = `${e.type === 'NodeBack' || e.type === 'NodeLost' ? 'live' : e.object.kind}/${e.object.namespace ?? ''}/${e.object.name}`;
            latest.set(k, e);
          }
          const objects = [...latest.values()];
          const shuffled = fc.sample(fc.shuffledSubarray(objects, { minLength: objects.length }), {
            numRuns: 1,
            seed,
          })[0] as ClusterEvent[];
          const relist = (order: ClusterEvent[]) => {
            const ev2 = events();
            const prefix = withHistory ? toLog(steps) : [];
            const starts = kinds.map((k) => ev2.listStarted(k, 'relist'));
            const ends = kinds.map((k) => ev2.listCompleted(k, 'relist'));
            // Fresh ids: a relist re-observes objects, it does not redeliver old events.
            const body = order.map((e, i) => ({ ...e, id: `relist-${e.id}-${i}` }));
            return [...prefix.map((e) => ({ ...e, id: `h-${e.id}` })), ...starts, ...body, ...ends];
          };
          const a = fold(relist(objects)).state;
          const b = fold(relist(shuffled)).state;
          assert.deepEqual(
            Object.fromEntries(
              Object.entries(selectAssignments(a)).map(([ip, x]) => [ip, [x.active, x.standbys]]),
            ),
            Object.fromEntries(
              Object.entries(selectAssignments(b)).map(([ip, x]) => [ip, [x.active, x.standbys]]),
            ),
          );
          const selected = (s: typeof a) =>
            [...s.policies.values()]
              .flatMap((p) =>
                p.rules.map(
                  (r) =>
                    `${r.id}:${[...r.selected]
                      .map((x) => x.key)
                      .sort()
                      .join(',')}`,
                ),
              )
              .sort();
          assert.deepEqual(selected(a), selected(b));
        },
      ),
      { numRuns: RUNS },
    );
  });
});
