// Tells the agent, when SIGTERM comes, whether its own DaemonSet was deleted (an uninstall, so
// every dataplane object of ours must go) or is still there (a restart or rollout, so flows must
// survive and the dataplane stays). Effectful: holds one watch on one object.
//
// Why a watch held from the start rather than a GET at SIGTERM: `kubectl delete -k` deletes the
// ServiceAccount and the RBAC before the DaemonSet, so by the time the garbage collector stops
// the agent's pod, a new request would be refused (401/403) and could not tell an uninstall from
// an outage. An established watch is not re-authorised, so it still delivers the DaemonSet's
// deletion. If the watch is broken at that moment and cannot be re-established, the answer is
// "not deleted": leaving rules in place is the failure that never cuts traffic.
import { Watch, type KubeConfig } from '@kubernetes/client-node';
import { backoffDelay } from '../lib/backoff.ts';
import type { Logger } from '../lib/log.ts';

export interface OwnerWatch {
  /** True once the DaemonSet was seen deleted or marked for deletion. */
  deleted(): boolean;
  close(): void;
}

interface DaemonSetLike {
  metadata?: { name?: string; uid?: string; deletionTimestamp?: unknown };
}

/** `namespace/name` → its parts, or undefined when it is not of that form. */
export function parseOwnerRef(ref: string): { namespace: string; name: string } | undefined {
  const m = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?)\/([a-z0-9]([-a-z0-9.]*[a-z0-9])?)$/.exec(ref);
  return m === null ? undefined : { namespace: m[1]!, name: m[3]! };
}

/** Bounded backoff with jitter, so a DaemonSet of agents does not reconnect in lockstep. */
const retryDelayMs = (attempt: number): number => backoffDelay({ initialMs: 500, maxMs: 30_000 }, attempt);

const IDLE_LIMIT_MS = 5 * 60_000;

export function watchOwnerDaemonSet(
  kubeConfig: KubeConfig,
  owner: { namespace: string; name: string },
  log: Logger,
): OwnerWatch {
  let deleted = false;
  let closed = false;
  let abort: AbortController | undefined;
  let seenUid: string | undefined;
  const path = `/apis/apps/v1/namespaces/${owner.namespace}/daemonsets`;
  const watch = new Watch(kubeConfig);
  // client-node ends a watch that was idle for 30 s; a DaemonSet changes far less often, so the
  // watch would be re-made (re-authorised) every 30 s. Bookmarks (about one a minute) keep it
  // alive; the idle limit stays only to notice a dead connection. (The field is private in
  // client-node's types, and the only knob for that limit: set it anyway.)
  (watch as unknown as { requestTimeoutMs: number }).requestTimeoutMs = IDLE_LIMIT_MS;

  const onEvent = (type: string, obj: DaemonSetLike): void => {
    if (obj.metadata?.name !== owner.name) return;
    if (type === 'ADDED' || type === 'MODIFIED') {
      // A DaemonSet re-created under the same name is a new install, not ours being deleted.
      if (seenUid !== undefined && obj.metadata.uid !== seenUid) deleted = false;
      seenUid = obj.metadata.uid;
      if (obj.metadata.deletionTimestamp !== undefined && obj.metadata.deletionTimestamp !== null)
        deleted = true;
    }
    if (type === 'DELETED') {
      deleted = true;
      log.info({ daemonSet: `${owner.namespace}/${owner.name}` }, 'own DaemonSet deleted: uninstall on stop');
    }
  };

  const start = (attempt: number): void => {
    if (closed) return;
    watch
      .watch(
        path,
        { fieldSelector: `metadata.name=${owner.name}`, allowWatchBookmarks: true },
        onEvent,
        (err: unknown) => {
          if (closed) return;
          // The server's own timeout and the client's idle limit are ordinary ends: renewed at once.
          const idle = (err as { name?: string } | null)?.name === 'TimeoutError';
          const failed = err !== null && err !== undefined && !idle;
          if (failed) log.warn({ err, attempt }, 'own DaemonSet watch ended; re-establishing');
          else log.debug({ idle }, 'own DaemonSet watch ended; renewing');
          setTimeout(() => start(failed ? attempt + 1 : 0), failed ? retryDelayMs(attempt) : 0).unref();
        },
      )
      .then((a) => {
        abort = a;
      })
      .catch((err: unknown) => {
        log.warn({ err, attempt }, 'own DaemonSet watch could not start');
        setTimeout(() => start(attempt + 1), retryDelayMs(attempt)).unref();
      });
  };
  start(0);

  return {
    deleted: () => deleted,
    close() {
      closed = true;
      abort?.abort();
    },
  };
}
