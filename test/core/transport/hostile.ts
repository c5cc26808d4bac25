// Strings a hostile host, document or request could hand us, for property tests of the quoting
// helper: leading dashes, quotes, expansions, command substitution, newlines, terminal escapes,
// wildcards, any code point, and very long runs of them. NUL is left out: no argument can hold
// it, and the helper refuses it (tested on its own).
import fc from 'fast-check';

/** Pieces that mean something to a shell, to a program's option parser or to a terminal. */
export const HOSTILE_PIECES = [
  '-',
  '--',
  '-rf',
  '--help',
  '--checkpoint-action=exec=id',
  '-oProxyCommand=id',
  "'",
  "'\\''",
  '"',
  '\\',
  '$(',
  ')',
  '$(id)',
  '`',
  '`id`',
  // biome-ignore lint/suspicious/noTemplateCurlyInString: a shell expansion, not a template
  '${IFS}',
  '$HOME',
  '$$',
  '$0',
  '$@',
  '\n',
  '\r',
  '\t',
  ' ',
  ';',
  '|',
  '&',
  '&&',
  '>',
  '<',
  '>&2',
  '*',
  '?',
  '[',
  ']',
  '{a,b}',
  '~',
  '!',
  '#',
  '%s',
  '%n',
  '=',
  '\x1b[2J',
  '\x7f',
  '\x01',
  'é',
  '\u202e',
  '😀',
] as const;

const piece = fc.constantFrom(...HOSTILE_PIECES);

/** Any well-formed string without NUL, weighted towards what is dangerous. */
export const hostileString: fc.Arbitrary<string> = fc
  .oneof(
    {
      weight: 4,
      arbitrary: fc
        .array(fc.oneof(piece, fc.string({ maxLength: 3 })), { maxLength: 12 })
        .map((a) => a.join('')),
    },
    { weight: 2, arbitrary: fc.string({ unit: 'binary-ascii', maxLength: 40 }) },
    { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }) },
    // Long: up to 1500 repetitions, at most about 75 KB once quoted twice (into a command, and
    // the command into `sh -c`), well within the 128 KiB a host takes as one command line.
    {
      weight: 1,
      arbitrary: fc.tuple(piece, fc.integer({ min: 100, max: 1500 })).map(([p, n]) => p.repeat(n)),
    },
  )
  .map((s) => s.replaceAll('\0', ''));
