// IP/CIDR text with Go netip semantics (what the CRDs' CEL accepts), given text → then these values.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import ipaddr from 'ipaddr.js';
import {
  cidrContainsCIDR,
  classifyIP,
  formatCIDR,
  formatIP,
  hasHostBits,
  isCanonicalIP,
  parseCIDR,
  parseIP,
  type Address,
} from './net.ts';

const ip = (text: string): Address => {
  const a = parseIP(text);
  assert.ok(a, `${text} should parse`);
  return a;
};

void describe('parseIP', () => {
  void it('accepts what netip accepts', () => {
    for (const text of [
      '0.0.0.0',
      '198.51.100.10',
      '255.255.255.255',
      '::',
      '::1',
      '2001:db8::10',
      '2001:DB8::10',
      '1:2:3:4:5:6:7::',
      '::1.2.3.4',
      '1:2:3:4:5:6:1.2.3.4',
    ])
      assert.ok(parseIP(text), text);
  });
  void it('refuses leading zeros, short forms, zones, IPv4-mapped IPv6 and prefixes', () => {
    for (const text of [
      '010.1.1.1',
      '1.2.3',
      '1.2.3.256',
      '0x7f.0.0.1',
      'fe80::1%eth0',
      '::ffff:1.2.3.4',
      '1::2::3',
      '1:2:3:4::5:6:7:8',
      '1:2:3:4:5:6:7:8:9',
      '1.2.3.4::',
      '198.51.100.10/32',
      '',
      ' 1.2.3.4',
      '[::1]',
    ])
      assert.equal(parseIP(text), undefined, text);
  });
  void it('formats IPv6 as RFC 5952 like netip: longest zero run (first on a tie), never a single group', () => {
    assert.equal(formatIP(ip('2001:DB8:0:0:1:0:0:1')), '2001:db8::1:0:0:1');
    assert.equal(formatIP(ip('2001:db8:0:1:1:1:1:1')), '2001:db8:0:1:1:1:1:1');
    assert.equal(formatIP(ip('0:0:0:0:0:0:0:0')), '::');
    assert.equal(formatIP(ip('::1.2.3.4')), '::102:304');
    assert.ok(isCanonicalIP('2001:db8::10'));
    assert.ok(!isCanonicalIP('2001:db8:0::10'));
  });
  void it('agrees with ipaddr.js on the canonical text of any IPv6 address', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 0xffff }), { minLength: 8, maxLength: 8 }), (groups) => {
        const expected = ipaddr.IPv6.parse(groups.map((g) => g.toString(16)).join(':')).toRFC5952String();
        const parsed = parseIP(expected);
        if (parsed === undefined) return groups.slice(0, 6).join() === '0,0,0,0,0,65535'; // IPv4-mapped
        return formatIP(parsed) === expected && isCanonicalIP(expected);
      }),
    );
  });
});

void describe('parseCIDR', () => {
  void it('parses, keeps host bits for hasHostBits to see, and masks in formatCIDR', () => {
    const c = parseCIDR('203.0.113.7/24');
    assert.ok(c && hasHostBits(c));
    assert.equal(formatCIDR(c), '203.0.113.0/24');
    assert.ok(!hasHostBits(parseCIDR('::/0') ?? assert.fail()));
    for (const text of [
      '203.0.113.0/33',
      '203.0.113.0',
      '203.0.113.0/024',
      '2001:db8::/129',
      '2001:db8::%1/64',
      '/24',
    ])
      assert.equal(parseCIDR(text), undefined, text);
  });
  void it('containsCIDR as CEL: same family, inside, at least as long', () => {
    const c = (t: string) => parseCIDR(t) ?? assert.fail(t);
    assert.ok(cidrContainsCIDR(c('203.0.113.0/24'), c('203.0.113.128/25')));
    assert.ok(cidrContainsCIDR(c('203.0.113.0/24'), c('203.0.113.0/24')));
    assert.ok(!cidrContainsCIDR(c('203.0.113.0/25'), c('203.0.113.0/24')));
    assert.ok(!cidrContainsCIDR(c('203.0.113.0/25'), c('203.0.113.128/26')));
    assert.ok(!cidrContainsCIDR(c('0.0.0.0/0'), c('::/0')));
  });
});

void describe('classifyIP (netip IsGlobalUnicast)', () => {
  void it('names what cannot be an egress IP and lets private ranges through', () => {
    const cases: Array<[string, string]> = [
      ['0.0.0.0', 'unspecified'],
      ['127.0.0.1', 'loopback'],
      ['169.254.1.1', 'link-local'],
      ['224.0.0.5', 'multicast'],
      ['239.255.255.255', 'multicast'],
      ['255.255.255.255', 'broadcast'],
      ['10.0.0.1', 'unicast'],
      ['100.137.146.100', 'unicast'],
      ['::', 'unspecified'],
      ['::1', 'loopback'],
      ['fe80::1', 'link-local'],
      ['febf::1', 'link-local'],
      ['fec0::1', 'unicast'],
      ['ff02::1', 'multicast'],
      ['fd00::1', 'unicast'],
    ];
    for (const [text, expected] of cases) assert.equal(classifyIP(ip(text)), expected, text);
  });
});
