// SCRAM users and ACLs on the dev/test broker (src/devenv/kafka.ts). Effectful: talks to the
// broker's plaintext listener, whose principal (ANONYMOUS) is the broker's super user there.
//
// Why a hand-written AlterUserScramCredentials request: kafkajs cannot write SCRAM credentials,
// and Kafka's own ConfigCommand is a JVM start per user (~2 s each on 2 cores, seven users per
// dev stack). The request is one round trip for every user; the salted password is computed here
// exactly as the broker's ScramFormatter does (PBKDF2-HMAC, RFC 5802 Hi()).
import { pbkdf2Sync, randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import path from 'node:path';
import kafkajs, { type AclEntry, type Kafka } from 'kafkajs';
import {
  KAFKA_PRINCIPAL_NAMES,
  KAFKA_PRINCIPALS,
  principalOf,
  type KafkaPrincipalName,
  type KafkaOperation,
  type KafkaPrincipal,
  type KafkaResource,
} from '../contracts/topic-access.ts';

export interface ScramUser {
  readonly username: string;
  readonly password: string;
  readonly mechanism: 'scram-sha-256' | 'scram-sha-512';
}

// kafkajs is CommonJS, and Node's ESM loader finds only some of its named exports; the enums
// come through the default export.
const { AclOperationTypes, AclPermissionTypes, AclResourceTypes, ResourcePatternTypes } = kafkajs;

const API_ALTER_USER_SCRAM_CREDENTIALS = 51;
const MECHANISM_CODE = { 'scram-sha-256': 1, 'scram-sha-512': 2 } as const;
const HASH = { 'scram-sha-256': ['sha256', 32], 'scram-sha-512': ['sha512', 64] } as const;
const ITERATIONS = 4096;

/** Creates or replaces the users' SCRAM credentials; rejects with the broker's error per user. */
export async function upsertScramUsers(bootstrap: string, users: readonly ScramUser[]): Promise<void> {
  if (users.length === 0) return;
  const body = Buffer.concat([
    uvarint(1), // no deletions (compact array of 0)
    uvarint(users.length + 1),
    ...users.map((u) => {
      const salt = randomBytes(32);
      const [digest, length] = HASH[u.mechanism];
      const salted = pbkdf2Sync(u.password.normalize('NFKC'), salt, ITERATIONS, length, digest);
      return Buffer.concat([
        compactBytes(Buffer.from(u.username, 'utf8')),
        Buffer.from([MECHANISM_CODE[u.mechanism]]),
        int32(ITERATIONS),
        compactBytes(salt),
        compactBytes(salted),
        uvarint(0),
      ]);
    }),
    uvarint(0),
  ]);
  const clientId = Buffer.from('kseip-devenv-scram', 'utf8');
  // Request header v2: api key, version 0, correlation id, client id (int16-length string), no tags.
  const header = Buffer.concat([
    int16(API_ALTER_USER_SCRAM_CREDENTIALS),
    int16(0),
    int32(1),
    int16(clientId.length),
    clientId,
    uvarint(0),
  ]);
  const response = await roundTrip(bootstrap, Buffer.concat([header, body]));
  // Response header v1: correlation id, tags; body: throttle ms, results[name, error code, message].
  const r = new Reader(response);
  r.int32();
  r.skipTags();
  r.int32();
  const problems: string[] = [];
  for (let n = r.uvarint() - 1; n > 0; n--) {
    const name = r.compactString();
    const code = r.int16();
    const message = r.compactString();
    r.skipTags();
    if (code !== 0) problems.push(`${name ?? '?'}: error ${code} ${message ?? ''}`.trim());
  }
  if (problems.length > 0) throw new Error(`AlterUserScramCredentials failed: ${problems.join('; ')}`);
}

function roundTrip(bootstrap: string, payload: Buffer): Promise<Buffer> {
  const [host, port] = [
    bootstrap.slice(0, bootstrap.lastIndexOf(':')),
    Number(bootstrap.slice(bootstrap.lastIndexOf(':') + 1)),
  ];
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port });
    let received = Buffer.alloc(0);
    socket.setTimeout(30_000, () => socket.destroy(new Error(`no answer from ${bootstrap} within 30 s`)));
    socket.once('error', reject);
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      if (received.length >= 4 && received.length >= 4 + received.readInt32BE(0)) {
        socket.end();
        resolve(received.subarray(4, 4 + received.readInt32BE(0)));
      }
    });
    socket.once('close', () => reject(new Error(`${bootstrap} closed the connection before answering`)));
    socket.write(Buffer.concat([int32(payload.length), payload]));
  });
}

