// The projector's Prometheus metrics, registered once per process in prom-client's default
// registry (served by src/lib/health.ts). Effectful only in that it registers collectors at import.
import { Counter, Gauge, Histogram } from 'prom-client';

export const eventsProcessed = new Counter({
  name: 'kseip_projector_events_total',
  help: 'Cluster events folded into the projection; phase=replay while rebuilding state after a start, live after',
  labelNames: ['phase'] as const,
});

export const outputsProduced = new Counter({
  name: 'kseip_projector_records_produced_total',
  help: 'Records committed to the output topics, by topic',
  labelNames: ['topic'] as const,
});

export const deadLetters = new Counter({
  name: 'kseip_projector_dead_letters_total',
  help: 'Cluster-events records that did not decode or that the projection refused (an inconsistent term), sent to the dead-letter topic',
});

export const lag = new Gauge({
  name: 'kseip_projector_lag_records',
  help: 'Cluster events written but not yet folded and committed (high watermark minus next offset)',
});

export const batchDuration = new Histogram({
  name: 'kseip_projector_batch_duration_seconds',
  help: 'One transaction: fold the events, produce decisions and node rules, commit with the offset',
  buckets: [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
});

export const transactionFailures = new Counter({
  name: 'kseip_projector_transaction_errors_total',
  help: 'Transactions aborted (retried with the same outputs; the process exits after too many)',
});

export const replaySeconds = new Gauge({
  name: 'kseip_projector_replay_seconds',
  help: 'Duration of the last start-up replay of cluster-events up to the committed offset',
});

export const committedOffset = new Gauge({
  name: 'kseip_projector_committed_offset',
  help: 'The next cluster-events offset to process, as last committed with the outputs',
});
