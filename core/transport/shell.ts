// Building shell command lines for hosts. Every value that comes from a host, a document or a
// request is data, never code: it reaches a command line only as one single-quoted word made
// here, after `--` where the program takes options (README.md, "Security"). This is
// the one quoting helper; nothing else in the project quotes for a shell.
import { InvalidInputError, type Issue } from '../errors.js';

/**
 * Quotes a string as one word for a POSIX shell: inside single quotes nothing is special, and a
 * single quote itself is written as `'\''` (close, escaped quote, reopen). A NUL is refused: an
 * argument is a C string, so the program would see the value cut short at it. So is a lone
 * surrogate, which has no bytes that stand for it.
 *
 * `field` names the value in the error (`paths[2]`, `env.HOME`).
 */
export function shellQuote(value: string, field = 'argument'): string {
  if (value.includes('\0')) {
    throw new InvalidInputError(
      `${field} ${displayValue(value)} contains a NUL byte, which no command argument can hold`,
      [{ path: field, message: 'contains a NUL byte' }],
    );
  }
  // A lone surrogate has no UTF-8 form: the host would get U+FFFD, another argument than this.
  if (/\p{Cs}/u.test(value)) {
    throw new InvalidInputError(
      `${field} ${displayValue(value)} is not well-formed Unicode (it holds a lone surrogate)`,
      [{ path: field, message: 'holds a lone surrogate' }],
    );
  }
  return `'${value.replaceAll("'", "'\\''")}'`;
}

/** Values in a template: a string or number is one word, a list one word per element. */
export type ShellValue = string | number | readonly (string | number)[];

/**
 * A command line whose literal text is the program and whose every interpolated value is
 * quoted: sh`tar -cf - -C / -- ${paths}` gives `tar -cf - -C / -- 'etc' 'srv/my app'`. The
 * literal text is code, so it never holds data; a value can only ever be words of arguments.
 */
export function sh(text: TemplateStringsArray, ...values: readonly ShellValue[]): string {
  let out = text[0] ?? '';
  values.forEach((value, i) => {
    out += shellWords(typeof value === 'object' ? value : [value]) + (text[i + 1] ?? '');
  });
  return out;
}

/** The values as quoted words separated by spaces; `field` names them in an error (`field[i]`). */
export function shellWords(values: readonly (string | number)[], field = 'argument'): string {
  return values
    .map((v, i) => shellQuote(String(v), values.length === 1 ? field : `${field}[${i}]`))
    .join(' ');
}

/**
 * A value as it may be shown in a message or on a terminal: in double quotes, with control
 * characters, quotes, backslashes and characters that reorder or hide text (bidirectional
 * controls, line separators) escaped, and cut to `max` characters.
 */
export function displayValue(value: string, max = 120): string {
  let shown = '';
  let count = 0;
  for (const ch of value) {
    if (count === max) {
      shown += `… (${value.length} characters)`;
      break;
    }
    shown += escapeForDisplay(ch);
    count++;
  }
  return `"${shown}"`;
}

function escapeForDisplay(ch: string): string {
  const code = ch.codePointAt(0) ?? 0;
  if (ch === '"' || ch === '\\') return `\\${ch}`;
  if (ch === '\n') return '\\n';
  if (ch === '\t') return '\\t';
  if (ch === '\r') return '\\r';
  if (code < 0x20 || (code >= 0x7f && code <= 0x9f)) return `\\x${code.toString(16).padStart(2, '0')}`;
  // Unicode format characters (bidi overrides, zero-width) and line separators, and lone
  // surrogates, which a terminal cannot show as themselves.
  if (/[\p{Cf}\p{Zl}\p{Zp}]/u.test(ch) || (code >= 0xd800 && code <= 0xdfff)) {
    return `\\u{${code.toString(16)}}`;
  }
  return ch;
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
  const assignments = Object.entries(env ?? {}).map(([name, value]) =>
    shellQuote(`${name}=${value}`, `env.${name}`),
  );
  const prefix = assignments.length > 0 ? `env ${assignments.join(' ')} ` : '';
  return `${prefix}sh -c ${shellQuote(command, 'command')}`;
}

/**
 * The start of a command line, for messages: long scripts are cut, newlines shown as spaces, and
 * other control characters (from data in the command) escaped, so a message cannot drive a terminal.
 */
export function describeCommand(command: string, max = 80): string {
  const flat = command
    .replace(/\s+/g, ' ')
    .trim()
    .replace(/[\p{Cc}\p{Cf}\p{Cs}]/gu, escapeForDisplay);
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
 * `path` is one the caller checked against the path grammar (paths.ts).
 */
export function atomicWriteScript(path: string, source: string, mode: number | undefined): string {
  const p = shellQuote(path, 'path');
  const chmod =
    mode === undefined
      ? `if [ -e ${p} ]; then chmod -- "$(stat -c %a -- ${p})" "$t"; else chmod -- 0644 "$t"; fi`
      : `chmod -- ${octalMode(mode)} "$t"`;
  return [
    'set -e',
    `t=${p}.persona-$$`,
    `trap 'rm -f "$t"' EXIT`,
    'umask 077',
    `${source} > "$t"`,
    chmod,
    `mv -f -- "$t" ${p}`,
  ].join('\n');
}

/**
 * Bytes in the longest command line a host runs: sshd hands it to the login shell as the one
 * argument of `-c`, and Linux limits one argument to 32 pages (MAX_ARG_STRLEN, 131072 bytes,
 * the terminating NUL included).
 */
export const COMMAND_MAX_BYTES = 131_071;

/** Exit codes the transports' own helper scripts use to report a file problem. */
export const FILE_EXIT = { MISSING: 44, TOO_LARGE: 45 } as const;
