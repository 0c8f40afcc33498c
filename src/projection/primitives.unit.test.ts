// The pure building blocks: label selectors, address arithmetic, rendezvous hashing.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { matchesSelector, matchesServiceSelector, selectorKey } from './labels.ts';
import {
  computeDestinationSet,
  destinationSetsOverlap,
  parseAddress,
  parseCidr,
  parsePoolEntry,
  rangesCover,
  type ParsedCidr,
} from './addresses.ts';
import { computeRanking, fnv1a32, ipHash, nodeHash } from './hrw.ts';

void describe('label selectors', () => {
  void it('match Kubernetes semantics', () => {
    const labels = { app: 'web', tier: 'fe' };
    assert.equal(matchesSelector({}, labels), true);
    assert.equal(matchesSelector({ matchLabels: { app: 'web' } }, labels), true);
    assert.equal(matchesSelector({ matchLabels: { app: 'db' } }, labels), false);
    assert.equal(
      matchesSelector({ matchExpressions: [{ key: 'tier', operator: 'In', values: ['fe', 'be'] }] }, labels),
      true,
    );
    assert.equal(
      matchesSelector({ matchExpressions: [{ key: 'zone', operator: 'NotIn', values: ['a'] }] }, labels),
      true,
    );
    assert.equal(matchesSelector({ matchExpressions: [{ key: 'zone', operator: 'Exists' }] }, labels), false);
    assert.equal(
      matchesSelector({ matchExpressions: [{ key: 'zone', operator: 'DoesNotExist' }] }, labels),
      true,
    );
    assert.equal(matchesSelector({ matchLabels: { constructor: 'x' } }, {}), false, 'no prototype keys');
  });
  void it('a Service selector that is empty selects nothing', () => {
    assert.equal(matchesServiceSelector({}, { app: 'web' }), false);
    assert.equal(matchesServiceSelector(undefined, { app: 'web' }), false);
    assert.equal(matchesServiceSelector({ app: 'web' }, { app: 'web', x: 'y' }), true);
  });
  void it('selector keys ignore the order of labels and values', () => {
    assert.equal(
      selectorKey({
        matchLabels: { a: '1', b: '2' },
        matchExpressions: [{ key: 'k', operator: 'In', values: ['y', 'x'] }],
      }),
      selectorKey({
        matchLabels: { b: '2', a: '1' },
        matchExpressions: [{ key: 'k', operator: 'In', values: ['x', 'y'] }],
      }),
    );
  });
});

void describe('addresses', () => {
  void it('parses and canonicalizes addresses and CIDRs', () => {
    assert.equal(parseAddress('198.51.100.7')?.text, '198.51.100.7');
    assert.equal(parseAddress('2001:DB8:0:0::1')?.text, '2001:db8::1');
    assert.equal(parseAddress('198.51.100'), undefined);
    assert.equal(parseCidr('203.0.113.7/24')?.text, '203.0.113.0/24');
    assert.equal(parseCidr('203.0.113.0/33'), undefined);
  });
  void it('pool entries: CIDRs and inclusive ranges', () => {
    const range = parsePoolEntry('198.51.100.20-198.51.100.30');
    assert.ok(range);
    const at = (ip: string) =>
      rangesCover([range], parseAddress(ip) as NonNullable<ReturnType<typeof parseAddress>>);
    assert.deepEqual(
      [at('198.51.100.19'), at('198.51.100.20'), at('198.51.100.30'), at('198.51.100.31')],
      [false, true, true, false],
    );
    assert.equal(parsePoolEntry('198.51.100.30-198.51.100.20'), undefined);
  });
  void it('destination sets overlap unless exceptions carve the overlap out', () => {
    const set = (d: string[], e: string[] = []) =>
      computeDestinationSet(
        4,
        d.map((x) => parseCidr(x) as ParsedCidr),
        e.map((x) => parseCidr(x) as ParsedCidr),
      );
    assert.equal(destinationSetsOverlap(set(['203.0.113.0/24']), set(['203.0.113.128/25'])), true);
    assert.equal(
      destinationSetsOverlap(set(['203.0.113.0/24'], ['203.0.113.128/25']), set(['203.0.113.128/25'])),
      false,
    );
    assert.equal(destinationSetsOverlap(set(['203.0.113.0/25']), set(['203.0.113.128/25'])), false);
    assert.equal(
      destinationSetsOverlap(set(['0.0.0.0/0'], ['203.0.113.0/24', '10.0.0.0/8']), set(['203.0.113.9/32'])),
      false,
    );
  });
});

void describe('rendezvous hashing', () => {
  void it('is a fixed function of its inputs (golden values guard against accidental changes)', () => {
    assert.equal(fnv1a32(''), 0x811c9dc5);
    assert.equal(fnv1a32('a'), 0xe40c292c);
    const nodes = ['node-1', 'node-2', 'node-3', 'node-4'];
    const rank = computeRanking(ipHash('198.51.100.1'), nodes, 4, nodeHash);
    assert.deepEqual(computeRanking(ipHash('198.51.100.1'), [...nodes].reverse(), 4, nodeHash), rank);
    assert.deepEqual(rank.slice().sort(), nodes);
  });
  void it('removing a node that is not in the top k leaves the top k unchanged', () => {
    const nodes = Array.from({ length: 20 }, (_, i) => `n${i}`);
    for (let i = 0; i < 50; i++) {
      const h = ipHash(`198.51.100.${i}`);
      const top = computeRanking(h, nodes, 2, nodeHash);
      const others = nodes.filter((n) => !top.includes(n));
      assert.deepEqual(
        computeRanking(
          h,
          nodes.filter((n) => n !== others[i % others.length]),
          2,
          nodeHash,
        ),
        top,
      );
    }
  });
});
