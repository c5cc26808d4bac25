// file.write and file.delete: a regular file with its content (by hash, from the ContentSource),
// a sealed file (content opened from its secret reference, in memory, for this write only), a
// folder, or a symbolic link, each with its owner and mode. Nothing is written through a link in
// a folder above the path, and a folder or link at the path is replaced only by what the Change
// says it is.
import type { Change } from '../../delta/changes.js';
import { InvalidInputError, NotFoundError } from '../../errors.js';
import type { ConfigFile } from '../../profile/schema.js';
import { sh } from '../../transport/shell.js';
import { HostStateConflictError } from '../errors.js';
import type { Outcome } from '../journal.js';
import {
  accountNameProblem,
  changed,
  type Executor,
  type ExecutorContext,
  runOk,
  type SurveyContext,
  unchanged,
  unresolved,
} from './executor.js';
import {
  type EntryState,
  type FileAttributes,
  type FilePrior,
  fileMatches,
  prepareEntry,
  probeEntry,
  restoreFile,
  sameAttributes,
  sha256Hex,
  surveyEntries,
  writeDirectory,
  writeFile,
  writeSymlink,
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

function attributesOf(file: ConfigFile, now: EntryState, fallbackMode: number): FileAttributes {
  const existing = now.kind === 'file' || now.kind === 'directory' ? now : undefined;
  return {
    mode:
      file.mode !== undefined
        ? Number.parseInt(file.mode, 8)
        : existing
          ? Number.parseInt(existing.mode, 8)
          : fallbackMode,
    owner: ownerName(file.owner ?? existing?.owner ?? 'root', 'owner'),
    group: ownerName(file.group ?? existing?.group ?? 'root', 'group'),
  };
}

/**
 * What prepare read, when apply runs right after it: the whole state, except for a sealed
 * file, whose hash the prior leaves out (the host is read again for it).
 */
function freshState(ctx: ExecutorContext, prior: unknown): EntryState | undefined {
  if (!ctx.fresh || prior === null || typeof prior !== 'object') return undefined;
  const state = (prior as FilePrior).state;
  if (state === undefined || (state.kind === 'file' && state.sha256 === undefined)) return undefined;
  return state as EntryState;
}

/** A file whose content is a sealed secret: opened through its reference, never by hash. */
const isSealed = (file: ConfigFile) => file.type === 'file' && file.secretRef !== undefined;

const modeText = (mode: number) => mode.toString(8).padStart(4, '0');

/** What is at the path is not what this Change may replace. */
function refuse(c: FileChange, now: EntryState, wanted: string): never {
  const what =
    now.kind === 'other'
      ? `a ${now.type}`
      : now.kind === 'symlink'
        ? 'a symbolic link'
        : `a ${now.kind === 'directory' ? 'folder' : now.kind}`;
  throw new HostStateConflictError(`${c.key} is ${what} on the host, not ${wanted}`, c.kind, c.key);
}

export const fileExecutor: Executor = {
  kinds: ['file.write', 'file.delete'],

  async survey(ctx, changes) {
    const list = changes.map(fileChange);
    // A survey that cannot be read answers nothing: each Change then reads the host itself,
    // and says what is wrong there.
    const states = await surveyEntries(
      ctx.transport,
      list.map((c) => c.key),
    ).catch(() => list.map(() => undefined));
    return Promise.all(list.map((c, i) => alreadyDone(ctx, c, states[i]).catch(() => undefined)));
  },

  async prepare(ctx, change) {
    const c = fileChange(change);
    const entry = (c.to ?? c.from) as ConfigFile;
    return prepareEntry(ctx, c.key, `${c.kind} ${c.key}`, { sealed: isSealed(entry) });
  },

  async apply(ctx: ExecutorContext, change, prior) {
    const c = fileChange(change);
    // Compared with the host as it is now, not as prepare saw it: an apply finished after a
    // crash finds its own earlier work and leaves it. Right after prepare, what it read is now.
    const now =
      freshState(ctx, prior) ?? (await probeEntry(ctx.transport, c.key, `${c.kind} ${c.key}`)).state;
    if (now.kind === 'other') refuse(c, now, 'a file, folder or link');
    if (c.kind === 'file.delete') return deleteEntry(ctx, c, (c.from as ConfigFile).type, now);
    const file = c.to as ConfigFile;
    if (file.type === 'directory') return writeFolder(ctx, c, file, now);
    if (file.type === 'symlink') return writeLink(ctx, c, file, now);
    if (now.kind !== 'absent' && now.kind !== 'file') refuse(c, now, 'a file');
    return isSealed(file) ? writeSealed(ctx, c, file, now) : writeRegular(ctx, c, file, now);
  },

  async revert(ctx, change, prior) {
    const c = fileChange(change);
    const result = await restoreFile(ctx.transport, prior as FilePrior);
    return result === 'unchanged' ? unchanged(`${c.key} is as it was`) : changed(`restored ${c.key}`);
  },
};

async function deleteEntry(ctx: ExecutorContext, c: FileChange, type: ConfigFile['type'], now: EntryState) {
  if (now.kind === 'absent') return unchanged(`${c.key} is already absent`);
  if (type === 'directory') {
    if (now.kind !== 'directory') refuse(c, now, 'a folder');
    // Only an empty folder: what it holds is other Changes' to delete (and a revert to put back).
    const { stdout } = await runOk(
      ctx.transport,
      `removing ${c.key}`,
      sh`if rmdir -- ${c.key} 2>/dev/null; then echo removed; else echo kept; fi`,
    );
    if (stdout.trim() !== 'removed') {
      throw new HostStateConflictError(`${c.key} is a folder that is not empty: not deleted`, c.kind, c.key);
    }
    return changed(`deleted the folder ${c.key}`);
  }
  if (now.kind !== (type === 'symlink' ? 'symlink' : 'file'))
    refuse(c, now, type === 'symlink' ? 'a symbolic link' : 'a file');
  await runOk(ctx.transport, `deleting ${c.key}`, sh`rm -f -- ${c.key}`);
  return changed(`deleted ${c.key}`);
}

async function writeFolder(ctx: ExecutorContext, c: FileChange, file: ConfigFile, now: EntryState) {
  if (now.kind !== 'absent' && now.kind !== 'directory') refuse(c, now, 'a folder');
  const attrs = attributesOf(file, now, 0o755);
  if (now.kind === 'directory' && sameAttributes(now, attrs))
    return unchanged(`${c.key} is already a folder with that owner and mode`);
  await writeDirectory(ctx.transport, c.key, attrs, now.kind === 'directory');
  return changed(
    `${now.kind === 'directory' ? 'set' : 'made'} the folder ${c.key} (${attrs.owner}:${attrs.group}, ${modeText(attrs.mode)})`,
  );
}

async function writeLink(ctx: ExecutorContext, c: FileChange, file: ConfigFile, now: EntryState) {
  // A folder is never replaced by a link: what it holds would be gone, and no revert has it.
  if (now.kind === 'directory') refuse(c, now, 'a symbolic link');
  const target = file.target as string;
  const owner = ownerName(file.owner ?? 'root', 'owner');
  const group = ownerName(file.group ?? 'root', 'group');
  if (now.kind === 'symlink' && now.target === target && now.owner === owner && now.group === group)
    return unchanged(`${c.key} already links to its target`);
  await writeSymlink(ctx.transport, c.key, target, owner, group);
  return changed(`linked ${c.key} (${owner}:${group})`);
}

async function writeRegular(ctx: ExecutorContext, c: FileChange, file: ConfigFile, now: EntryState) {
  // An HMAC names sealed content; without its reference there is nothing to open.
  if (file.hash === undefined || !file.hash.startsWith('sha256:'))
    return unresolved(`${c.key}: its content is sealed and the entry holds no reference to open it`);
  const hash = file.hash.slice('sha256:'.length);
  const attrs = attributesOf(file, now, 0o644);
  if (fileMatches(now, hash, attrs)) return unchanged(`${c.key} already holds that content, owner and mode`);
  const content = await ctx.contents.read(file.hash, c.key);
  if (sha256Hex(content) !== hash) {
    throw new HostStateConflictError(
      `the content given for ${c.key} does not hash to ${file.hash}`,
      c.kind,
      c.key,
    );
  }
  await writeFile(ctx.transport, c.key, content, attrs);
  return changed(
    `wrote ${c.key} (${content.byteLength} bytes, ${attrs.owner}:${attrs.group}, ${modeText(attrs.mode)})`,
  );
}

/**
 * The sealed content is opened in memory for this write and compared with the host by its
 * SHA-256 there; no outcome, message or journal entry holds the bytes, their size or their hash.
 */
async function writeSealed(ctx: ExecutorContext, c: FileChange, file: ConfigFile, now: EntryState) {
  const ref = file.secretRef;
  const open = ctx.contents.readSealed;
  if (ref === undefined || open === undefined) {
    throw new NotFoundError(
      `${c.key} holds sealed content, and this apply was given no way to open sealed secrets`,
      c.key,
    );
  }
  const content = await open.call(ctx.contents, ref, `files ${c.key} secretRef`);
  const hash = sha256Hex(content);
  const mismatch =
    (file.size !== undefined && content.byteLength !== file.size) ||
    (file.hash?.startsWith('sha256:') === true && file.hash !== `sha256:${hash}`);
  if (mismatch) {
    throw new HostStateConflictError(
      `the sealed content opened for ${c.key} is not the one its Profile version recorded`,
      c.kind,
      c.key,
    );
  }
  const attrs = attributesOf(file, now, 0o600);
  const detail = `${attrs.owner}:${attrs.group}, ${modeText(attrs.mode)}`;
  if (fileMatches(now, hash, attrs))
    return unchanged(`${c.key} already holds its sealed content (${detail})`);
  await writeFile(ctx.transport, c.key, content, attrs, { sealed: true });
  return changed(`wrote ${c.key} (sealed content, ${detail})`);
}

/**
 * The outcome apply would come to without writing, from the state a survey read: the same
 * checks and the same words as the write functions above, or `undefined` where apply must look
 * for itself (it would write, refuse, or needs what the survey does not read).
 */
async function alreadyDone(
  ctx: SurveyContext,
  c: FileChange,
  now: EntryState | undefined,
): Promise<Outcome | undefined> {
  if (now === undefined || now.kind === 'other') return undefined;
  if (c.kind === 'file.delete')
    return now.kind === 'absent' ? unchanged(`${c.key} is already absent`) : undefined;
  const file = c.to as ConfigFile;
  if (file.type === 'directory') {
    return now.kind === 'directory' && sameAttributes(now, attributesOf(file, now, 0o755))
      ? unchanged(`${c.key} is already a folder with that owner and mode`)
      : undefined;
  }
  if (file.type === 'symlink') {
    const owner = ownerName(file.owner ?? 'root', 'owner');
    const group = ownerName(file.group ?? 'root', 'group');
    return now.kind === 'symlink' && now.target === file.target && now.owner === owner && now.group === group
      ? unchanged(`${c.key} already links to its target`)
      : undefined;
  }
  if (now.kind !== 'absent' && now.kind !== 'file') return undefined;
  if (!isSealed(file)) {
    if (file.hash === undefined || !file.hash.startsWith('sha256:'))
      return unresolved(`${c.key}: its content is sealed and the entry holds no reference to open it`);
    return fileMatches(now, file.hash.slice('sha256:'.length), attributesOf(file, now, 0o644))
      ? unchanged(`${c.key} already holds that content, owner and mode`)
      : undefined;
  }
  const ref = file.secretRef;
  const open = ctx.contents.readSealed;
  if (now.kind !== 'file' || ref === undefined || open === undefined) return undefined;
  const content = await open.call(ctx.contents, ref, `files ${c.key} secretRef`);
  const hash = sha256Hex(content);
  if (file.size !== undefined && content.byteLength !== file.size) return undefined;
  if (file.hash?.startsWith('sha256:') === true && file.hash !== `sha256:${hash}`) return undefined;
  const attrs = attributesOf(file, now, 0o600);
  return fileMatches(now, hash, attrs)
    ? unchanged(
        `${c.key} already holds its sealed content (${attrs.owner}:${attrs.group}, ${modeText(attrs.mode)})`,
      )
    : undefined;
}
