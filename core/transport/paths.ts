// The grammar every path from a registration, a Profile or a host obeys before it reaches a
// command on a host. Quoting (shell.ts) makes a path one argument; the grammar makes sure that
// argument means one file: absolute, written one way only, nothing a program could take for an
// option once the leading "/" is stripped (`tar -C / etc`), and no byte that ends or splits a
// line, a word or a C string.
import { InvalidInputError } from '../errors.js';
import { displayValue } from './shell.js';

/** Bytes in a whole path: Linux's PATH_MAX (4096) counts the terminating NUL. */
export const PATH_MAX_BYTES = 4095;
/** Bytes in one name of a path (NAME_MAX). */
export const NAME_MAX_BYTES = 255;

/** What is wrong with `value` as a host path, in words that follow the value; undefined when nothing. */
export function pathProblem(value: string): string | undefined {
  if (value === '') return 'is empty';
  if (!value.startsWith('/')) return 'is not absolute (it must start with "/")';
  if (/\p{Cs}/u.test(value)) return 'is not well-formed Unicode (it holds a lone surrogate)';
  // Cc is C0, DEL and C1: NUL ends a C string, newline ends a line of a script's output, and the
  // rest are escape sequences on a terminal. None has a place in a path we send.
  if (/\p{Cc}/u.test(value)) return 'contains a control character';
  if (Buffer.byteLength(value, 'utf8') > PATH_MAX_BYTES) return `is longer than ${PATH_MAX_BYTES} bytes`;
  if (value === '/') return 'is the root directory itself, not a tree below it';
  const names = value.slice(1).split('/');
  if (names.includes(''))
    return `is not in normal form (an empty name): write ${displayValue(normal(value))}`;
  if (names.some((n) => n === '.' || n === '..')) return 'has a "." or ".." name';
  if (names.some((n) => Buffer.byteLength(n, 'utf8') > NAME_MAX_BYTES)) {
    return `has a name longer than ${NAME_MAX_BYTES} bytes`;
  }
  if (names[0]?.startsWith('-')) {
    return 'starts with "-" once its leading "/" is removed, which a program would read as an option';
  }
  return undefined;
}

/**
 * The looser rule for paths a Profile records from a host (homes, mounts, cgroups, files): "/"
 * and names written more than one way (`/home/u/`) are facts of the host, while what could
 * still change a command's meaning — control characters, lone surrogates, "..", a first name
 * starting with "-", overlong paths — is refused. Whatever sends one to a host checks it with
 * checkPath first.
 */
export function recordedPathProblem(value: string): string | undefined {
  if (value === '/') return undefined;
  const problem = pathProblem(value.length > 1 ? value.replace(/\/+$/, '').replace(/\/{2,}/g, '/') : value);
  return problem?.startsWith('is the root directory') ? undefined : problem;
}

/**
 * `value` when it obeys the grammar; otherwise an InvalidInputError naming `field` and showing
 * the value escaped, so a hostile one cannot rewrite the terminal it is shown on.
 */
export function checkPath(value: string, field: string): string {
  const problem = pathProblem(value);
  if (problem !== undefined) {
    throw new InvalidInputError(`${field} ${displayValue(value)} ${problem}`, [
      { path: field, message: `${displayValue(value)} ${problem}` },
    ]);
  }
  return value;
}

/** The path relative to "/", for `tar -C /`: `/srv/app` is `srv/app`. */
export function relativeToRoot(value: string, field: string): string {
  return checkPath(value, field).slice(1);
}

function normal(value: string): string {
  return `/${value
    .split('/')
    .filter((n) => n !== '')
    .join('/')}`;
}
