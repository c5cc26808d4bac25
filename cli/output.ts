// Output conventions every command follows: one global `-o json|yaml|table` (`--json` is
// `-o json`), and colour only on a terminal. Kept free of heavy imports: the entry point
// loads it for every command, `--version` included.
import type { Command } from 'commander';
import picocolors from 'picocolors';

export const FORMATS = ['table', 'json', 'yaml'] as const;
export type Format = (typeof FORMATS)[number];

/** The format a command prints its result in. `table` is the human form (tables, lines, YAML documents). */
export function formatOf(cmd: Command): Format {
  const o = cmd.optsWithGlobals<{ output?: Format; json?: boolean }>();
  return o.json ? 'json' : (o.output ?? 'table');
}

/** A document for scripts (JSON or YAML) rather than lines for people; progress stays quiet. */
export const structured = (cmd: Command): boolean => formatOf(cmd) !== 'table';

/**
 * Colour when standard output is a terminal, unless NO_COLOR is set or --no-color given;
 * FORCE_COLOR turns it on where there is no terminal. picocolors' own guess also colours
 * any output under CI, where logs keep the escape sequences.
 */
export function colourWanted(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): boolean {
  const end = argv.indexOf('--');
  const flags = end === -1 ? argv : argv.slice(0, end);
  if (flags.includes('--no-color') || (env.NO_COLOR !== undefined && env.NO_COLOR !== '')) return false;
  if (env.FORCE_COLOR !== undefined && env.FORCE_COLOR !== '' && env.FORCE_COLOR !== '0') return true;
  return process.stdout.isTTY === true && env.TERM !== 'dumb';
}

/** The colours every module uses; plain strings until `useColour(true)`. */
export const pc = picocolors.createColors(false);

export function useColour(enabled: boolean): void {
  Object.assign(pc, picocolors.createColors(enabled));
}
