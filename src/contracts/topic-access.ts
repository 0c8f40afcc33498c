// Who may do what in Kafka: one principal per component and the ACLs it gets, the one place this
// is decided. Derived from who produces and consumes which topic (docs/topics.md); each principal
// writes only its own topics and reads only what it needs. Used to generate
//   - the dev/test broker's SCRAM users and ACLs (src/devenv/kafka-access.ts),
//   - the Strimzi overlay's KafkaUsers (k8s/overlays/strimzi/users.yaml, src/contracts/write-kafka-users.ts),
//   - the table in docs/kafka.md (test/docs-kafka-access.unit.test.ts checks it).
// Pure data and pure renderers.
import { TOPICS } from './topics.ts';

export type KafkaOperation = 'Read' | 'Write' | 'Describe' | 'Create' | 'IdempotentWrite';

/** What an ACL is on. `prefix` matches every name that starts with `name` (random group ids). */
export type KafkaResource =
  | {
      readonly type: 'topic' | 'group' | 'transactionalId';
      readonly name: string;
      readonly pattern: 'literal' | 'prefix';
    }
  | { readonly type: 'cluster' };

export interface KafkaGrant {
  readonly resource: KafkaResource;
  readonly operations: readonly KafkaOperation[];
}

export type KafkaPrincipalName =
  'watcher' | 'projector' | 'liveness' | 'agent' | 'status-writer' | 'auditor' | 'topics';

export interface KafkaPrincipal {
  /** The SASL user name (and the Strimzi KafkaUser, whose Secret of the same name holds `password`). */
  readonly user: string;
  /** Who uses it, for docs. */
  readonly usedBy: string;
  readonly grants: readonly KafkaGrant[];
}

const topic = (name: string): KafkaResource => ({ type: 'topic', name, pattern: 'literal' });
const groupPrefix = (name: string): KafkaResource => ({ type: 'group', name, pattern: 'prefix' });
const CLUSTER: KafkaResource = { type: 'cluster' };

const read = (...topics: string[]): KafkaGrant[] =>
  topics.map((t) => ({ resource: topic(t), operations: ['Read', 'Describe'] }));
const write = (...topics: string[]): KafkaGrant[] =>
  topics.map((t) => ({ resource: topic(t), operations: ['Write', 'Describe'] }));
const create = (...topics: string[]): KafkaGrant[] =>
  topics.map((t) => ({ resource: topic(t), operations: ['Create'] }));
/** Idempotent producers (watcher, liveness, projector) initialise a producer id on the cluster. */
const idempotentWrite: KafkaGrant = { resource: CLUSTER, operations: ['IdempotentWrite'] };
/** src/lib/read-topic.ts (the CLI, and the term floors of watcher and liveness) joins kseip-cli-<uuid>. */
const readTopicGroups: KafkaGrant = { resource: groupPrefix('kseip-cli-'), operations: ['Read'] };

const ALL_TOPICS = Object.values(TOPICS);

export const KAFKA_PRINCIPALS: Readonly<Record<KafkaPrincipalName, KafkaPrincipal>> = {
  watcher: {
    user: 'kseip-watcher',
    usedBy: 'watcher: appends cluster events; reads their tail for its term floor',
    grants: [
      ...write(TOPICS.clusterEvents),
      ...read(TOPICS.clusterEvents),
      // --create-topic (on by default outside Strimzi)
      ...create(TOPICS.clusterEvents),
      readTopicGroups,
      idempotentWrite,
    ],
  },
  projector: {
    user: 'kseip-projector',
    usedBy: 'projector: folds cluster events into decisions and node rules, transactionally',
    grants: [
      ...read(TOPICS.clusterEvents),
      ...write(TOPICS.decisions, TOPICS.nodeRules, TOPICS.deadLetter),
      // It creates its own output topics, and the agents' two, when missing (not under Strimzi).
      ...create(TOPICS.decisions, TOPICS.nodeRules, TOPICS.deadLetter, TOPICS.heartbeats, TOPICS.nodeStatus),
      // kseip-projector commits its offsets inside the transaction; kseip-projector-fetch-<uuid> reads.
      { resource: groupPrefix('kseip-projector'), operations: ['Read', 'Describe'] },
      {
        resource: { type: 'transactionalId', name: 'kseip-projector', pattern: 'literal' },
        operations: ['Write', 'Describe'],
      },
      idempotentWrite,
    ],
  },
  liveness: {
    user: 'kseip-liveness',
    usedBy: 'liveness: reads heartbeats, appends NodeLost/NodeBack verdicts',
    grants: [
      ...read(TOPICS.heartbeats, TOPICS.clusterEvents),
      ...write(TOPICS.clusterEvents, TOPICS.deadLetter),
      { resource: groupPrefix('kseip-liveness-'), operations: ['Read'] },
      readTopicGroups,
      idempotentWrite,
    ],
  },
  agent: {
    user: 'kseip-agent',
    usedBy: 'agent (every node): reads node rules, writes heartbeats and apply status',
    grants: [
      ...read(TOPICS.nodeRules),
      ...write(TOPICS.heartbeats, TOPICS.nodeStatus, TOPICS.deadLetter),
      { resource: groupPrefix('kseip-agent-'), operations: ['Read'] },
    ],
  },
  'status-writer': {
    user: 'kseip-status-writer',
    usedBy: 'status writer: reads decisions, node rules and apply status into the API status',
    grants: [
      ...read(TOPICS.decisions, TOPICS.nodeRules, TOPICS.nodeStatus),
      ...write(TOPICS.deadLetter),
      { resource: groupPrefix('kseip-status-writer-'), operations: ['Read'] },
    ],
  },
  auditor: {
    user: 'kseip-auditor',
    usedBy: 'kseip CLI (audit, explain, export, events): reads every topic, writes none',
    grants: [...read(...ALL_TOPICS), readTopicGroups],
  },
  topics: {
    user: 'kseip-topics',
    usedBy: 'kseip-topics job: creates the missing topics, nothing else',
    grants: [
      ...create(...ALL_TOPICS),
      ...ALL_TOPICS.map((t) => ({ resource: topic(t), operations: ['Describe'] as const })),
    ],
  },
};

