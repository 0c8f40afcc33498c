// The StaticEgressIP API against a real kube-apiserver (1.34, src/devenv/apiserver.ts): the CRDs
// install, the seed manifest applies unchanged, kubectl get/explain show what docs/api.md
// promises, every object of the invalid corpus (test/fixtures/crs/invalid/, each file naming the
// messages it must produce in `# expect:` lines) is refused with those messages, and every valid
// example is stored and then parses (src/watcher/parse.ts) into a payload.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { startApiServer, type ApiServer } from '../src/devenv/apiserver.ts';
import { repoRoot } from '../src/devenv/artifacts.ts';
import {
  parseClusterStaticEgressIP,
  parseStaticEgressIP,
  parseStaticEgressIPPool,
} from '../src/watcher/parse.ts';

const fixtures = path.join(repoRoot, 'test/fixtures/crs');

interface Fixture {
  file: string;
  text: string;
  kind: string;
  name: string;
  expects: string[];
}

function loadFixtures(dir: 'valid' | 'invalid'): Fixture[] {
  return readdirSync(path.join(fixtures, dir))
    .filter((f) => f.endsWith('.yaml'))
    .sort()
    .map((file) => {
      const text = readFileSync(path.join(fixtures, dir, file), 'utf8');
      return {
        file: `${dir}/${file}`,
        text,
        kind: /^kind: (\w+)$/m.exec(text)?.[1] ?? assert.fail(`${file} has no kind`),
        name: /name: ([\w-]+)/.exec(text)?.[1] ?? assert.fail(`${file} has no name`),
        expects: text
          .split('\n')
          .filter((l) => l.startsWith('# expect: '))
          .map((l) => l.slice('# expect: '.length)),
      };
    });
}

/** kubectl wraps explain text and may wrap errors: compare with runs of whitespace folded. */
const fold = (text: string): string => text.replace(/\s+/g, ' ');

