// kmod.load and kmod.unload: `modprobe --` with the module's parameters, and `modprobe -r --`.
// A host that does not let Persona load or unload modules (a container, a host without
// CAP_SYS_MODULE, a kernel without that module) gets the Change recorded as unresolved with
// modprobe's own reason: nothing is faked as loaded. Loaded means /sys/module/<name> exists,
// which holds for modules built into the kernel as well.
import type { Change } from '../../delta/changes.js';
import { InvalidInputError, type Issue } from '../../errors.js';
import { displayValue, sh } from '../../transport/shell.js';
import type { RunResult, Transport } from '../../transport/transport.js';
import { HostCommandError } from '../errors.js';
import { changed, type Executor, probe, unchanged, unresolved } from './executor.js';

type KmodChange = Extract<Change, { section: 'kernelModules' }>;

// Module names as the kernel spells them (`-` and `_` are the same), never starting with "-".
const MODULE = /^[A-Za-z0-9_][A-Za-z0-9_-]{0,55}$/;
const PARAMETER = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;
// One `name=value` word of modprobe's command line: printable, no white space and no quotes
// (the kernel's own parser would split or unquote them), so the module sees what the Profile says.
const VALUE = /^[A-Za-z0-9_.,:;+/=@%#~^*!?()[\]{}<>|&$-]{0,1024}$/;

/**
 * What modprobe says when the host, not the Change, stops it: no CAP_SYS_MODULE (EPERM), a
 * kernel built without module loading (ENOSYS), a read-only module tree.
 */
const REFUSED = /Operation not permitted|Permission denied|Function not implemented|Read-only file system/;
/** "Module X not found in directory /lib/modules/…": a refusal only where there are no modules at all. */
const NOT_FOUND = /not found in directory/;
// A host whose running kernel has an indexed module tree can load modules: a module missing
// from it is a missing module (a misspelt name, another kernel), not a host that forbids loading.
const HAS_MODULES = 'test -f "/lib/modules/$(uname -r)/modules.dep"';

function kmodChange(change: Change): { c: KmodChange; name: string; parameters: Record<string, string> } {
  if (change.section !== 'kernelModules') throw new TypeError(`${change.kind} is not a kernel module change`);
  const entry = change.kind === 'kmod.load' ? change.to : change.from;
  const at = change.kind === 'kmod.load' ? 'to' : 'from';
  const issues: Issue[] = [];
  if (!MODULE.test(change.key)) {
    issues.push({
      path: 'key',
      message: 'expected a module name: letters, digits, "_" and "-", not starting with "-"',
    });
  }
  if (entry !== null && entry.name !== change.key) {
    issues.push({ path: `${at}.name`, message: 'is not the change’s key' });
  }
  const parameters = entry?.parameters ?? {};
  for (const [name, value] of Object.entries(parameters)) {
    if (!PARAMETER.test(name)) {
      issues.push({
        path: `${at}.parameters.${name}`,
        message: 'expected a parameter name: letters, digits and "_"',
      });
    } else if (!VALUE.test(value)) {
      issues.push({
        path: `${at}.parameters.${name}`,
        message: 'the value holds white space, a quote or a control character, which no module parameter can',
      });
    }
  }
  if (issues.length > 0) {
    throw new InvalidInputError(
      `kernel module ${displayValue(change.key)}: ${issues.map((i) => `${i.path} ${i.message}`).join('; ')}`,
      issues,
    );
  }
  return { c: change, name: change.key, parameters };
}

const sysName = (name: string) => name.replaceAll('-', '_');

async function isLoaded(transport: Transport, name: string): Promise<boolean> {
  const result = await probe(
    transport,
    `checking module ${name}`,
    sh`test -d ${`/sys/module/${sysName(name)}`}`,
  );
  return result.exitCode === 0;
}

interface KmodPrior {
  readonly loaded: boolean;
}

const words = (parameters: Record<string, string>) => Object.entries(parameters).map(([n, v]) => `${n}=${v}`);

/** Runs modprobe; a refusal by the host is an unresolved outcome, any other failure an error. */
async function modprobe(
  transport: Transport,
  what: string,
  command: string,
): Promise<{ ok: true } | { ok: false; reason: string }> {
  const result: RunResult = await transport.run(command);
  if (result.exitCode === 0) return { ok: true };
  const said = result.stderr.trim();
  if (result.exitCode === 127) return { ok: false, reason: `${transport.target} has no modprobe` };
  if (REFUSED.test(said)) return { ok: false, reason: displayValue(said, 300) };
  if (NOT_FOUND.test(said) && (await transport.run(HAS_MODULES)).exitCode !== 0) {
    return {
      ok: false,
      reason: `${transport.target} has no kernel modules for its running kernel (${displayValue(said, 300)})`,
    };
  }
  throw new HostCommandError(what, command, result.exitCode, result.stderr, transport.target);
}

const load = (name: string, parameters: Record<string, string>) =>
  sh`modprobe -- ${name} ${words(parameters)}`.trimEnd();
const unload = (name: string) => sh`modprobe -r -- ${name}`;

export const kmodExecutor: Executor = {
  kinds: ['kmod.load', 'kmod.unload'],

  async prepare(ctx, change) {
    const { name } = kmodChange(change);
    const prior: KmodPrior = { loaded: await isLoaded(ctx.transport, name) };
    return prior;
  },

  async apply(ctx, change) {
    const { c, name, parameters } = kmodChange(change);
    const loaded = await isLoaded(ctx.transport, name);
    if (c.kind === 'kmod.load') {
      if (loaded) return unchanged(`${name} is loaded already`);
      const done = await modprobe(ctx.transport, `loading ${name}`, load(name, parameters));
      if (!done.ok) return unresolved(`${name} was not loaded: ${done.reason}`);
      return changed(
        `${name} loaded${Object.keys(parameters).length > 0 ? ` with ${words(parameters).join(' ')}` : ''}`,
      );
    }
    if (!loaded) return unchanged(`${name} is not loaded`);
    const done = await modprobe(ctx.transport, `unloading ${name}`, unload(name));
    if (!done.ok) return unresolved(`${name} was not unloaded: ${done.reason}`);
    return changed(`${name} unloaded`);
  },

  async revert(ctx, change, priorValue) {
    const { c, name } = kmodChange(change);
    const prior = priorValue as KmodPrior;
    const loaded = await isLoaded(ctx.transport, name);
    if (loaded === prior.loaded)
      return unchanged(`${name} is ${loaded ? 'loaded' : 'not loaded'}, as before`);
    if (prior.loaded) {
      const parameters = c.kind === 'kmod.unload' ? kmodChange(change).parameters : {};
      const done = await modprobe(ctx.transport, `loading ${name} again`, load(name, parameters));
      if (!done.ok)
        throw new HostCommandError(
          `loading ${name} again`,
          load(name, parameters),
          1,
          done.reason,
          ctx.transport.target,
        );
      return changed(`${name} loaded again`);
    }
    const done = await modprobe(ctx.transport, `unloading ${name} again`, unload(name));
    if (!done.ok)
      throw new HostCommandError(
        `unloading ${name} again`,
        unload(name),
        1,
        done.reason,
        ctx.transport.target,
      );
    return changed(`${name} unloaded again`);
  },
};
