// The CLI's Kafka connection settings: flags win over the environment, the environment is the
// components' own (same variables, same secret files), and from the cluster it is kseip-config
// plus the kseip-kafka Secret mapped as the Deployments map it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ReadOptionalFile } from '../../lib/kafka-security.ts';
import { argvOfOptions, clusterEnvironment, computeConnection } from './connection.ts';

const noFiles: ReadOptionalFile = () => undefined;
const b64 = (s: string): string => Buffer.from(s).toString('base64');

void test('given nothing, then the local default broker in plaintext', () => {
  const c = computeConnection({}, {}, noFiles, 'test');
  assert.deepEqual(c, {
    _tag: 'Right',
    right: { brokers: ['127.0.0.1:9092'], security: {}, origin: 'test' },
  });
});

void test('given commander options, then they become the components’ flags (booleans without false)', () => {
  assert.deepEqual(
    argvOfOptions({ brokers: 'k:9093', kafkaTls: true, kafkaSaslUsername: 'u', kubeconfig: '/x', other: 1 }),
    ['--brokers', 'k:9093', '--kafka-tls', 'true', '--kafka-sasl-username', 'u'],
  );
  assert.deepEqual(argvOfOptions({ kafkaTls: false }), []);
});

void test('given env and flags, then flags win and the password comes from the secret dir only', () => {
  const env = {
    KSEIP_BROKERS: 'env:9092',
    KSEIP_KAFKA_SASL_MECHANISM: 'scram-sha-512',
    KSEIP_KAFKA_SASL_USERNAME: 'env-user',
    KSEIP_KAFKA_SECRET_DIR: '/s',
  };
  const read: ReadOptionalFile = (f) => ({ '/s/sasl-password': 'pw\n', '/s/ca.crt': 'CA' })[f];
  const c = computeConnection({ brokers: 'flag:9093', kafkaSaslUsername: 'flag-user' }, env, read, 'o');
  assert.deepEqual(c, {
    _tag: 'Right',
    right: {
      brokers: ['flag:9093'],
      security: {
        ssl: { ca: 'CA' },
        sasl: { mechanism: 'scram-sha-512', username: 'flag-user', password: 'pw' },
      },
      origin: 'o',
    },
  });
});

void test('given bad values, then every problem is named with its flag and variable', () => {
  const c = computeConnection(
    { brokers: 'nohostport' },
    { KSEIP_KAFKA_SASL_MECHANISM: 'scram-sha-1' },
    noFiles,
    'o',
  );
  assert.equal(c._tag, 'Left');
  const problems = (c as { left: readonly string[] }).left.join('\n');
  assert.match(problems, /--brokers \(env KSEIP_BROKERS\): expected a comma-separated list of host:port/);
  assert.match(
    problems,
    /--kafka-sasl-mechanism \(env KSEIP_KAFKA_SASL_MECHANISM\): expected plain, scram-sha-256/,
  );
});

void test('given the cluster’s ConfigMap and Secret, then brokers, TLS and SCRAM come from them, in memory', () => {
  const { env, read } = clusterEnvironment(
    {
      namespace: 'kseip',
      configMap: { KSEIP_BROKERS: 'kafka.kafka.svc:9093', KSEIP_KAFKA_SECRET_DIR: '/etc/kseip/kafka' },
      secret: {
        'sasl-mechanism': b64('scram-sha-256'),
        'sasl-username': b64('kseip'),
        'sasl-password': b64('s3cret\n'),
        'ca.crt': b64('CA PEM'),
      },
    },
    () => assert.fail('no local file is read'),
  );
  assert.equal(env.KSEIP_KAFKA_SASL_MECHANISM, 'scram-sha-256');
  assert.equal(env.KSEIP_KAFKA_SECRET_DIR, 'Secret kseip/kseip-kafka');
  assert.equal(Object.values(env).includes('s3cret\n'), false, 'the password is never an environment value');
  assert.deepEqual(computeConnection({}, env, read, 'cluster'), {
    _tag: 'Right',
    right: {
      brokers: ['kafka.kafka.svc:9093'],
      security: {
        ssl: { ca: 'CA PEM' },
        sasl: { mechanism: 'scram-sha-256', username: 'kseip', password: 's3cret' },
      },
      origin: 'cluster',
    },
  });
});

void test('given the cluster without the Secret, then plaintext; a local --kafka-secret-dir still reads local files', () => {
  const local: ReadOptionalFile = (f) => (f === '/local/ca.crt' ? 'LOCAL CA' : undefined);
  const { env, read } = clusterEnvironment(
    { namespace: 'n', configMap: { KSEIP_BROKERS: 'k:1' }, secret: undefined },
    local,
  );
  assert.deepEqual(computeConnection({}, env, read, 'c'), {
    _tag: 'Right',
    right: { brokers: ['k:1'], security: {}, origin: 'c' },
  });
  assert.deepEqual(computeConnection({ kafkaSecretDir: '/local' }, env, read, 'c'), {
    _tag: 'Right',
    right: { brokers: ['k:1'], security: { ssl: { ca: 'LOCAL CA' } }, origin: 'c' },
  });
});

void test('given the Secret names SASL but lacks the password, then the message names the Secret', () => {
  const { env, read } = clusterEnvironment(
    { namespace: 'n', configMap: {}, secret: { 'sasl-mechanism': b64('plain'), 'sasl-username': b64('u') } },
    noFiles,
  );
  const c = computeConnection({}, env, read, 'c');
  assert.equal(c._tag, 'Left');
  assert.match(
    (c as { left: readonly string[] }).left.join('\n'),
    /sasl-password in --kafka-secret-dir \(Secret n\/kseip-kafka\)/,
  );
});
