// env.set and env.unset: one `NAME=value` line in the environment file the variable's scope
// names — an absolute path (a systemd EnvironmentFile, /etc/default/app), or /etc/environment
// when the Profile gives no scope. A scope that names a process or service rather than a file,
// a sealed value, or a value no environment file can hold as written comes back unresolved.
import type { Change } from '../../delta/changes.js';
import type { EnvVar } from '../../profile/schema.js';
import { pathProblem } from '../../transport/paths.js';
import { sh } from '../../transport/shell.js';
import { HostStateConflictError } from '../errors.js';
import type { Outcome } from '../journal.js';
import { changed, type Executor, runOk, unchanged, unresolved } from './executor.js';
import { type FilePrior, prepareFile, probeFile, restoreFile, writeFile } from './files.js';

export const GLOBAL_ENVIRONMENT_FILE = '/etc/environment';

type EnvChange = Extract<Change, { section: 'env' }>;

function envChange(change: Change): EnvChange {
  if (change.section !== 'env') throw new TypeError(`${change.kind} is not an env change`);
  return change;
}

/** The file the variable lives in, or why there is none. */
export function environmentFile(variable: EnvVar): { path: string } | { problem: string } {
  if (variable.scope === undefined) return { path: GLOBAL_ENVIRONMENT_FILE };
  if (!variable.scope.startsWith('/')) {
    return { problem: `its scope "${variable.scope}" names a process, not an environment file` };
  }
  const problem = pathProblem(variable.scope);
  return problem === undefined ? { path: variable.scope } : { problem: `its scope ${problem}` };
}

// pam_env and systemd both read NAME=value and NAME="value"; neither agrees with the other on
// escapes, so a value that would need one is not written rather than written ambiguously.
const PLAIN = /^[A-Za-z0-9_.,:/@%+=-]*$/;
const QUOTABLE = /^[^"\\$`\p{Cc}]*$/u;

export function envLine(name: string, value: string): string | undefined {
  if (PLAIN.test(value)) return `${name}=${value}`;
  if (QUOTABLE.test(value)) return `${name}="${value}"`;
  return undefined;
}

const defines = (line: string, name: string) => new RegExp(`^\\s*(export\\s+)?${name}=`).test(line);

/** The file's text with `name` set to `line` (in place of its first definition) or removed. */
export function withVariable(text: string, name: string, line: string | undefined): string {
  const lines = text === '' ? [] : text.replace(/\n$/, '').split('\n');
  const out: string[] = [];
  let placed = false;
  for (const l of lines) {
    if (!defines(l, name)) out.push(l);
    else if (line !== undefined && !placed) {
      out.push(line);
      placed = true;
    }
  }
  if (line !== undefined && !placed) out.push(line);
  return out.length === 0 ? '' : `${out.join('\n')}\n`;
}

/** Why the Change can never be applied as given, known from the Change alone; else undefined. */
function staticallyUnresolved(c: ReturnType<typeof envChange>): Outcome | undefined {
  const variable = (c.to ?? c.from) as EnvVar;
  const file = environmentFile(variable);
  if ('problem' in file) return unresolved(`${c.key}: ${file.problem}`);
  if (c.kind !== 'env.set') return undefined;
  if (variable.value === undefined)
    return unresolved(`${c.key}: its value is sealed, which this executor does not open yet`);
  if (envLine(variable.name, variable.value) === undefined)
    return unresolved(`${c.key}: its value holds a quote, "\\", "$", "\`" or a control character`);
  return undefined;
}

export const envExecutor: Executor = {
  kinds: ['env.set', 'env.unset'],

  async survey(_ctx, changes) {
    return changes.map((change) => staticallyUnresolved(envChange(change)));
  },

  async prepare(ctx, change) {
    const c = envChange(change);
    const file = environmentFile((c.to ?? c.from) as EnvVar);
    if ('problem' in file || staticallyUnresolved(c) !== undefined) return null;
    return prepareFile(ctx, file.path, `${c.kind} ${c.key}`);
  },

  async apply(ctx, change) {
    const c = envChange(change);
    const variable = (c.to ?? c.from) as EnvVar;
    const file = environmentFile(variable);
    const never = staticallyUnresolved(c);
    if (never !== undefined || 'problem' in file) return never as Outcome;
    const line = c.kind === 'env.set' ? envLine(variable.name, variable.value as string) : undefined;
    // Compared with the host as it is now: an apply finished after a crash finds its own work.
    const { state: now } = await probeFile(ctx.transport, file.path, `${c.kind} ${c.key}`);
    if (now.kind === 'other') {
      throw new HostStateConflictError(
        `${file.path} is a ${now.type} on the host, not a file`,
        c.kind,
        c.key,
      );
    }
    if (now.kind === 'absent' && line === undefined) return unchanged(`${c.key} is not set`);
    const text =
      now.kind === 'file'
        ? (await runOk(ctx.transport, `reading ${file.path}`, sh`cat -- ${file.path}`)).stdout
        : '';
    const next = withVariable(text, variable.name, line);
    if (next === text)
      return unchanged(line === undefined ? `${c.key} is not set` : `${c.key} is already set so`);
    const attrs =
      now.kind === 'file'
        ? { mode: Number.parseInt(now.mode, 8), owner: now.owner, group: now.group }
        : { mode: 0o644, owner: 'root', group: 'root' };
    await writeFile(ctx.transport, file.path, Buffer.from(next, 'utf8'), attrs);
    return changed(
      line === undefined
        ? `removed ${variable.name} from ${file.path}`
        : `set ${variable.name} in ${file.path}`,
    );
  },

  async revert(ctx, change, prior) {
    const c = envChange(change);
    if (prior === null) return unchanged(`${c.key} was not applied`);
    const result = await restoreFile(ctx.transport, prior as FilePrior);
    return result === 'unchanged'
      ? unchanged(`${c.key} is as it was`)
      : changed(`restored the file of ${c.key}`);
  },
};
