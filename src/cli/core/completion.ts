// `kseip completion bash|zsh`: shell completion scripts rendered from the command tree, so they
// can never disagree with the commands (commands/completion.ts reads the tree off commander).
// Pure: tree in, script text out.
//
// Both scripts share the same data functions (POSIX `case` statements, valid in bash and zsh):
// the subcommands of a command path, its options (global ones included: commander accepts them
// anywhere), which options take a value, and what that value is (fixed choices, a file, a
// directory). Only the driver that walks the words differs per shell.

export interface CompletionOption {
  /** e.g. ['-o', '--output'] */
  readonly names: readonly string[];
  readonly takesValue: boolean;
  readonly choices?: readonly string[];
  /** The value is a file or a directory: complete paths. */
  readonly path?: 'file' | 'dir';
}

export interface CompletionCommand {
  readonly name: string;
  readonly options: readonly CompletionOption[];
  readonly commands: readonly CompletionCommand[];
  /** Fixed values of the first argument (completion: bash, zsh). */
  readonly argChoices?: readonly string[];
}

interface Flat {
  readonly path: string;
  readonly node: CompletionCommand;
}

function flatten(node: CompletionCommand, prefix = ''): Flat[] {
  const path = prefix === '' ? node.name : `${prefix} ${node.name}`;
  return [{ path, node }, ...node.commands.flatMap((c) => flatten(c, path))];
}

const quote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

function caseFunction(name: string, arms: readonly (readonly [string, string])[]): string {
  const body = arms
    .filter(([, words]) => words !== '')
    .map(([pattern, words]) => `    ${quote(pattern)}) echo ${quote(words)} ;;`)
    .join('\n');
  return `${name}() {\n  case "$1" in\n${body}\n  esac\n}`;
}

/** The shared data functions, named after the root command (__kseip_commands, …). */
function renderData(root: CompletionCommand): string {
  const fn = `__${root.name.replace(/[^A-Za-z0-9]/g, '_')}`;
  const flat = flatten(root);
  const optionsOf = (n: CompletionCommand): readonly CompletionOption[] =>
    n === root ? root.options : [...n.options, ...root.options];
  const words = (opts: readonly CompletionOption[], pick: (o: CompletionOption) => boolean): string =>
    opts
      .filter(pick)
      .flatMap((o) => o.names)
      .join(' ');
  const valueArms: [string, string][] = [];
  for (const { path, node } of flat)
    for (const o of optionsOf(node))
      for (const n of o.names) {
        if (o.choices !== undefined) valueArms.push([`${path} ${n}`, `choices ${o.choices.join(' ')}`]);
        else if (o.path !== undefined) valueArms.push([`${path} ${n}`, o.path]);
      }
  return [
    caseFunction(
      `${fn}_commands`,
      flat.map(({ path, node }) => [
        path,
        node.commands.length > 0
          ? node.commands.map((c) => c.name).join(' ')
          : (node.argChoices ?? []).join(' '),
      ]),
    ),
    caseFunction(
      `${fn}_options`,
      flat.map(({ path, node }) => [path, words(optionsOf(node), () => true)]),
    ),
    caseFunction(
      `${fn}_value_options`,
      flat.map(({ path, node }) => [path, words(optionsOf(node), (o) => o.takesValue)]),
    ),
    // "<path> <option>" → "choices a b c", "file" or "dir"; nothing: any value.
    caseFunction(`${fn}_value`, valueArms),
  ].join('\n\n');
}

/** Is word $2 in the list $1 (space-separated)? */
const IN_LIST = (fn: string): string => `${fn}_in() {
  case " $1 " in *" $2 "*) return 0 ;; esac
  return 1
}`;

/**
 * Sets cur, prev and cmdpath (the subcommands typed so far) from the shell's word array; option
 * values are skipped. bash counts words from 0, zsh from 1, so the first word after the program
 * name differs.
 */
const WALK_WORDS = (
  root: CompletionCommand,
  fn: string,
  shell: { words: string; current: string; first: number },
): string => {
  const { words, current, first } = shell;
  return `  local cur="\${${words}[${current}]}" prev="\${${words}[${current}-1]}"
  local cmdpath=${quote(root.name)} w i skip=0
  for ((i = ${first}; i < ${current}; i++)); do
    w="\${${words}[i]}"
    if ((skip)); then skip=0; continue; fi
    case "$w" in
      --*=*) continue ;;
      -*) ${fn}_in "$(${fn}_value_options "$cmdpath")" "$w" && skip=1; continue ;;
    esac
    if ${fn}_in "$(${fn}_commands "$cmdpath")" "$w"; then cmdpath="$cmdpath $w"; fi
  done`;
};

export function renderBashCompletion(root: CompletionCommand): string {
  const fn = `__${root.name.replace(/[^A-Za-z0-9]/g, '_')}`;
  return `# bash completion for ${root.name}: source <(${root.name} completion bash)
# (or write it to /etc/bash_completion.d/${root.name}). Generated from the command tree.
${renderData(root)}

${IN_LIST(fn)}

_${fn.slice(2)}() {
${WALK_WORDS(root, fn, { words: 'COMP_WORDS', current: 'COMP_CWORD', first: 1 })}
  COMPREPLY=()
  if ((COMP_CWORD > 1)) && ${fn}_in "$(${fn}_value_options "$cmdpath")" "$prev"; then
    local value
    value="$(${fn}_value "$cmdpath $prev")"
    case "$value" in
      choices\\ *) COMPREPLY=($(compgen -W "\${value#choices }" -- "$cur")) ;;
      file) COMPREPLY=($(compgen -f -- "$cur")) ;;
      dir) COMPREPLY=($(compgen -d -- "$cur")) ;;
    esac
    return 0
  fi
  if [[ "$cur" == -* ]]; then
    COMPREPLY=($(compgen -W "$(${fn}_options "$cmdpath")" -- "$cur"))
  else
    COMPREPLY=($(compgen -W "$(${fn}_commands "$cmdpath")" -- "$cur"))
  fi
}
complete -o default -F _${fn.slice(2)} ${root.name}
`;
}

export function renderZshCompletion(root: CompletionCommand): string {
  const fn = `__${root.name.replace(/[^A-Za-z0-9]/g, '_')}`;
  const main = `_${fn.slice(2)}`;
  return `#compdef ${root.name}
# zsh completion for ${root.name}: source <(${root.name} completion zsh), or save it as ${main} in a
# directory of $fpath. Generated from the command tree.
${renderData(root)}

${IN_LIST(fn)}

${main}() {
${WALK_WORDS(root, fn, { words: 'words', current: 'CURRENT', first: 2 })}
  if ((CURRENT > 2)) && ${fn}_in "$(${fn}_value_options "$cmdpath")" "$prev"; then
    local value
    value="$(${fn}_value "$cmdpath $prev")"
    case "$value" in
      choices\\ *) compadd -- \${=value#choices } ;;
      file) _files ;;
      dir) _files -/ ;;
    esac
    return 0
  fi
  if [[ "$cur" == -* ]]; then
    compadd -- \${=$(${fn}_options "$cmdpath")}
  else
    compadd -- \${=$(${fn}_commands "$cmdpath")}
  fi
}

if [ "$funcstack[1]" = "${main}" ]; then
  ${main} "$@"
else
  compdef ${main} ${root.name}
fi
`;
}
