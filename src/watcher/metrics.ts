// The watcher's Prometheus metrics, registered once per process in prom-client's default registry
// (served by src/lib/health.ts). Effectful only in that it registers collectors at import.
import { Counter, Gauge, Histogram } from 'prom-client';

export const eventsPublished = new Counter({
  name: 'kseip_watcher_events_published_total',
  help: 'Cluster events acknowledged by Kafka, by event type',
  labelNames: ['type'] as const,
});

export const publishLatency = new Histogram({
  name: 'kseip_watcher_publish_latency_seconds',
  help: 'From a watch event reaching the watcher to Kafka acknowledging its cluster event',
  buckets: [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
});

export const bufferDepth = new Gauge({
  name: 'kseip_watcher_buffer_depth',
  help: 'Cluster events waiting for a Kafka acknowledgement (bounded by --buffer-capacity)',
});

export const oldestUnackedSeconds = new Gauge({
  name: 'kseip_watcher_oldest_unacked_seconds',
  help: 'Age of the oldest buffered event not yet acknowledged by Kafka (0 when the buffer is empty)',
});

export const backpressureActive = new Gauge({
  name: 'kseip_watcher_backpressure',
  help: '1 while the buffer is full and the informers are paused, else 0',
});

export const publishFailures = new Counter({
  name: 'kseip_watcher_publish_errors_total',
  help: 'Kafka send attempts that failed (the batch stays buffered and is retried)',
});

export const eventsDiscarded = new Counter({
  name: 'kseip_watcher_events_discarded_total',
  help: 'Buffered events not sent because leadership ended; the next leader relists everything',
});

export const informerRestarts = new Counter({
  name: 'kseip_watcher_informer_restarts_total',
  help: 'Relists after the first list, by kind and reason (error, expired, watchdog-silent, watchdog-stale)',
  labelNames: ['kind', 'reason'] as const,
});

export const watchPauses = new Counter({
  name: 'kseip_watcher_watch_pauses_total',
  help: 'Watches closed because the event buffer was full (resumed later from the same resourceVersion)',
  labelNames: ['kind'] as const,
});

export const changesSkipped = new Counter({
  name: 'kseip_watcher_changes_skipped_total',
  help: 'Watch events not published because nothing projections read changed, by kind',
  labelNames: ['kind'] as const,
});

export const parseFailures = new Counter({
  name: 'kseip_watcher_parse_errors_total',
  help: 'Kubernetes objects that could not be parsed into an event payload, by kind',
  labelNames: ['kind'] as const,
});

export const isLeader = new Gauge({
  name: 'kseip_watcher_leader',
  help: '1 while this replica holds the lease and publishes, else 0',
});
