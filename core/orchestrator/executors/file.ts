// file.write and file.delete: a regular file with its content (by hash, from the ContentSource),
// owner and mode. Directories, symlinks and sealed (hmac-sha256) files are not written yet: they
// come back unresolved, so the plan says so instead of pretending.
import type { Change } from '../../delta/changes.js';
import { InvalidInputError } from '../../errors.js';
import type { ConfigFile } from '../../profile/schema.js';
import { sh } from '../../transport/shell.js';
import { HostStateConflictError } from '../errors.js';
import {
  accountNameProblem,
  changed,
  type Executor,
  type ExecutorContext,
  runOk,
  unchanged,
  unresolved,
} from './executor.js';
import {
  type FileAttributes,
  type FilePrior,
  fileMatches,
  prepareFile,
  probeFile,
  restoreFile,
  sha256Hex,
  writeFile,
} from './files.js';

type FileChange = Extract<Change, { section: 'files' }>;

function fileChange(change: Change): FileChange {
  if (change.section !== 'files') throw new TypeError(`${change.kind} is not a file change`);
  return change;
}

function ownerName(value: string, field: string): string {
  if (/^\d+$/.test(value)) return value;
  const problem = accountNameProblem(value);
  if (problem !== undefined)
    throw new InvalidInputError(`${field} ${JSON.stringify(value)} ${problem}`, [
      { path: field, message: problem },
    ]);
  return value;
}

function attributesOf(file: ConfigFile, prior: FilePrior): FileAttributes {
  const existing = prior.state.kind === 'file' ? prior.state : undefined;
  return {
    mode:
      file.mode !== undefined
        ? Number.parseInt(file.mode, 8)
        : existing
          ? Number.parseInt(existing.mode, 8)
          : 0o644,
    owner: ownerName(file.owner ?? existing?.owner ?? 'root', 'owner'),
    group: ownerName(file.group ?? existing?.group ?? 'root', 'group'),
  };
}

/** Why this file cannot be written yet, if it cannot. */
function unsupported(file: ConfigFile): string | undefined {
  if (file.type !== 'file') return `a ${file.type} is not written by this executor yet`;
  if (file.hash === undefined || !file.hash.startsWith('sha256:')) {
    return 'its content is a sealed secret, which this executor does not open yet';
  }
  return undefined;
}

export const fileExecutor: Executor = {
  kinds: ['file.write', 'file.delete'],

  async prepare(ctx, change) {
    const c = fileChange(change);
    return prepareFile(ctx, c.key, `${c.kind} ${c.key}`);
  },

  async apply(ctx: ExecutorContext, change, prior) {
    const c = fileChange(change);
    const before = prior as FilePrior;
    // Compared with the host as it is now, not as prepare saw it: an apply finished after a
    // crash finds its own earlier work and leaves it.
    const now = await probeFile(ctx.transport, c.key, `${c.kind} ${c.key}`);
    if (now.state.kind === 'other') {
      throw new HostStateConflictError(
        `${c.key} is a ${now.state.type} on the host, not a file`,
        c.kind,
        c.key,
      );
    }
    if (c.kind === 'file.delete') {
      if (now.state.kind === 'absent') return unchanged(`${c.key} is already absent`);
      await runOk(ctx.transport, `deleting ${c.key}`, sh`rm -f -- ${c.key}`);
      return changed(`deleted ${c.key}`);
    }
    const file = c.to as ConfigFile;
    const why = unsupported(file);
    if (why !== undefined) return unresolved(`${c.key}: ${why}`);
    const hash = (file.hash as string).slice('sha256:'.length);
    const attrs = attributesOf(file, before);
    if (fileMatches(now.state, hash, attrs))
      return unchanged(`${c.key} already holds that content, owner and mode`);
    const content = await ctx.contents.read(file.hash as string, c.key);
    if (sha256Hex(content) !== hash) {
      throw new HostStateConflictError(
        `the content given for ${c.key} does not hash to ${file.hash}`,
        c.kind,
        c.key,
      );
    }
    await writeFile(ctx.transport, c.key, content, attrs);
    return changed(
      `wrote ${c.key} (${content.byteLength} bytes, ${attrs.owner}:${attrs.group}, ${attrs.mode.toString(8).padStart(4, '0')})`,
    );
  },

  async revert(ctx, change, prior) {
    const c = fileChange(change);
    const result = await restoreFile(ctx.transport, prior as FilePrior);
    return result === 'unchanged' ? unchanged(`${c.key} is as it was`) : changed(`restored ${c.key}`);
  },
};
