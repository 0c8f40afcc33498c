// The node agent's dataplane: renders a NodeRules into kernel state (one nftables table, VXLAN
// devices, routing tables/rules, neighbour/fdb entries, egress-IP addresses) and applies it
// idempotently, inside the given network namespace. Effectful; owns exactly the objects named
// by src/dataplane/kernel-state.ts and nothing else.
//
// Apply order (add before remove; traffic is never without a path):
//   1. ip batch: create missing devices (down), sysctl rp_filter=2 on them, then
//      ip batch: up/mtu/mac, neighbours, routes, rules, addresses; bridge batch: fdb entries
//   2. one `nft -f` transaction: sets, elements, chains (atomic)
//   3. ip batch: gateway tunnels come up / take the gateway MAC (only now: steered packets they
//      receive must meet their mark and SNAT rules, or they would leave with the node IP)
//   4. bridge/ip batch: remove what is no longer desired
//   5. gratuitous ARP for newly acquired egress IPs (in the background)
// Unchanged desired state writes nothing. One call is one attempt: the agent's apply loop
// (./apply-loop.ts) is the only caller, serialises every call and owns the one retry policy.
// After a failed attempt the kernel is no longer trusted, so the next apply re-reads it and
// rewrites every set and chain in one transaction (full resync).
import { writeFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import type { NodeRules } from '../contracts/node-rules.ts';
import type { UnprogrammableRule } from '../contracts/node-reports.ts';
import {
  addressLabel,
  computeKernelState,
  computeMarkLayout,
  DEFAULT_EGRESS_ADDRESS_LIFETIME_S,
  EMPTY_KERNEL_STATE,
  type DataplaneConfig,
  type DataplaneModelError,
  type KernelState,
  type SysctlSpec,
} from '../dataplane/kernel-state.ts';
import {
  computeIpPlan,
  isEmptyIpPlan,
  renderAddress,
  renderEgressLifetime,
  type IpPlan,
} from '../dataplane/ip-transaction.ts';
import { createKernelRunner, runChecked, type KernelRunner } from './kernel-exec.ts';
import { readKernelState, type KernelSnapshot, type Ownership } from './kernel-read.ts';
import { computeNftTransaction, renderNftTransaction, type NftOp } from '../dataplane/nft-transaction.ts';

export type { DataplaneConfig } from '../dataplane/kernel-state.ts';
export { DEFAULT_DATAPLANE_CONFIG } from '../dataplane/kernel-state.ts';

export interface ApplyResult {
  changed: boolean;
  durationMs: number;
  /** Rules of the desired state left out because this node cannot program them (the rest was
   *  applied); reported in the ack so the owning policy's status can say why. */
  unprogrammable: readonly UnprogrammableRule[];
}

export interface Dataplane {
  /** Full desired state; unchanged state writes nothing. */
  reconcile(desired: NodeRules): Promise<ApplyResult>;
  /** True if the kernel no longer matches the last applied state (then the caller reconciles). */
  checkDrift(): Promise<boolean>;
  /** Self-fencing: drop held egress IPs now. Reconcile again only once allowed to hold them. */
  withdrawEgressIPs(): Promise<void>;
  /** Leave nothing of ours behind. */
  removeAll(): Promise<void>;
  /** Resolves once every gratuitous ARP announcement started so far has finished. */
  settled(): Promise<void>;
  /**
   * Renews the lifetime of the held egress IPs of the last apply (or pins it with 'forever', at a
   * clean stop). Not serialised with applies: `address change` only touches an address that
   * exists, so it cannot undo a concurrent removal. An address found gone is drift.
   */
  renewEgressAddresses(lifetime?: 'forever'): Promise<void>;
  /** Kernel write commands run so far (ip/bridge batches, nft transactions, sysctl writes). */
  kernelWrites(): number;
}

/** The desired state could not be computed: retrying the same input cannot help. */
export class DataplaneModelFailure extends Error {
  readonly retriable = false;
  readonly detail: DataplaneModelError;
  constructor(detail: DataplaneModelError) {
    super(`${detail._tag}: ${detail.reason}`);
    this.name = 'DataplaneModelFailure';
    this.detail = detail;
  }
}

export interface DataplaneDeps {
  readonly runner?: KernelRunner;
  /** Gratuitous ARP: count and spacing. The kernel ignores neighbour updates within locktime
   *  (1 s) of the previous one, so a few announcements spread over a second are needed. */
  readonly garpCount?: number;
  readonly garpIntervalSec?: number;
}

/** Only a guess to compute with while the real value is being read (see converge). */
const DEFAULT_UPLINK_MTU = 1500;

/** States compare by rule ids, never by rule text (the kernel cannot give the text back). */
function comparable(state: KernelState): string {
  return JSON.stringify({
    ...state,
    nft:
      state.nft === undefined
        ? undefined
        : {
            sets: state.nft.sets,
            chains: state.nft.chains.map((c) => ({ ...c, rules: c.rules.map((r) => r.id) })),
          },
  });
}

export function createDataplane(cfg: DataplaneConfig, log: Logger, deps: DataplaneDeps = {}): Dataplane {
  const runner = deps.runner ?? createKernelRunner(cfg.netns);
  const garpCount = deps.garpCount ?? 3;
  const garpIntervalSec = deps.garpIntervalSec ?? 0.5;
  const layout = computeMarkLayout(cfg.markMask);
  const egressLifetimeS = cfg.egressAddressLifetimeS ?? DEFAULT_EGRESS_ADDRESS_LIFETIME_S;
  const label = addressLabel(cfg.uplink);
  if (layout._tag === 'Left') throw new DataplaneModelFailure(layout.left);
  if (label._tag === 'Left') throw new DataplaneModelFailure(label.left);
  const own: Ownership = {
    uplink: cfg.uplink,
    label: label.right,
    rulePriority: cfg.rulePriority,
    tableBase: cfg.tableBase,
    maxSlot: layout.right.maxSlot,
  };

  /** What we last wrote (or found to be true); undefined until the first apply. */
  let applied: { state: KernelState; uplinkMtu: number } | undefined;
  /**
   * Whether the kernel is known to equal `applied`. Not at first use, after a drift check found
   * a difference, or after a failed attempt: then the next apply reads the kernel and diffs
   * against what it holds instead of what we last wrote.
   */
  let trusted = false;
  /** A failed attempt may have left anything half-written: the next one rewrites every set and chain. */
  let resyncFully = false;
  /** The NodeRules (generation aside) that `applied` was computed from. */
  let appliedInput: string | undefined;
  /** What computing `applied` left out: the cheap path reports it again without recomputing. */
  let appliedUnprogrammable: readonly UnprogrammableRule[] = [];
  const announcements = new Set<Promise<void>>();
  /** The apply loop never overlaps calls; this only turns a wiring mistake into a clear error. */
  let busy = false;
  const exclusive = async <T>(fn: () => Promise<T>): Promise<T> => {
    if (busy) throw new Error('dataplane calls overlap: the apply loop must serialise them');
    busy = true;
    try {
      return await fn();
    } finally {
      busy = false;
    }
  };

  const read = (): Promise<KernelSnapshot> => readKernelState(runner, own);

  async function applyPlan(ip: IpPlan, nftOps: readonly NftOp[]): Promise<void> {
    const nftText = renderNftTransaction(nftOps);
    if (ip.createLinks.length > 0) await ipBatch(ip.createLinks);
    if (ip.sysctls.length > 0) await writeSysctls(ip.sysctls);
    // Independent of each other (both only need the links to exist); both precede the marking.
    await Promise.all([
      ip.adds.length > 0 ? ipBatch(ip.adds) : undefined,
      ip.fdbAdds.length > 0 ? bridgeBatch(ip.fdbAdds) : undefined,
    ]);
    if (nftText !== '') await runChecked(runner, 'nft', ['-f', '-'], { input: nftText, write: true });
    if (ip.activations.length > 0) await ipBatch(ip.activations);
    if (ip.fdbRemoves.length > 0) await bridgeBatch(ip.fdbRemoves);
    if (ip.removes.length > 0) await ipBatch(ip.removes);
  }

  /** On a real node the files are ours to write directly; in a namespace `sysctl` must enter it. */
  async function writeSysctls(specs: readonly SysctlSpec[]): Promise<void> {
    if (cfg.netns === undefined) {
      const root = cfg.procSysNet ?? '/proc/sys/net';
      await Promise.all(
        specs.map((s) => writeFile(`${root}/${s.key.replace(/^net\./, '').replace(/\./g, '/')}`, s.value)),
      );
      return;
    }
    await runChecked(runner, 'sysctl', ['-q', '-w', ...specs.map((s) => `${s.key}=${s.value}`)], {
      write: true,
    });
  }

  const ipBatch = (lines: readonly string[]): Promise<string> =>
    runChecked(runner, 'ip', ['-batch', '-'], { input: lines.join('\n') + '\n', write: true });
  const bridgeBatch = (lines: readonly string[]): Promise<string> =>
    runChecked(runner, 'bridge', ['-batch', '-'], { input: lines.join('\n') + '\n', write: true });

  function announce(ips: readonly string[]): void {
    for (const ip of ips) {
      // Unsolicited ARP replies with the egress IP as sender: an upstream neighbour entry for it
      // moves to our MAC. arping exits non-zero because nobody answers; that is normal.
      const args = [
        '-q',
        '-U',
        '-P',
        '-S',
        ip,
        '-i',
        cfg.uplink,
        '-c',
        String(garpCount),
        '-W',
        String(garpIntervalSec),
        ip,
      ];
      const p = runner
        .run('arping', args, { timeoutMs: 10_000 })
        .then((r) => {
          if (/permission|no such device|cannot|error/i.test(r.stderr)) {
            log.warn({ egressIP: ip, stderr: r.stderr.trim() }, 'gratuitous ARP failed');
          } else {
            log.debug({ egressIP: ip }, 'gratuitous ARP sent');
          }
        })
        .catch((err: unknown) => log.warn({ egressIP: ip, err }, 'gratuitous ARP failed'))
        .finally(() => announcements.delete(p));
      announcements.add(p);
    }
  }

  /**
   * One attempt to bring the kernel to `target`; returns whether it wrote anything. A failure
   * leaves the kernel untrusted (the next attempt re-reads it and resyncs fully) and is thrown to
   * the apply loop, which retries with its backoff.
   */
  async function converge(target: (uplinkMtu: number) => KernelState): Promise<boolean> {
    try {
      const reading = !trusted || applied === undefined ? read() : undefined;
      // Computed while the reads run (they are child processes, working in parallel with us);
      // recomputed only if the uplink MTU turns out to differ from the guess.
      const guessMtu = applied?.uplinkMtu ?? DEFAULT_UPLINK_MTU;
      let desired: KernelState;
      try {
        desired = target(guessMtu);
      } catch (err) {
        await reading?.catch(() => undefined);
        throw err;
      }
      const current: KernelSnapshot = reading
        ? await reading
        : { state: applied?.state ?? EMPTY_KERNEL_STATE, uplinkMtu: guessMtu };
      if (current.uplinkMtu !== guessMtu) desired = target(current.uplinkMtu);
      const plan = computeIpPlan(desired, current.state, egressLifetimeS);
      const nftOps = computeNftTransaction(desired.nft, current.state.nft, resyncFully);
      const changed = !isEmptyIpPlan(plan) || nftOps.length > 0;
      if (changed) await applyPlan(plan, nftOps);
      // Announced against the last state we know we applied, not the kernel just read: an
      // attempt that failed after adding an egress IP left it on the uplink, and the retry
      // that finishes the job must still announce it, or upstream keeps the old holder's MAC.
      // A process that has applied nothing yet knows nothing of upstream: an egress IP it
      // finds on the uplink may be a leftover of a previous process or of a node that was cut
      // off while another node held and announced the IP. So its first apply announces every
      // egress IP it holds (a gratuitous ARP for an entry already ours changes nothing).
      const heldBefore = applied === undefined ? new Set<string>() : egressIPs(applied.state);
      announce([
        ...new Set([...plan.acquired, ...[...egressIPs(desired)].filter((ip) => !heldBefore.has(ip))]),
      ]);
      applied = { state: desired, uplinkMtu: current.uplinkMtu };
      trusted = true;
      resyncFully = false;
      return changed;
    } catch (err) {
      if (err instanceof DataplaneModelFailure) throw err;
      trusted = false;
      resyncFully = true;
      log.warn({ err }, 'dataplane apply failed; the next attempt resyncs fully');
      throw err;
    }
  }

  function egressIPs(state: KernelState): Set<string> {
    return new Set(state.addresses.filter((a) => a.kind === 'egress').map((a) => a.ip));
  }

  /** The target of converge, and what its last computation left out (the MTU never changes that). */
  function desiredFrom(rules: NodeRules): {
    target: (uplinkMtu: number) => KernelState;
    unprogrammable: () => readonly UnprogrammableRule[];
  } {
    let unprogrammable: readonly UnprogrammableRule[] = [];
    const target = (uplinkMtu: number): KernelState => {
      const computed = computeKernelState(cfg, rules, uplinkMtu);
      if (computed._tag === 'Left') throw new DataplaneModelFailure(computed.left);
      if (computed.right.skipped.length > 0) {
        log.warn(
          { node: rules.node, skipped: computed.right.skipped },
          'skipped values the dataplane cannot apply',
        );
      }
      unprogrammable = computed.right.unprogrammable;
      return computed.right.state;
    };
    return { target, unprogrammable: () => unprogrammable };
  }

  return {
    reconcile: (desired) =>
      exclusive(async () => {
        const started = performance.now();
        // The cheap path: same input as last time and nothing suspicious since → no reads, no
        // computation, no writes. (The generation alone changing changes nothing in the kernel.)
        const inputKey = JSON.stringify({ ...desired, generation: 0 });
        if (trusted && applied !== undefined && inputKey === appliedInput) {
          return {
            changed: false,
            durationMs: performance.now() - started,
            unprogrammable: appliedUnprogrammable,
          };
        }
        appliedInput = undefined;
        const computing = desiredFrom(desired);
        const changed = await converge(computing.target);
        const unprogrammable = computing.unprogrammable();
        appliedInput = inputKey;
        appliedUnprogrammable = unprogrammable;
        const durationMs = performance.now() - started;
        if (changed)
          log.info({ node: desired.node, generation: desired.generation, durationMs }, 'dataplane applied');
        if (unprogrammable.length > 0)
          // One line per rule, with the fields an operator filters on; the rest of the node's
          // rules were applied all the same.
          for (const u of unprogrammable)
            log.warn(
              { node: desired.node, generation: desired.generation, ...u },
              'rule left out: it cannot be programmed on this node',
            );
        return { changed, durationMs, unprogrammable };
      }),

    checkDrift: () =>
      exclusive(async () => {
        if (applied === undefined) return !trusted;
        const now = await read();
        // Sysctls are ours only where we set them (gateway devices); a director device keeps
        // whatever the kernel gave it.
        const ownedSysctls = new Set(applied.state.sysctls.map((x) => x.key));
        const seen = { ...now.state, sysctls: now.state.sysctls.filter((x) => ownedSysctls.has(x.key)) };
        const drifted = now.uplinkMtu !== applied.uplinkMtu || comparable(seen) !== comparable(applied.state);
        if (drifted) {
          trusted = false;
          log.warn({ uplinkMtu: now.uplinkMtu }, 'dataplane drift: kernel state differs from the last apply');
        }
        return drifted;
      }),

    withdrawEgressIPs: () =>
      exclusive(async () => {
        // Read the kernel, not our memory: after a restart we may hold addresses we never wrote.
        const now = await read();
        const held = now.state.addresses.filter((a) => a.kind === 'egress');
        if (held.length > 0) await ipBatch(held.map((a) => renderAddress('del', a)));
        log.warn({ withdrawn: held.map((a) => a.ip) }, 'egress IPs withdrawn');
        // The withdrawal is the new truth: a drift check must not bring the addresses back.
        appliedInput = undefined;
        if (applied !== undefined) {
          const addresses = applied.state.addresses.filter((a) => a.kind !== 'egress');
          applied = { ...applied, state: { ...applied.state, addresses } };
        }
      }),

    removeAll: () =>
      exclusive(async () => {
        await Promise.all(announcements);
        trusted = false;
        appliedInput = undefined;
        await converge(() => EMPTY_KERNEL_STATE);
        log.info('dataplane removed');
      }),

    settled: async () => {
      while (announcements.size > 0) await Promise.all(announcements);
    },

    renewEgressAddresses: async (pin) => {
      const lifetime = pin ?? egressLifetimeS;
      const held = applied?.state.addresses.filter((a) => a.kind === 'egress') ?? [];
      if (held.length === 0) return;
      // -force: one address gone does not keep the others from being renewed. Not counted as
      // a write: kernelWrites() counts what applies write.
      const result = await runner.run('ip', ['-force', '-batch', '-'], {
        input: held.map((a) => renderEgressLifetime(a, lifetime)).join('\n') + '\n',
      });
      if (result.code !== 0) {
        // Expired (the agent was starved for longer than the lifetime) or removed behind our
        // back: the kernel no longer equals the last apply, and the next apply re-reads it.
        trusted = false;
        log.warn({ stderr: result.stderr.trim(), lifetime }, 'egress IP lifetime not renewed');
      }
    },

    kernelWrites: () => runner.writes,
  };
}
