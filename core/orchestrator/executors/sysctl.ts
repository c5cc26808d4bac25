// sysctl.set and sysctl.unset: the live value through `sysctl -w`, and the persisted one as a
// line of SYSCTL_FILE, so that it survives a reboot. Revert writes the live value read before
// and puts the file back as it was. sysctl.unset only drops the persisted line: the kernel has
// no "unset", so the live value stays until the next boot.
import type { Change } from '../../delta/changes.js';
import { InvalidInputError } from '../../errors.js';
import { displayValue, sh } from '../../transport/shell.js';
import type { Transport } from '../../transport/transport.js';
import { HostStateConflictError } from '../errors.js';
import { changed, type Executor, probe, runOk, unchanged } from './executor.js';
import { type FilePrior, prepareFile, probeFile, restoreFile, writeFile } from './files.js';

export const SYSCTL_FILE = '/etc/sysctl.d/60-persona.conf';

// Dotted or slashed names of /proc/sys entries; no glob (`*`), which only a reader may use.
const KEY = /^[a-z0-9_]+([./][A-Za-z0-9_-]+)+$/;

interface SysctlPrior {
  /** The live value before, spaces normalised; null when the kernel has no such key. */
  readonly live: string | null;
  readonly file: FilePrior;
}

type SysctlChange = Extract<Change, { section: 'sysctl' }>;

function sysctlChange(change: Change): SysctlChange {
  if (change.section !== 'sysctl') throw new TypeError(`${change.kind} is not a sysctl change`);
  if (!KEY.test(change.key)) {
    throw new InvalidInputError(`sysctl key ${displayValue(change.key)} is not one that can be written`, [
      { path: 'key', message: 'expected a key such as net.ipv4.ip_forward, without "*"' },
    ]);
  }
  if (change.to !== null && /\p{Cc}/u.test(change.to)) {
    throw new InvalidInputError(`sysctl ${change.key}: the value holds a control character`, [
      { path: 'to', message: 'contains a control character' },
    ]);
  }
  return change;
}

/** Multi-valued entries print tab-separated: values compare with their spaces normalised. */
const normal = (value: string) => value.trim().split(/\s+/).join(' ');

async function liveValue(transport: Transport, key: string): Promise<string | null> {
  const result = await probe(transport, `reading ${key}`, sh`sysctl -n -- ${key}`);
  return result.exitCode === 0 ? normal(result.stdout) : null;
}

const lineOf = (key: string, value: string) => `${key} = ${value}`;
const definesKey = (line: string, key: string) => {
  const eq = line.indexOf('=');
  return eq > 0 && line.slice(0, eq).trim().replaceAll('/', '.') === key.replaceAll('/', '.');
};

/**
 * The file with the key's line replaced where it stands (appended when new, dropped when
 * `line` is undefined): a key already persisted as wanted leaves the file byte for byte as it
 * is, so a second apply rewrites nothing.
 */
function withKey(text: string, key: string, line: string | undefined): string {
  const lines = text === '' ? [] : text.replace(/\n$/, '').split('\n');
  const at = lines.findIndex((l) => definesKey(l, key));
  const out = lines.filter((l, i) => !definesKey(l, key) || (i === at && line !== undefined));
  if (line !== undefined) {
    const kept = out.findIndex((l) => definesKey(l, key));
    if (kept < 0) out.push(line);
    else out[kept] = line;
  }
  return out.length === 0 ? '' : `${out.join('\n')}\n`;
}

async function setLive(transport: Transport, key: string, value: string): Promise<void> {
  await runOk(transport, `setting ${key}`, sh`sysctl -q -w -- ${`${key}=${value}`}`);
  const now = await liveValue(transport, key);
  if (now !== normal(value)) {
    throw new HostStateConflictError(
      `the kernel took ${key} = ${displayValue(value)} as ${displayValue(now ?? '(nothing)')}`,
      'sysctl.set',
      key,
    );
  }
}

export const sysctlExecutor: Executor = {
  kinds: ['sysctl.set', 'sysctl.unset'],

  async prepare(ctx, change) {
    const c = sysctlChange(change);
    const prior: SysctlPrior = {
      live: await liveValue(ctx.transport, c.key),
      file: await prepareFile(ctx, SYSCTL_FILE, `${c.kind} ${c.key}`),
    };
    return prior;
  },

  async apply(ctx, change) {
    const c = sysctlChange(change);
    // Compared with the host as it is now, not as prepare saw it: an apply finished after a
    // crash finds its own earlier work and leaves it.
    const live = await liveValue(ctx.transport, c.key);
    if (c.kind === 'sysctl.set' && live === null) {
      throw new HostStateConflictError(
        `the kernel of ${ctx.transport.target} has no ${c.key}`,
        c.kind,
        c.key,
      );
    }
    const { state } = await probeFile(ctx.transport, SYSCTL_FILE, `${c.kind} ${c.key}`);
    if (state.kind === 'other') {
      throw new HostStateConflictError(
        `${SYSCTL_FILE} is a ${state.type} on the host, not a file`,
        c.kind,
        c.key,
      );
    }
    const text =
      state.kind === 'file'
        ? (await runOk(ctx.transport, `reading ${SYSCTL_FILE}`, sh`cat -- ${SYSCTL_FILE}`)).stdout
        : '';
    const value = c.to;
    const next = withKey(text, c.key, value === null ? undefined : lineOf(c.key, value));
    const liveDone = value === null || live === normal(value);
    if (next === text && liveDone)
      return unchanged(`${c.key} is already ${value === null ? 'not persisted' : value}`);
    if (value !== null && !liveDone) await setLive(ctx.transport, c.key, value);
    if (next === '' && text !== '') {
      // The file is Persona's own: with no line left it goes, rather than stay empty.
      await runOk(ctx.transport, `removing ${SYSCTL_FILE}`, sh`rm -f -- ${SYSCTL_FILE}`);
    } else if (next !== text) {
      const attrs =
        state.kind === 'file'
          ? { mode: Number.parseInt(state.mode, 8), owner: state.owner, group: state.group }
          : { mode: 0o644, owner: 'root', group: 'root' };
      await writeFile(ctx.transport, SYSCTL_FILE, Buffer.from(next, 'utf8'), attrs);
    }
    return changed(
      value === null ? `${c.key} no longer persisted` : `${c.key} = ${value}, live and persisted`,
    );
  },

  async revert(ctx, change, priorValue) {
    const c = sysctlChange(change);
    const prior = priorValue as SysctlPrior;
    let did = false;
    if (prior.live !== null && (await liveValue(ctx.transport, c.key)) !== prior.live) {
      await setLive(ctx.transport, c.key, prior.live);
      did = true;
    }
    if ((await restoreFile(ctx.transport, prior.file)) === 'restored') did = true;
    return did
      ? changed(`${c.key} is back to ${prior.live ?? 'its previous state'}`)
      : unchanged(`${c.key} is as it was`);
  },
};
