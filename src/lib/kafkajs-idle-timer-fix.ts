// Fixes a busy timer in kafkajs 2.2.4; import this module once (for its effect) in every
// process that talks to Kafka through kafkajs. Effectful: patches kafkajs' RequestQueue class
// once per process. It owns nothing else.
//
// Why: after every response, RequestQueue.scheduleCheckPendingRequests arms a timer for
// `throttledUntil - Date.now()` ms even when no request is waiting. throttledUntil starts at -1,
// so the delay is about -1.8e12, which Node clamps to 1 ms. The timer's callback schedules the
// next one, so every open connection wakes the process about 1000 times a second until it is
// closed. Measured here: ~4,600 timers and ~140 ms of CPU in 5 s for one idle producer, which
// adds up on a 2-core machine running agents, projector and tests. Node 24 also prints a
// TimeoutNegativeWarning for it. The queue only needs that timer while requests wait (client-side
// throttling or the in-flight limit), and push() arms it again when one starts waiting.
import { createRequire } from 'node:module';

interface RequestQueue {
  pending: unknown[];
}
interface RequestQueuePrototype {
  scheduleCheckPendingRequests: (this: RequestQueue) => void;
  __kseipIdleTimerFix?: true;
}

const require = createRequire(import.meta.url);
const RequestQueue = require('kafkajs/src/network/requestQueue/index.js') as {
  prototype: RequestQueuePrototype;
};
const proto = RequestQueue.prototype;

if (typeof proto.scheduleCheckPendingRequests !== 'function') {
  // A kafkajs whose internals moved: fail loudly rather than run with the busy timer unnoticed.
  throw new Error(
    'kafkajs RequestQueue.scheduleCheckPendingRequests not found: revisit kafkajs-idle-timer-fix',
  );
}
if (proto.__kseipIdleTimerFix !== true) {
  const original = proto.scheduleCheckPendingRequests;
  proto.scheduleCheckPendingRequests = function scheduleCheckPendingRequests(this: RequestQueue) {
    if (this.pending.length === 0) return;
    original.call(this);
  };
  proto.__kseipIdleTimerFix = true;
}