const int16 = (n: number): Buffer => {
  const b = Buffer.alloc(2);
  b.writeInt16BE(n);
  return b;
};
const int32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
};
function uvarint(n: number): Buffer {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
  return Buffer.from(out);
}
const compactBytes = (b: Buffer): Buffer => Buffer.concat([uvarint(b.length + 1), b]);

class Reader {
  private at = 0;
  private readonly buf: Buffer;
  constructor(buf: Buffer) {
    this.buf = buf;
  }
  int16(): number {
    const v = this.buf.readInt16BE(this.at);
    this.at += 2;
    return v;
  }
  int32(): number {
    const v = this.buf.readInt32BE(this.at);
    this.at += 4;
    return v;
  }
  uvarint(): number {
    let v = 0;
    for (let shift = 0; ; shift += 7) {
      const byte = this.buf[this.at++]!;
      v |= (byte & 0x7f) << shift;
      if ((byte & 0x80) === 0) return v;
    }
  }
  compactString(): string | null {
    const n = this.uvarint() - 1;
    if (n < 0) return null;
    const s = this.buf.toString('utf8', this.at, this.at + n);
    this.at += n;
    return s;
  }
  skipTags(): void {
    for (let n = this.uvarint(); n > 0; n--) {
      this.uvarint();
      this.at += this.uvarint();
    }
  }
}

// ----- ACLs -------------------------------------------------------------------------------------

const OPERATION: Record<KafkaOperation, kafkajs.AclOperationTypes> = {
  Read: AclOperationTypes.READ,
  Write: AclOperationTypes.WRITE,
  Describe: AclOperationTypes.DESCRIBE,
  Create: AclOperationTypes.CREATE,
  IdempotentWrite: AclOperationTypes.IDEMPOTENT_WRITE,
};

function resourceOf(
  r: KafkaResource,
): Pick<AclEntry, 'resourceType' | 'resourceName' | 'resourcePatternType'> {
  if (r.type === 'cluster')
    return {
      resourceType: AclResourceTypes.CLUSTER,
      resourceName: 'kafka-cluster',
      resourcePatternType: ResourcePatternTypes.LITERAL,
    };
  return {
    resourceType:
      r.type === 'topic'
        ? AclResourceTypes.TOPIC
        : r.type === 'group'
          ? AclResourceTypes.GROUP
          : AclResourceTypes.TRANSACTIONAL_ID,
    resourceName: r.name,
    resourcePatternType:
      r.pattern === 'prefix' ? ResourcePatternTypes.PREFIXED : ResourcePatternTypes.LITERAL,
  };
}

/** The kafkajs ACL entries of the principals (src/contracts/topic-access.ts). */
export function aclEntries(
  principals: readonly KafkaPrincipal[] = Object.values(KAFKA_PRINCIPALS),
): AclEntry[] {
  return principals.flatMap((p) =>
    p.grants.flatMap((g) =>
      g.operations.map((op) => ({
        ...resourceOf(g.resource),
        principal: principalOf(p.user),
        host: '*',
        operation: OPERATION[op],
        permissionType: AclPermissionTypes.ALLOW,
      })),
    ),
  );
}

/** Creates the ACL entries through the Admin API (kafkajs createAcls, one request). */
export async function createAcls(kafka: Kafka, acl: readonly AclEntry[]): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    await admin.createAcls({ acl: [...acl] });
  } finally {
    await admin.disconnect();
  }
}

// ----- per-component credentials of the dev stack ------------------------------------------------

export interface ComponentCredentials {
  /** The SCRAM users to create on the broker (secureListener.users). */
  readonly users: readonly ScramUser[];
  /** The Kafka flags that make a component connect as `principal` (SASL user and secret dir). */
  readonly kafkaArgs: (principal: KafkaPrincipalName) => string[];
}

/**
 * A fresh password per principal, each in `<dir>/kafka-<principal>/sasl-password` (mode 0600), as
 * the Pods get theirs from the mounted Secret; the flags are the components' own (--help).
 */
export function componentCredentials(dir: string): ComponentCredentials {
  const mechanism = 'scram-sha-512' as const;
  const secretDir = (name: KafkaPrincipalName): string => path.join(dir, `kafka-${name}`);
  const users = KAFKA_PRINCIPAL_NAMES.map((name) => {
    const password = randomBytes(18).toString('base64url');
    mkdirSync(secretDir(name), { recursive: true, mode: 0o700 });
    writeFileSync(path.join(secretDir(name), 'sasl-password'), password, { mode: 0o600 });
    return { username: KAFKA_PRINCIPALS[name].user, password, mechanism };
  });
  return {
    users,
    kafkaArgs: (name) => [
      '--kafka-sasl-mechanism',
      mechanism,
      '--kafka-sasl-username',
      KAFKA_PRINCIPALS[name].user,
      '--kafka-secret-dir',
      secretDir(name),
    ],
  };
}
