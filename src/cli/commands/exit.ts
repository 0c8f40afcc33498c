// Exit codes of kseip (docs/cli.md): 0 ok, 1 runtime failure (Kafka, file), 2 usage,
// 3 verify found a divergence, 4 explain: the pod is unknown at that point of the log,
// 5 events grep: no record matched.
export const EXIT = { ok: 0, failure: 1, usage: 2, divergence: 3, unknownPod: 4, noMatch: 5 } as const;

/** Ends a command with a given exit code after its output was written (main.ts maps it). */
export class CliExit extends Error {
  readonly exitCode: number;
  constructor(exitCode: number, message: string) {
    super(message);
    this.exitCode = exitCode;
  }
}
