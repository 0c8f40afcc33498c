// Runs a command-line tool (docker, docker-compose, helm, kubectl, promtool, kcat, ...) to its end
// and hands back its exit code and output instead of throwing, so a test can assert on the code
// and show the tool's own words when it fails. Effectful: one child process per call, nothing left
// running.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { repoRoot } from './artifacts.ts';

const run = promisify(execFile);

export interface ToolResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export interface ToolOptions {
  /** Default: the repository root. */
  readonly cwd?: string;
  /** Default: this process's environment. */
  readonly env?: NodeJS.ProcessEnv;
}

/** Never rejects: a missing binary comes back as code -1 with the reason in stderr. */
export async function execTool(
  cmd: string,
  args: readonly string[],
  opts: ToolOptions = {},
): Promise<ToolResult> {
  try {
    const { stdout, stderr } = await run(cmd, args, {
      cwd: opts.cwd ?? repoRoot,
      env: opts.env ?? process.env,
      maxBuffer: 64 * 1024 * 1024,
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number | string; stdout?: string; stderr?: string };
    return {
      code: typeof e.code === 'number' ? e.code : -1,
      stdout: e.stdout ?? '',
      stderr: e.stderr ?? String(err),
    };
  }
}

/** The last lines of a tool's output, for failure messages. */
export const tailLines = (text: string, lines = 40): string =>
  text.trimEnd().split('\n').slice(-lines).join('\n');
