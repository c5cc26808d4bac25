// Files on a host, as the executors change them: read a file's state, keep its bytes on the
// host before it changes, write a new one atomically with its owner and mode and verify it by
// SHA-256 once it has landed, and put back what was there. The bytes a file held before stay on
// the target (under BACKUP_ROOT, root only), never in the journal: they may be secret, and a
// revert after the control side died must find them without it.
import { createHash } from 'node:crypto';
import { checkPath } from '../../transport/paths.js';
import { octalMode, sh } from '../../transport/shell.js';
import type { Transport } from '../../transport/transport.js';
import { HostStateConflictError, VerificationError } from '../errors.js';
import { checkOperation } from '../journal.js';
import { type ExecutorContext, runOk } from './executor.js';

/** Where executors keep the bytes of files they replace, one folder per operation. */
export const BACKUP_ROOT = '/var/lib/persona/backup';

export type FileState =
  | { readonly kind: 'absent' }
  | {
      readonly kind: 'file';
      /** Octal permission bits, as `stat -c %a` prints them. */
      readonly mode: string;
      readonly owner: string;
      readonly group: string;
      readonly sha256: string;
    }
  | { readonly kind: 'other'; readonly type: string };

export interface FilePrior {
  readonly path: string;
  readonly state: FileState;
  /** Folders above the path that did not exist, outermost first: revert removes them if empty. */
  readonly createdDirs: readonly string[];
  /** Where the file's bytes were kept on the host, when there was a file. */
  readonly backup?: string;
}

export const sha256Hex = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

/** The folders above `path`, outermost first: /etc/app/x.conf → /etc, /etc/app. */
function ancestors(path: string): string[] {
  const names = path.slice(1).split('/');
  return names.slice(0, -1).map((_, i) => `/${names.slice(0, i + 1).join('/')}`);
}

/**
 * The file's state and its missing ancestors. A symlink at the path or above it is refused: a
 * write through it would land somewhere the Change does not name.
 */
export async function probeFile(
  transport: Transport,
  path: string,
  field: string,
): Promise<{ state: FileState; missing: string[] }> {
  checkPath(path, field);
  const dirs = ancestors(path);
  const script = [
    sh`p=${path}`,
    'if [ -L "$p" ]; then echo "other symbolic link"',
    'elif [ -f "$p" ]; then echo "file $(stat -c \'%a %U %G\' -- "$p") $(sha256sum < "$p" | cut -d\' \' -f1)"',
    'elif [ -e "$p" ]; then echo "other $(stat -c %F -- "$p")"',
    'else echo absent; fi',
    ...(dirs.length === 0
      ? []
      : [
          sh`for d in ${dirs}; do`,
          '  if [ -L "$d" ]; then echo "link $d"; elif [ ! -e "$d" ]; then echo "missing $d";',
          '  elif [ ! -d "$d" ]; then echo "notdir $d"; fi',
          'done',
        ]),
  ].join('\n');
  const { stdout } = await runOk(transport, `reading ${path}`, script);
  // Paths obey the grammar (no control characters), so one per line reads back unambiguously.
  const [first = '', ...rest] = stdout.split('\n').filter((l) => l !== '');
  const missing: string[] = [];
  for (const line of rest) {
    const space = line.indexOf(' ');
    const what = line.slice(0, space);
    const dir = line.slice(space + 1);
    if (what === 'missing') missing.push(dir);
    else {
      throw new HostStateConflictError(
        `${path} is below ${dir}, which is ${what === 'link' ? 'a symbolic link' : 'not a folder'}: refusing to write through it`,
        'file',
        path,
      );
    }
  }
  return { state: parseState(first, path), missing };
}

function parseState(line: string, path: string): FileState {
  if (line === 'absent') return { kind: 'absent' };
  const [kind, ...fields] = line.split(' ');
  if (kind === 'other') return { kind: 'other', type: fields.join(' ') };
  const [mode, owner, group, sha256] = fields;
  if (kind !== 'file' || mode === undefined || owner === undefined || group === undefined || !sha256) {
    throw new HostStateConflictError(
      `could not read the state of ${path} (${JSON.stringify(line)})`,
      'file',
      path,
    );
  }
  return { kind: 'file', mode, owner, group, sha256 };
}

/** Keeps the file's bytes, owner and mode on the host, under the operation's backup folder. */
export async function backupFile(ctx: ExecutorContext, path: string): Promise<string> {
  const dir = `${BACKUP_ROOT}/${checkOperation(ctx.operation)}`;
  const backup = `${dir}/${ctx.seq}`;
  await runOk(
    ctx.transport,
    `keeping ${path}`,
    sh`umask 077 && mkdir -p -- ${dir} && cp -p -- ${path} ${backup}`,
  );
  return backup;
}

/** What a file Change reads before it writes: the state, the missing folders, and a backup. */
export async function prepareFile(ctx: ExecutorContext, path: string, field: string): Promise<FilePrior> {
  const { state, missing } = await probeFile(ctx.transport, path, field);
  if (state.kind === 'other') {
    throw new HostStateConflictError(`${path} is a ${state.type} on the host, not a file`, 'file', path);
  }
  const backup = state.kind === 'file' ? await backupFile(ctx, path) : undefined;
  return { path, state, createdDirs: missing, ...(backup === undefined ? {} : { backup }) };
}

