// `persona completion bash|zsh`: a completion script generated from the command tree itself,
// so it names exactly the subcommands and options this version has. zsh runs the same
// function through bashcompinit.
import type { Command, Option } from 'commander';
import { InvalidInputError } from '../core/errors.js';

interface Node {
  readonly path: string;
  readonly words: string[];
}

const flags = (options: readonly Option[]) =>
  options.flatMap((o) => [o.short, o.long].filter((f): f is string => f !== undefined));
const valued = (options: readonly Option[]) =>
  options
    .filter((o) => o.required || o.optional)
    .flatMap((o) => [o.short, o.long].filter(Boolean) as string[]);

function walk(
  cmd: Command,
  path: string,
  nodes: Node[],
  withValues: Set<string>,
  choices: Map<string, string[]>,
) {
  for (const o of cmd.options) {
    for (const f of valued([o])) withValues.add(f);
    if (o.argChoices) for (const f of flags([o])) choices.set(f, o.argChoices);
  }
  const subs = cmd.commands.filter((c) => c.name() !== 'help');
  const args = cmd.registeredArguments.flatMap((a) => a.argChoices ?? []);
  nodes.push({
    path,
    words: [...subs.map((c) => c.name()), ...args, ...(path === '' ? [] : flags(cmd.options))],
  });
  for (const sub of subs)
    walk(sub, path === '' ? sub.name() : `${path} ${sub.name()}`, nodes, withValues, choices);
}

// Every word comes from our own command tree (names and flags made of [a-z0-9-]), never from
// input, so they need no quoting beyond the shell's single quotes; checked anyway.
const word = (w: string) => {
  if (!/^[A-Za-z0-9][A-Za-z0-9 ._-]*$|^--?[A-Za-z0-9-]+$/.test(w))
    throw new Error(`not a completion word: ${w}`);
  return w;
};

export function bashCompletion(program: Command): string {
  const nodes: Node[] = [];
  const withValues = new Set<string>();
  const choices = new Map<string, string[]>();
  walk(program, '', nodes, withValues, choices);
  const global = flags(program.options).map(word).join(' ');
  const cases = nodes
    .map(
      (n) =>
        `    '${word(n.path || 'persona')}') words='${[...n.words, ...(n.path === '' ? ['help'] : [])].map(word).join(' ')}' ;;`,
    )
    .join('\n');
  const choiceCases = [...choices]
    .map(
      ([f, c]) =>
        `    ${word(f)}) COMPREPLY=($(compgen -W '${c.map(word).join(' ')}' -- "$cur")); return 0 ;;`,
    )
    .join('\n');
  return `# persona completion for bash: source <(persona completion bash)
_persona_words() {
  local words
  case "$1" in
${cases}
    *) return 1 ;;
  esac
  printf '%s\\n' "$words"
}

_persona() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" prev="\${COMP_WORDS[COMP_CWORD-1]}"
  local path='persona' i w
  for ((i = 1; i < COMP_CWORD; i++)); do
    w="\${COMP_WORDS[i]}"
    if [[ "$w" == -* ]]; then
      case " ${[...withValues].map(word).join(' ')} " in
        *" $w "*) ((i++)) ;;
      esac
      continue
    fi
    if [[ "$path" == persona ]] && _persona_words "$w" >/dev/null; then
      path="$w"
    elif [[ "$path" != persona ]] && _persona_words "$path $w" >/dev/null; then
      path="$path $w"
    fi
  done
  case "$prev" in
${choiceCases}
    -f | --file | --key | --save | --plan | --tar) COMPREPLY=($(compgen -f -- "$cur")); return 0 ;;
  esac
  local words
  words="$(_persona_words "$path")"
  [[ "$cur" == -* ]] && words="$words ${global}"
  COMPREPLY=($(compgen -W "$words" -- "$cur"))
}
complete -o default -F _persona persona
`;
}

export function completionScript(shell: string, program: Command): string {
  if (shell === 'bash') return bashCompletion(program);
  if (shell === 'zsh')
    return `# persona completion for zsh: source <(persona completion zsh)
autoload -U +X bashcompinit && bashcompinit
${bashCompletion(program)}`;
  throw new InvalidInputError(`no completion for ${shell}`, [
    { path: 'shell', message: 'expected bash or zsh' },
  ]);
}
