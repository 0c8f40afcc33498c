// The newest term a component has written to its topic: the floor below which its next term must
// never fall. Effectful: reads the topic's tail (src/lib/read-topic.ts).
//
// Why: a term is the Lease's spec.leaseTransitions, and readers fence a component's events of any
// term older than the newest in the log (src/projection/cluster-view.ts). The Lease lives in the
// install namespace, the log in Kafka. Uninstalling (the namespace and its Lease deleted) and
// installing again, or deleting the Lease by hand, starts the count again at 0 while the log still
// holds term 3: every event of the new leader would be fenced, silently and forever. So a leader
// takes a term above both the Lease's count and this floor.
//
// Only the tail is read: a component's newest term is among its last records (every event carries
// it). The window grows until it holds a record of the component or covers the whole topic.
import { isRight } from 'fp-ts/lib/Either.js';
import type { Kafka } from 'kafkajs';
import { decodeClusterEvent } from '../contracts/cluster-events.ts';
import type { Logger } from './log.ts';
import { readTopic } from './read-topic.ts';

export interface TermFloorOptions {
  kafka: Kafka;
  /** A topic of cluster events (src/contracts/cluster-events.ts). */
  topic: string;
  /** producer.component of the events that count. */
  component: string;
  /** Records read first from the end of each partition; doubled until one counts. Default 2000. */
  window?: number;
  log: Logger;
}

/** The highest producer.term of `component` in the topic's tail; -1 when it wrote nothing (or no topic). */
export async function readTermFloor(opts: TermFloorOptions): Promise<number> {
  const admin = opts.kafka.admin();
  await admin.connect();
  let total: bigint;
  try {
    if (!(await admin.listTopics()).includes(opts.topic)) return -1;
    total = (await admin.fetchTopicOffsets(opts.topic)).reduce(
      (sum, o) => sum + BigInt(o.high) - BigInt(o.low),
      0n,
    );
  } finally {
    await admin.disconnect();
  }
  for (let window = opts.window ?? 2000; ; window *= 2) {
    let floor = -1;
    await readTopic({
      kafka: opts.kafka,
      topic: opts.topic,
      start: { kind: 'last', count: window },
      follow: false,
      onRecord: (r) => {
        const decoded = decodeClusterEvent(r.value);
        // An undecodable record carries no term anyone folds (the projector dead-letters it).
        if (!isRight(decoded)) return;
        const { producer } = decoded.right;
        if (producer.component === opts.component && producer.term > floor) floor = producer.term;
      },
    });
    if (floor >= 0 || BigInt(window) >= total) {
      opts.log.info({ topic: opts.topic, component: opts.component, floor, window }, 'term floor read');
      return floor;
    }
  }
}