export const KAFKA_PRINCIPAL_NAMES = Object.keys(KAFKA_PRINCIPALS) as KafkaPrincipalName[];

/** The principal string Kafka's authorizer matches for a SASL user. */
export const principalOf = (user: string): string => `User:${user}`;

// ----- renderers ----------------------------------------------------------------------------

export interface StrimziKafkaUser {
  apiVersion: 'kafka.strimzi.io/v1beta2';
  kind: 'KafkaUser';
  metadata: { name: string; namespace: string; labels: Record<string, string> };
  spec: {
    authentication: { type: 'scram-sha-512' };
    authorization: {
      type: 'simple';
      acls: {
        resource: { type: string; name?: string; patternType?: 'literal' | 'prefix' };
        operations: KafkaOperation[];
        host: '*';
      }[];
    };
  };
}

/** One Strimzi KafkaUser per principal; Strimzi creates the Secret <user> with key `password`. */
export function strimziKafkaUsers(namespace: string, cluster: string): StrimziKafkaUser[] {
  return KAFKA_PRINCIPAL_NAMES.map((name) => {
    const p = KAFKA_PRINCIPALS[name];
    return {
      apiVersion: 'kafka.strimzi.io/v1beta2',
      kind: 'KafkaUser',
      metadata: { name: p.user, namespace, labels: { 'strimzi.io/cluster': cluster } },
      spec: {
        authentication: { type: 'scram-sha-512' },
        authorization: {
          type: 'simple',
          acls: p.grants.map((g) => ({
            resource:
              g.resource.type === 'cluster'
                ? { type: 'cluster' }
                : { type: g.resource.type, name: g.resource.name, patternType: g.resource.pattern },
            operations: [...g.operations],
            host: '*',
          })),
        },
      },
    };
  });
}

/**
 * The Markdown table of docs/kafka.md: a row per principal, a column per topic (its operations
 * there), then its consumer groups (all prefixes) and what else it may do.
 */
export function renderAccessTable(): string {
  const topics = Object.values(TOPICS);
  const short = (t: string): string => t.replace(/^kseip\./, '').replace(/\.v\d+$/, '');
  const rows = KAFKA_PRINCIPAL_NAMES.map((name) => {
    const p = KAFKA_PRINCIPALS[name];
    const opsOn = (match: (r: KafkaResource) => boolean): string[] => [
      ...new Set(p.grants.filter((g) => match(g.resource)).flatMap((g) => g.operations)),
    ];
    const cells = topics.map((t) =>
      opsOn((r) => r.type === 'topic' && r.name === t)
        .filter((op) => op !== 'Describe')
        .join(', '),
    );
    const groups = p.grants.flatMap((g) =>
      g.resource.type === 'group'
        ? [`\`${g.resource.name}\`${g.resource.pattern === 'prefix' ? '…' : ''}`]
        : [],
    );
    const other = p.grants.flatMap((g) =>
      g.resource.type === 'transactionalId'
        ? [`transactional id \`${g.resource.name}\``]
        : g.resource.type === 'cluster'
          ? g.operations.map((op) => `${op} (cluster)`)
          : [],
    );
    return `| \`${p.user}\` | ${[...cells, groups.join(', '), other.join(', '), p.usedBy].join(' | ')} |`;
  });
  const header = ['Principal', ...topics.map(short), 'groups (Read)', 'also', 'used by'];
  return [`| ${header.join(' | ')} |`, `|${header.map(() => ' --- ').join('|')}|`, ...rows].join('\n');
}
