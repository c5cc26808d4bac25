// Building shell command lines for remote hosts. Everything a caller passes (paths, env values)
// is data, never code: it goes through the single-quote escaper and nothing else.
import { InvalidInputError, type Issue } from '../errors.js';

/**
 * Quotes a string for a POSIX shell: inside single quotes nothing is special, and a single
 * quote itself is written as `'\''` (close, escaped quote, reopen).
 */
export function shellQuote(value: string): string {
  return `'${value.replaceAll("'", "'\\''")}'`;
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Rejects names a shell or `env` would misread, and values a process environment cannot hold. */
export function checkEnv(env: Readonly<Record<string, string>> | undefined): void {
  if (!env) return;
  const issues: Issue[] = [];
  for (const [name, value] of Object.entries(env)) {
    if (!ENV_NAME.test(name)) issues.push({ path: `env.${name}`, message: 'not a valid variable name' });
    // The environment is a list of NUL-terminated strings: a NUL would silently cut the value.
    if (value.includes('\0')) issues.push({ path: `env.${name}`, message: 'contains a NUL byte' });
  }
  if (issues.length > 0) throw new InvalidInputError('invalid environment for a command', issues);
}

/**
 * The command as `sh -c '...'`, with its environment set by `env` rather than by shell
 * assignments, so a value is never parsed by the shell (no expansion, no word splitting).
 */
export function shellCommand(command: string, env?: Readonly<Record<string, string>>): string {
  checkEnv(env);
  const assignments = Object.entries(env ?? {}).map(([name, value]) => shellQuote(`${name}=${value}`));
  const prefix = assignments.length > 0 ? `env ${assignments.join(' ')} ` : '';
  return `${prefix}sh -c ${shellQuote(command)}`;
}

/** The start of a command line, for messages: long scripts are cut, newlines shown as spaces. */
export function describeCommand(command: string, max = 80): string {
  const flat = command.replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

/** `0644`, for shell `chmod`. */
export function octalMode(mode: number): string {
  if (!Number.isInteger(mode) || mode < 0 || mode > 0o7777) {
    throw new InvalidInputError(`file mode ${mode} is not between 0 and 0o7777`, [
      { path: 'mode', message: 'not a file mode' },
    ]);
  }
  return mode.toString(8).padStart(4, '0');
}

/**
 * A shell script that replaces `path` with what `source` writes to its standard output, through
 * a temporary file beside it and a rename, with `mode` (or the replaced file's mode, or 0644).
 * `source` runs with umask 077, so the content is never readable by others before the chmod.
 */
export function atomicWriteScript(path: string, source: string, mode: number | undefined): string {
  const p = shellQuote(path);
  const chmod =
    mode === undefined
      ? `if [ -e ${p} ]; then chmod "$(stat -c %a ${p})" "$t"; else chmod 0644 "$t"; fi`
      : `chmod ${octalMode(mode)} "$t"`;
  return [
    'set -e',
    `t=${p}.persona-$$`,
    `trap 'rm -f "$t"' EXIT`,
    'umask 077',
    `${source} > "$t"`,
    chmod,
    `mv -f "$t" ${p}`,
  ].join('\n');
}

/** Exit codes the transports' own helper scripts use to report a file problem. */
export const FILE_EXIT = { MISSING: 44, TOO_LARGE: 45 } as const;
