// The `kseip` command line (also `kubectl kseip`, bin/kubectl-kseip). Effectful entry point:
// builds the commander program from the global options (Kafka and cluster: kafka-connection.ts,
// --version) and the command modules under ./commands/ (one file per command group: events,
// replay, audit, explain, verify, what-if, export, completion), runs it, and maps failures to exit codes: 2 for usage errors (commander's
// own included: unknown option, missing argument, no command), 3 for a verify divergence, 4 for
// explain of an unknown pod, 5 for events grep without a match, 1 for anything else, with the
// reason on stderr (docs/cli.md).
import { Command } from 'commander';
import { registerAuditCommand } from './commands/audit.ts';
import { registerEventsCommand } from './commands/events.ts';
import { registerExplainCommand } from './commands/explain.ts';
import { registerExportCommand } from './commands/export.ts';
import { registerReplayCommand } from './commands/replay.ts';
import { registerVerifyCommand } from './commands/verify.ts';
import { registerWhatIfCommand } from './commands/what-if.ts';
import { registerCompletionCommand } from './commands/completion.ts';
import { CliUsageError, processContext } from './context.ts';
import { CliExit, EXIT } from './commands/exit.ts';
import { addConnectionOptions, invokedAsKubectlPlugin } from './kafka-connection.ts';
import { readVersion } from './version.ts';

// As a kubectl plugin, usage lines say `kubectl kseip …`, which is what the user typed.
const program = addConnectionOptions(
  new Command(invokedAsKubectlPlugin() ? 'kubectl kseip' : 'kseip').description(
    'kube-static-egress-ip: read and check the event log',
  ),
)
  .version(readVersion(), '--version', 'print the version (and the build commit, if recorded)')
  .showHelpAfterError()
  .exitOverride();

registerEventsCommand(program, processContext);
registerReplayCommand(program, processContext);
registerAuditCommand(program, processContext);
registerExplainCommand(program, processContext);
registerVerifyCommand(program, processContext);
registerWhatIfCommand(program, processContext);
registerExportCommand(program, processContext);
registerCompletionCommand(program, processContext);

// A reader piped into `head` closes stdout early; that ends the command, it is no error.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});

/**
 * Exits once stdout and stderr have handed everything to the OS. Writes to a pipe are
 * asynchronous on POSIX, and process.exit() drops what is still queued: `kseip … -o json | jq`
 * would get a document cut at 64 KiB. (Exiting explicitly at all: Kafka clients keep timers.)
 */
async function exitAfterFlush(exitCode: number): Promise<never> {
  await Promise.all(
    [process.stdout, process.stderr].map((s) => new Promise<void>((resolve) => s.write('', () => resolve()))),
  );
  process.exit(exitCode);
}

try {
  await program.parseAsync(process.argv);
  await exitAfterFlush(EXIT.ok);
} catch (err) {
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' && code.startsWith('commander.')) {
    // commander printed the message (or help) itself; everything but asking for help (or the
    // version) is a usage error, whatever exit code commander picked (it says 1).
    await exitAfterFlush(
      code === 'commander.helpDisplayed' || code === 'commander.version' ? EXIT.ok : EXIT.usage,
    );
  }
  process.stderr.write(`kseip: ${err instanceof Error ? err.message : String(err)}\n`);
  // A command that ends with a documented exit code (verify: 3, explain: 4, grep: 5; docs/cli.md).
  await exitAfterFlush(
    err instanceof CliExit ? err.exitCode : err instanceof CliUsageError ? EXIT.usage : EXIT.failure,
  );
}
