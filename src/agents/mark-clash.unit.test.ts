// Mark-clash detection (./mark-clash.ts) on a real `nft -j list ruleset` (test/fixtures, captured
// from nft 1.0.6 in a scratch netns): Calico-like accept/pass marks (0x10000, 0x20000),
// kube-proxy's masquerade bit 0x4000, Cilium-like magic 0x0f00 matches, iptables-nft MARK target
// and mark match (0x100000 and 0x40000), and our own table, which must never count.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { findMarkClashes } from './mark-clash.ts';

const ruleset = readFileSync(
  new URL('../../test/fixtures/nft-ruleset-foreign-marks.json', import.meta.url),
  'utf8',
);
const own = { family: 'ip', table: 'kseip' };
const brief = (mask: number) =>
  findMarkClashes(ruleset, mask, own).map(
    (c) => `${c.table}/${c.chain}#${c.handle} ${c.overlap?.toString(16) ?? '?'}`,
  );

void describe('mark clashes', () => {
  void test('given the old default 0x0fff0000, then the Calico-like marks, the exact compare and the iptables-nft rules clash', () => {
    assert.deepEqual(brief(0x0fff0000), [
      'calico-like/filter-FORWARD#2 10000',
      'calico-like/filter-FORWARD#3 f0000',
      'cilium-like/pre#3 fff0000',
      'mangle/PREROUTING#2 ?',
      'mangle/PREROUTING#3 40000',
    ]);
  });

  void test('given a mask in the low bits, then kube-proxy and the Cilium-like magic clash, Calico does not', () => {
    assert.deepEqual(brief(0x0000ff00), [
      'kube-proxy/mark-for-masquerade#3 4000',
      'kube-proxy/masquerading#4 4000',
      'kube-proxy/masquerading#5 4000',
      'cilium-like/pre#2 f00',
      'cilium-like/pre#3 ff00',
      'mangle/PREROUTING#2 ?',
    ]);
  });

  void test('our own table never clashes, and a ruleset without foreign marks gives nothing', () => {
    assert.ok(findMarkClashes(ruleset, 0x0fff0000, own).every((c) => c.table !== 'kseip'));
    const onlyOurs = JSON.stringify({
      nftables: [
        {
          rule: {
            family: 'ip',
            table: 'kseip',
            chain: 'pre',
            handle: 2,
            expr: [
              {
                mangle: {
                  key: { meta: { key: 'mark' } },
                  value: { '|': [{ '&': [{ meta: { key: 'mark' } }, 0xf000ffff] }, 0x10000] },
                },
              },
            ],
          },
        },
        { rule: { family: 'inet', table: 'other', chain: 'c', handle: 1, expr: [{ accept: null }] } },
      ],
    });
    assert.deepEqual(findMarkClashes(onlyOurs, 0x0fff0000, own), []);
  });

  void test('a mark set to a constant or copied from conntrack overwrites every bit', () => {
    const rule = (value: unknown) =>
      JSON.stringify({
        nftables: [
          {
            rule: {
              family: 'ip',
              table: 't',
              chain: 'c',
              handle: 1,
              expr: [{ mangle: { key: { meta: { key: 'mark' } }, value } }],
            },
          },
        ],
      });
    assert.equal(findMarkClashes(rule(0x4000), 0x00f00000, own)[0]?.overlap, 0x00f00000);
    assert.equal(findMarkClashes(rule({ ct: { key: 'mark' } }), 0x00f00000, own)[0]?.overlap, 0x00f00000);
    assert.deepEqual(
      findMarkClashes(rule({ '|': [{ meta: { key: 'mark' } }, 0x4000] }), 0x00f00000, own),
      [],
    );
  });
});