void describe('StaticEgressIP CRDs on a real API server', () => {
  let kube: ApiServer;
  const kubectl = async (args: string[], stdin?: string): Promise<string> => {
    const r = await kube.kubectl(args, stdin);
    assert.equal(r.code, 0, `kubectl ${args.join(' ')} failed: ${r.stderr}`);
    return r.stdout;
  };

  void before(async () => {
    // No controllers: nothing here needs EndpointSlices or namespaces to be deleted.
    kube = await startApiServer({ waitForControllers: false });
    await kubectl(['apply', '-k', path.join(repoRoot, 'k8s/crds')]);
    const crds = ['staticegressips', 'clusterstaticegressips', 'staticegressippools'].map(
      (plural) => `crd/${plural}.staticegressips.nirmata.io`,
    );
    await kubectl(['wait', '--for=condition=Established', '--timeout=60s', ...crds]);
  });
  void after(async () => {
    await kube?.stop();
  });

  void it('installs all three CRDs from the kustomization', async () => {
    const names = await kubectl(['get', 'crd', '-o', 'name']);
    assert.deepEqual(names.trim().split('\n').sort(), [
      'customresourcedefinition.apiextensions.k8s.io/clusterstaticegressips.staticegressips.nirmata.io',
      'customresourcedefinition.apiextensions.k8s.io/staticegressippools.staticegressips.nirmata.io',
      'customresourcedefinition.apiextensions.k8s.io/staticegressips.staticegressips.nirmata.io',
    ]);
  });

  void it('applies the seed manifest unchanged, defaults gateways, and prints the columns', async () => {
    const seed = `apiVersion: staticegressips.nirmata.io/v1alpha1
kind: StaticEgressIP
metadata: {name: eip, namespace: default}
spec:
  rules:
  - egressip: 100.137.146.100
    service-name: frontend
    cidr: 4.2.2.2/32
`;
    assert.match(
      await kubectl(['apply', '-f', '-'], seed),
      /staticegressip.staticegressips.nirmata.io\/eip created/,
    );
    const stored = JSON.parse(await kubectl(['get', 'seip', 'eip', '-n', 'default', '-o', 'json'])) as {
      spec: { rules: Array<Record<string, unknown>> };
    };
    assert.deepEqual(stored.spec.rules, [
      { egressip: '100.137.146.100', 'service-name': 'frontend', cidr: '4.2.2.2/32', gateways: 1 },
    ]);
    const parsed = parseStaticEgressIP(stored);
    assert.equal(parsed._tag, 'Right', JSON.stringify(parsed));

    const table = await kubectl(['get', 'seip', '-n', 'default']);
    assert.match(table.split('\n')[0] ?? '', /^NAME\s+EGRESS IPS\s+ACTIVE GATEWAY\s+READY\s+AGE$/);
    assert.match(table, /^eip\s/m);

    // The status subresource carries the printer columns' values (the status writer fills them).
    await kubectl([
      'patch',
      'seip',
      'eip',
      '-n',
      'default',
      '--subresource=status',
      '--type=merge',
      '-p',
      JSON.stringify({
        status: {
          observedGeneration: 1,
          egressIPs: '100.137.146.100',
          activeGateways: 'node-a',
          rules: [
            { egressip: '100.137.146.100', activeGateway: 'node-a', standbyGateways: [], selectedPods: 2 },
          ],
          conditions: [
            {
              type: 'Ready',
              status: 'True',
              reason: 'Programmed',
              message: 'traffic leaves with the egress IPs',
              lastTransitionTime: '2026-01-01T00:00:00Z',
              observedGeneration: 1,
            },
          ],
        },
      }),
    ]);
    assert.match(
      await kubectl(['get', 'seip', 'eip', '-n', 'default']),
      /^eip\s+100\.137\.146\.100\s+node-a\s+True\s/m,
    );
  });

  void it('documents the fields in kubectl explain', async () => {
    const rules = fold(await kubectl(['explain', 'staticegressip.spec.rules']));
    for (const expected of [
      'egressip <string> -required- The source IP that the selected traffic leaves the cluster with',
      'service-name <string> Selects the pods behind the Service of this name',
      "podSelector <Object> Selects pods by label in the policy's own namespace",
      "cidr <string> One destination CIDR (the original project's field, kept for compatibility)",
      'destinations <[]string> Destination CIDRs (1 to 32)',
      'exceptions <[]string> CIDRs (up to 32) inside the destinations',
      'gatewaySelector <Object> Which nodes may hold egressip',
      'gateways <integer> How many nodes take part for this egress IP: one active holder plus gateways-1 hot standbys',
    ])
      assert.ok(
        rules.includes(expected),
        `explain staticegressip.spec.rules lacks ${JSON.stringify(expected)}:\n${rules}`,
      );
    assert.match(
      fold(await kubectl(['explain', 'staticegressip.spec.rules.egressip'])),
      /used only when a StaticEgressIPPool covers it and admits the namespace/,
    );
    assert.match(
      fold(await kubectl(['explain', 'staticegressip.status.conditions'])),
      /Accepted .* PodsSelected .* Assigned .* Programmed .* Conflict .* Ready/,
    );
    assert.match(
      fold(await kubectl(['explain', 'clusterstaticegressip.spec'])),
      /namespaceSelector <Object> -required- Which namespaces the rules apply to/,
    );
    const pool = fold(await kubectl(['explain', 'staticegressippool.spec']));
    assert.match(pool, /addresses <\[\]string> -required- The addresses of the pool/);
    assert.match(
      pool,
      /namespaceSelector <Object> Which namespaces may use egress IPs of this pool, by namespace label\. Absent or empty \(\{\}\): every namespace/,
    );
    assert.match(pool, /nodeSelector <Object> Which nodes may hold egress IPs of this pool/);
    assert.match(fold(await kubectl(['explain', 'staticegressippool'])), /default deny/);
  });

  const invalid = loadFixtures('invalid');

  void it('has an invalid corpus of at least 20 objects across the three kinds', () => {
    assert.ok(invalid.length >= 20, `only ${invalid.length}`);
    assert.deepEqual([...new Set(invalid.map((f) => f.kind))].sort(), [
      'ClusterStaticEgressIP',
      'StaticEgressIP',
      'StaticEgressIPPool',
    ]);
    for (const f of invalid) assert.ok(f.expects.length > 0, `${f.file} names no expected message`);
  });

  for (const f of invalid) {
    void it(`refuses ${f.file} with the message that says what to fix`, async () => {
      const r = await kube.kubectl(['create', '-f', '-'], f.text);
      assert.notEqual(r.code, 0, `${f.file} was accepted: ${r.stdout}`);
      const said = fold(r.stderr);
      for (const expected of f.expects)
        assert.ok(
          said.includes(expected),
          `${f.file}: expected ${JSON.stringify(expected)} in:\n${r.stderr}`,
        );
    });
  }

  const valid = loadFixtures('valid').filter((f) => f.file !== 'valid/seed.yaml');

  for (const f of valid) {
    void it(`stores ${f.file}, which then parses`, async () => {
      await kubectl(['create', '-f', '-'], f.text);
      const namespace = f.kind === 'StaticEgressIP' ? ['-n', 'default'] : [];
      const stored = JSON.parse(
        await kubectl(['get', f.kind, f.name, ...namespace, '-o', 'json']),
      ) as unknown;
      const parsed =
        f.kind === 'StaticEgressIP'
          ? parseStaticEgressIP(stored)
          : f.kind === 'ClusterStaticEgressIP'
            ? parseClusterStaticEgressIP(stored)
            : parseStaticEgressIPPool(stored);
      assert.equal(parsed._tag, 'Right', JSON.stringify(parsed));
    });
  }

  void it('stored nothing of the invalid corpus', async () => {
    const names = await kubectl([
      'get',
      'seip,cseip,seippool',
      '-A',
      '-o',
      'jsonpath={.items[*].metadata.name}',
    ]);
    const stored = names.split(' ').filter(Boolean).sort();
    assert.deepEqual(stored, ['eip', ...valid.map((f) => f.name)].sort());
  });
});
