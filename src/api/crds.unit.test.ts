// The CRD manifests: the committed k8s/crds/ files are what src/api/crds.ts renders, and every
// field is documented (kubectl explain) and bounded (the CEL cost estimate needs the bounds).
// Whether the API server accepts them and enforces the rules is test/crds.int.test.ts's job.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { GROUP, VERSION, renderCrdFiles, renderCrdObjects } from './crds.ts';

const crdDir = path.resolve(import.meta.dirname, '../../k8s/crds');

type Schema = Record<string, unknown>;

/** Every schema node below the root, with its JSON path. */
function* walk(schema: Schema, at: string): Generator<[string, Schema]> {
  yield [at, schema];
  for (const [name, child] of Object.entries((schema.properties ?? {}) as Record<string, Schema>))
    yield* walk(child, `${at}.${name}`);
  if (schema.items) yield* walk(schema.items as Schema, `${at}[]`);
  if (typeof schema.additionalProperties === 'object')
    yield* walk(schema.additionalProperties as Schema, `${at}{}`);
}

function rootSchema(object: Schema): Schema {
  const spec = object.spec as { versions: Array<{ schema: { openAPIV3Schema: Schema } }> };
  return spec.versions[0]?.schema.openAPIV3Schema as Schema;
}

void describe('k8s/crds', () => {
  void it('holds exactly what src/api/crds.ts renders (run `node src/api/write-crds.ts` after editing it)', () => {
    for (const { file, text } of renderCrdFiles()) {
      assert.equal(readFileSync(path.join(crdDir, file), 'utf8'), text, `k8s/crds/${file} is stale`);
    }
  });

  void it('serves the three kinds in one group and version, with status and short names', () => {
    const kinds = renderCrdObjects().map(({ object }) => {
      const spec = object.spec as {
        group: string;
        scope: string;
        names: { kind: string; shortNames: string[] };
        versions: Array<{ name: string; served: boolean; storage: boolean; subresources: Schema }>;
      };
      assert.equal(spec.group, GROUP);
      assert.deepEqual(
        spec.versions.map((v) => [v.name, v.served, v.storage, 'status' in v.subresources]),
        [[VERSION, true, true, true]],
      );
      return [spec.names.kind, spec.scope, spec.names.shortNames];
    });
    assert.deepEqual(kinds, [
      ['StaticEgressIP', 'Namespaced', ['seip']],
      ['ClusterStaticEgressIP', 'Cluster', ['cseip']],
      ['StaticEgressIPPool', 'Cluster', ['seippool']],
    ]);
  });

  void it('documents every field, and bounds every string and list', () => {
    for (const { file, object } of renderCrdObjects()) {
      for (const [at, node] of walk(rootSchema(object), file)) {
        if (at === `${file}.metadata`) continue; // the API server documents ObjectMeta itself
        assert.ok(
          typeof node.description === 'string' && node.description.length > 10,
          `${at} has no description`,
        );
        const bounded = node.type !== 'array' || 'maxItems' in node;
        assert.ok(bounded, `${at} is a list without maxItems`);
        const stringBounded =
          node.type !== 'string' ||
          'maxLength' in node ||
          'enum' in node ||
          node.format === 'date-time' ||
          !at.includes('.spec');
        assert.ok(stringBounded, `${at} is a string without maxLength`);
      }
    }
  });

  void it('gives every CEL rule a message that says what to fix', () => {
    for (const { file, object } of renderCrdObjects()) {
      for (const [at, node] of walk(rootSchema(object), file)) {
        for (const v of (node['x-kubernetes-validations'] ?? []) as Array<{
          rule: string;
          message?: string;
        }>) {
          assert.ok((v.message ?? '').length > 20, `${at}: rule ${v.rule.slice(0, 60)} has no message`);
        }
      }
    }
  });
});
