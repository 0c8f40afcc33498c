// Kafka TLS/SASL options → kafkajs settings: plaintext by default, files from the secret dir only
// when present, and every inconsistent combination named (the caller exits with code 2).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfig } from './config.ts';
import { computeKafkaSecurity, kafkaSecuritySpec, type ReadOptionalFile } from './kafka-security.ts';

const files =
  (contents: Record<string, string>): ReadOptionalFile =>
  (file) =>
    contents[file];

function configOf(env: Record<string, string>) {
  const parsed = parseConfig(kafkaSecuritySpec, [], env);
  assert.equal(parsed._tag, 'Right', JSON.stringify(parsed));
  return (parsed as { right: Parameters<typeof computeKafkaSecurity>[0] }).right;
}

void test('given no options, then the client is plaintext without SASL', () => {
  assert.deepEqual(computeKafkaSecurity(configOf({}), files({})), { _tag: 'Right', right: {} });
});

void test('given a secret dir without files (the Secret is absent), then still plaintext', () => {
  const c = configOf({ KSEIP_KAFKA_SECRET_DIR: '/etc/kseip/kafka' });
  assert.deepEqual(computeKafkaSecurity(c, files({})), { _tag: 'Right', right: {} });
});

void test('given ca.crt, a client certificate and SCRAM, then TLS with those files and SASL', () => {
  const c = configOf({
    KSEIP_KAFKA_SECRET_DIR: '/s',
    KSEIP_KAFKA_SASL_MECHANISM: 'SCRAM-SHA-512',
    KSEIP_KAFKA_SASL_USERNAME: 'kseip',
  });
  const read = files({
    '/s/ca.crt': 'CA',
    '/s/tls.crt': 'CERT',
    '/s/tls.key': 'KEY',
    '/s/sasl-password': 'pw\n',
  });
  assert.deepEqual(computeKafkaSecurity(c, read), {
    _tag: 'Right',
    right: {
      ssl: { ca: 'CA', cert: 'CERT', key: 'KEY' },
      sasl: { mechanism: 'scram-sha-512', username: 'kseip', password: 'pw' },
    },
  });
});

void test('given --kafka-tls alone, then TLS with the system CAs', () => {
  assert.deepEqual(computeKafkaSecurity(configOf({ KSEIP_KAFKA_TLS: 'true' }), files({})), {
    _tag: 'Right',
    right: { ssl: true },
  });
});

void test('given inconsistent settings, then every problem is named', () => {
  const c = configOf({ KSEIP_KAFKA_SECRET_DIR: '/s', KSEIP_KAFKA_SASL_MECHANISM: 'plain' });
  const out = computeKafkaSecurity(c, files({ '/s/tls.crt': 'CERT' }));
  assert.equal(out._tag, 'Left');
  const problems = (out as { left: readonly string[] }).left.join('\n');
  assert.match(problems, /tls\.crt and tls\.key go together/);
  assert.match(problems, /--kafka-sasl-username .* is required/);
  assert.match(problems, /sasl-password/);
});

void test('given an unknown mechanism, then parsing names the accepted ones', () => {
  const parsed = parseConfig(kafkaSecuritySpec, ['--kafka-sasl-mechanism', 'gssapi'], {});
  assert.equal(parsed._tag, 'Left');
  assert.match(JSON.stringify(parsed), /plain, scram-sha-256 or scram-sha-512/);
});
