// Runs the kernel tools (nft, ip, bridge, sysctl, arping), optionally inside a network namespace.
// Effectful. It is the dataplane's only door to the kernel, so it also counts writes: a test can
// prove that an unchanged desired state wrote nothing.
import { spawn } from 'node:child_process';

export type KernelTool = 'nft' | 'ip' | 'bridge' | 'sysctl' | 'arping';

export interface RunOptions {
  /** Text on stdin (`nft -f -`, `ip -batch -`). */
  readonly input?: string;
  /** Counts as a kernel write. */
  readonly write?: boolean;
  readonly timeoutMs?: number;
}

export interface RunResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export interface KernelRunner {
  run(tool: KernelTool, args: readonly string[], options?: RunOptions): Promise<RunResult>;
  /** Write commands run so far. */
  readonly writes: number;
}

/** A failed kernel command: retriable (the next attempt re-reads the kernel and resyncs fully). */
export class KernelCommandError extends Error {
  readonly tool: KernelTool;
  readonly code: number;
  readonly stderr: string;
  readonly retriable = true;
  constructor(tool: KernelTool, args: readonly string[], result: RunResult) {
    super(`${tool} ${args.join(' ')} exited ${result.code}: ${result.stderr.trim().slice(0, 500)}`);
    this.name = 'KernelCommandError';
    this.tool = tool;
    this.code = result.code;
    this.stderr = result.stderr;
  }
}

/**
 * `ip` and `bridge` enter the namespace themselves (`-n`), which is cheaper than `ip netns exec`
 * (that also unshares a mount namespace and remounts /sys); nft, sysctl and arping cannot.
 */
function argvFor(netns: string | undefined, tool: KernelTool, args: readonly string[]): string[] {
  if (netns === undefined) return [tool, ...args];
  if (tool === 'ip' || tool === 'bridge') return [tool, '-n', netns, ...args];
  return ['ip', 'netns', 'exec', netns, tool, ...args];
}

export function createKernelRunner(netns: string | undefined): KernelRunner {
  let writes = 0;
  return {
    get writes() {
      return writes;
    },
    run(tool, args, options = {}) {
      if (options.write === true) writes++;
      const [cmd, ...argv] = argvFor(netns, tool, args);
      return new Promise((resolve, reject) => {
        const child = spawn(cmd ?? tool, argv, { stdio: ['pipe', 'pipe', 'pipe'] });
        const out: Buffer[] = [];
        const err: Buffer[] = [];
        const timer =
          options.timeoutMs === undefined
            ? undefined
            : setTimeout(() => child.kill('SIGKILL'), options.timeoutMs);
        child.stdout.on('data', (b: Buffer) => out.push(b));
        child.stderr.on('data', (b: Buffer) => err.push(b));
        child.on('error', (e) => {
          if (timer !== undefined) clearTimeout(timer);
          reject(e);
        });
        child.on('close', (code, signal) => {
          if (timer !== undefined) clearTimeout(timer);
          resolve({
            code: code ?? (signal === null ? 1 : 128),
            stdout: Buffer.concat(out).toString('utf8'),
            stderr: Buffer.concat(err).toString('utf8'),
          });
        });
        child.stdin.on('error', () => undefined);
        child.stdin.end(options.input ?? '');
      });
    },
  };
}

/** Runs and throws KernelCommandError on a non-zero exit. */
export async function runChecked(
  runner: KernelRunner,
  tool: KernelTool,
  args: readonly string[],
  options?: RunOptions,
): Promise<string> {
  const result = await runner.run(tool, args, options);
  if (result.code !== 0) throw new KernelCommandError(tool, args, result);
  return result.stdout;
}