export interface FileAttributes {
  readonly mode: number;
  readonly owner: string;
  readonly group: string;
}

export const sameMode = (a: string, b: number) => Number.parseInt(a, 8) === b;

/** The file is already these bytes with these attributes. */
export function fileMatches(state: FileState, sha256: string, attrs: FileAttributes): boolean {
  return (
    state.kind === 'file' &&
    state.sha256 === sha256 &&
    sameMode(state.mode, attrs.mode) &&
    state.owner === attrs.owner &&
    state.group === attrs.group
  );
}

/**
 * Replaces `path` with `content`: folders above it created (0755), the bytes written to a
 * temporary file beside it with umask 077, given their owner and mode, checked by SHA-256, and
 * renamed over the path, so the host never has half a file or a file readable before its mode;
 * then the landed file is hashed again.
 */
export async function writeFile(
  transport: Transport,
  path: string,
  content: Uint8Array,
  attrs: FileAttributes,
): Promise<void> {
  checkPath(path, 'path');
  const expected = sha256Hex(content);
  const parent = path.slice(0, path.lastIndexOf('/')) || '/';
  const script = [
    'set -e',
    sh`p=${path}`,
    sh`umask 022 && mkdir -p -- ${parent}`,
    't="$p.persona-$$"',
    'trap \'rm -f -- "$t"\' EXIT',
    'umask 077',
    'cat > "$t"',
    sh`chown -- ${`${attrs.owner}:${attrs.group}`} "$t"`,
    sh`chmod -- ${octalMode(attrs.mode)} "$t"`,
    sh`[ "$(sha256sum < "$t" | cut -d' ' -f1)" = ${expected} ] || { echo 'content changed on the way' >&2; exit 47; }`,
    // A symlink that appeared since the probe is replaced, not followed: mv renames over it.
    'mv -f -- "$t" "$p"',
    'trap - EXIT',
  ].join('\n');
  await runOk(transport, `writing ${path}`, script, content);
  await verifyFile(transport, path, expected);
}

export async function verifyFile(transport: Transport, path: string, sha256: string): Promise<void> {
  const { stdout } = await runOk(transport, `hashing ${path}`, sh`sha256sum < ${path} | cut -d' ' -f1`);
  const actual = stdout.trim();
  if (actual !== sha256) throw new VerificationError(path, `sha256:${sha256}`, `sha256:${actual}`);
}

/** Puts back what `prior` saw: the kept file with its owner and mode, or no file and no new folders. */
export async function restoreFile(transport: Transport, prior: FilePrior): Promise<'restored' | 'unchanged'> {
  const path = checkPath(prior.path, 'path');
  const now = await probeFile(transport, path, 'path').catch(() => undefined);
  if (prior.state.kind === 'file') {
    if (now !== undefined && now.state.kind === 'file' && sameFile(now.state, prior.state))
      return 'unchanged';
    if (prior.backup === undefined)
      throw new HostStateConflictError(`no copy of ${path} was kept`, 'file', path);
    const backup = checkPath(prior.backup, 'backup');
    const script = [
      'set -e',
      sh`p=${path}`,
      sh`[ -f ${backup} ] || { echo 'the kept copy is gone' >&2; exit 44; }`,
      't="$p.persona-$$"',
      'trap \'rm -f -- "$t"\' EXIT',
      sh`cp -p -- ${backup} "$t"`,
      'mv -f -- "$t" "$p"',
      'trap - EXIT',
    ].join('\n');
    await runOk(transport, `restoring ${path}`, script);
    await verifyFile(transport, path, prior.state.sha256);
    return 'restored';
  }
  const dirs = prior.createdDirs.toReversed();
  const present = now === undefined || now.state.kind !== 'absent';
  const dirsLeft = dirs.some((d) => !now?.missing.includes(d));
  if (!present && !dirsLeft) return 'unchanged';
  // Only a file the apply may have written is removed; a folder it made goes only if empty.
  const script = [
    sh`p=${path}`,
    'if [ -f "$p" ] || [ -L "$p" ]; then rm -f -- "$p" || exit 1; fi',
    ...(dirs.length === 0 ? [] : [sh`for d in ${dirs}; do rmdir -- "$d" 2>/dev/null || true; done`]),
  ].join('\n');
  await runOk(transport, `removing ${path}`, script);
  return 'restored';
}

const sameFile = (a: FileState & { kind: 'file' }, b: FileState & { kind: 'file' }) =>
  a.sha256 === b.sha256 && a.mode === b.mode && a.owner === b.owner && a.group === b.group;

/** Drops the operation's kept copies once they are no longer needed (committed or rolled back). */
export async function removeBackups(transport: Transport, operation: string): Promise<void> {
  const dir = `${BACKUP_ROOT}/${checkOperation(operation)}`;
  const parents = [BACKUP_ROOT, BACKUP_ROOT.slice(0, BACKUP_ROOT.lastIndexOf('/'))];
  await runOk(
    transport,
    'removing kept copies',
    sh`rm -rf -- ${dir} && for d in ${parents}; do rmdir -- "$d" 2>/dev/null || true; done`,
  );
}
