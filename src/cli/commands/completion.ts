// `kseip completion bash|zsh`: prints the completion script for the shell (core/completion.ts),
// rendered from the program's own command tree, read here off commander. Writes stdout only.
import { Argument, type Command, type Option } from 'commander';
import type { CliContext } from '../context.ts';
import {
  renderBashCompletion,
  renderZshCompletion,
  type CompletionCommand,
  type CompletionOption,
} from '../core/completion.ts';

const SHELLS = ['bash', 'zsh'] as const;

/** A value named <file…>, <…yaml> or <dir> completes as a path. */
function optionOf(o: Option): CompletionOption {
  const takesValue = o.required || o.optional;
  const placeholder = /<([^>]*)>/.exec(o.flags)?.[1] ?? '';
  const path = /dir/.test(placeholder) ? 'dir' : /file|yaml/.test(placeholder) ? 'file' : undefined;
  return {
    names: [o.short, o.long].filter((n): n is string => n !== undefined),
    takesValue,
    ...(o.argChoices === undefined ? {} : { choices: o.argChoices }),
    ...(path === undefined ? {} : { path }),
  };
}

export function selectCompletionTree(cmd: Command): CompletionCommand {
  const first = cmd.registeredArguments[0];
  return {
    name: cmd.name(),
    options: [
      ...cmd.options.filter((o) => !o.hidden).map(optionOf),
      { names: ['-h', '--help'], takesValue: false },
    ],
    commands: cmd.commands.map(selectCompletionTree),
    ...(first?.argChoices === undefined ? {} : { argChoices: first.argChoices }),
  };
}

export function registerCompletionCommand(program: Command, ctx: CliContext): void {
  program
    .command('completion')
    .description('print a shell completion script: source <(kseip completion bash)')
    .addArgument(new Argument('<shell>', 'the shell').choices(SHELLS))
    .action((shell: (typeof SHELLS)[number]) => {
      // Completes the `kseip` command (as `kubectl kseip`, kubectl completes the plugin name only).
      const tree = { ...selectCompletionTree(program), name: 'kseip' };
      ctx.write(shell === 'bash' ? renderBashCompletion(tree) : renderZshCompletion(tree));
    });
}
