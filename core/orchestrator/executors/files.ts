// Files, folders and symbolic links on a host, as the executors change them: read what is at a
// path (never following a link), keep a file's bytes on the host before it changes, write a new
// one atomically with its owner and mode and verify it by SHA-256 once it has landed, and put
// back what was there. The bytes a file held before stay on the target (under BACKUP_ROOT, root
// only), never in the journal: they may be secret, and a revert after the control side died
// must find them without it.
import { createHash } from 'node:crypto';
import { InvalidInputError } from '../../errors.js';
import { checkPath, PATH_MAX_BYTES } from '../../transport/paths.js';
import { displayValue, octalMode, sh } from '../../transport/shell.js';
import type { Transport } from '../../transport/transport.js';
import { HostCommandError, HostStateConflictError, VerificationError } from '../errors.js';
import { checkOperation } from '../journal.js';
import { type ExecutorContext, runOk } from './executor.js';

/** Where executors keep the bytes of files they replace, one folder per operation. */
export const BACKUP_ROOT = '/var/lib/persona/backup';

/** What is at a path on the host, as the executors read it. Nothing is ever followed. */
export type EntryState =
  | { readonly kind: 'absent' }
  | {
      readonly kind: 'file';
      /** Octal permission bits, as `stat -c %a` prints them. */
      readonly mode: string;
      readonly owner: string;
      readonly group: string;
      readonly sha256: string;
    }
  | { readonly kind: 'directory'; readonly mode: string; readonly owner: string; readonly group: string }
  | {
      readonly kind: 'symlink';
      readonly owner: string;
      readonly group: string;
      /** What the link holds, as data: it may name anything, and is never followed. */
      readonly target: string;
    }
  | { readonly kind: 'other'; readonly type: string };

/** A file, or something that is not one (a folder and a link are named as such). */
export type FileState = Exclude<EntryState, { kind: 'directory' | 'symlink' }>;

/**
 * What a Change replaced, as the journal keeps it. A file whose content is sealed keeps no hash
 * here (a SHA-256 of a short secret is as good as the secret to whoever can guess it): its
 * restore is checked against the copy kept on the host instead.
 */
export type PriorState =
  | Exclude<EntryState, { kind: 'file' }>
  | (Omit<Extract<EntryState, { kind: 'file' }>, 'sha256'> & { readonly sha256?: string });

export interface FilePrior {
  readonly path: string;
  readonly state: PriorState;
  /** Folders above the path that did not exist, outermost first: revert removes them if empty. */
  readonly createdDirs: readonly string[];
  /** Where the file's bytes were kept on the host, when there was a file. */
  readonly backup?: string;
}

export const sha256Hex = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

/** The folders above `path`, outermost first: /etc/app/x.conf → /etc, /etc/app. */
export function ancestors(path: string): string[] {
  const names = path.slice(1).split('/');
  return names.slice(0, -1).map((_, i) => `/${names.slice(0, i + 1).join('/')}`);
}

const parentOf = (path: string) => path.slice(0, path.lastIndexOf('/')) || '/';

// Exits of the write scripts that mean the host changed under them, not that a command failed.
const EXIT_LINKED = 48;
const EXIT_NOT_EMPTY = 46;

/**
 * Script lines that stop with EXIT_LINKED when a folder above `path` is a symbolic link: run
 * again right before a rename or mkdir, since one may have appeared since the probe.
 */
function refuseLinkedParents(path: string): string[] {
  const dirs = ancestors(path);
  return dirs.length === 0
    ? []
    : [
        sh`for d in ${dirs}; do if [ -L "$d" ]; then echo "$d is a symbolic link" >&2; exit ${EXIT_LINKED}; fi; done`,
      ];
}

/**
 * What is at `path` and which of its ancestors are missing. A symlink above the path is
 * refused: a write through it would land somewhere the Change does not name. A symlink at the
 * path is read (its target, as hex, so that any byte of it comes back as it is), not followed.
 */
export async function probeEntry(
  transport: Transport,
  path: string,
  field: string,
  keep?: { readonly dir: string; readonly backup: string },
): Promise<{ state: EntryState; missing: string[]; kept?: boolean }> {
  checkPath(path, field);
  const dirs = ancestors(path);
  const script = [
    sh`p=${path}`,
    'if [ -L "$p" ]; then echo "symlink $(stat -c \'%U %G\' -- "$p") $(readlink -n -- "$p" | od -An -v -tx1 | tr -d \' \\n\')"',
    'elif [ -f "$p" ]; then echo "file $(stat -c \'%a %U %G\' -- "$p") $(sha256sum < "$p" | cut -d\' \' -f1)"',
    'elif [ -d "$p" ]; then echo "directory $(stat -c \'%a %U %G\' -- "$p")"',
    'elif [ -e "$p" ]; then echo "other $(stat -c %F -- "$p")"',
    'else echo absent; fi',
    'linked=0',
    ...(dirs.length === 0
      ? []
      : [
          sh`for d in ${dirs}; do`,
          '  if [ -L "$d" ]; then echo "link $d"; linked=1; elif [ ! -e "$d" ]; then echo "missing $d";',
          '  elif [ ! -d "$d" ]; then echo "notdir $d"; linked=1; fi',
          'done',
        ]),
    // The bytes are kept in the same round trip, and only from a file reached without a link.
    ...(keep === undefined
      ? []
      : [
          'if [ "$linked" = 0 ] && [ -f "$p" ] && [ ! -L "$p" ]; then',
          sh`  (umask 077 && mkdir -p -- ${keep.dir} && cp -P -p -- "$p" ${keep.backup}) || exit 45`,
          '  echo kept',
          'fi',
        ]),
  ].join('\n');
  const { stdout } = await runOk(transport, `reading ${path}`, script);
  // Paths obey the grammar (no control characters) and a link's target comes as hex, so one
  // entry per line reads back unambiguously.
  const [first = '', ...rest] = stdout.split('\n').filter((l) => l !== '');
  const missing: string[] = [];
  let kept = false;
  for (const line of rest) {
    if (line === 'kept') {
      kept = true;
      continue;
    }
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
  return { state: parseState(first, path), missing, ...(keep === undefined ? {} : { kept }) };
}

/** Paths per survey command: their quoted names stay well below what one command line holds. */
const SURVEY_BATCH = 256;

/**
 * What is at each of `paths`, as probeEntry reads it, in one command per batch of paths: the
 * kind of each by shell tests, then one `stat` and one `sha256sum` over all the files, so the
 * cost is a few processes, not a few per path. `undefined` for a path below a symbolic link (a
 * write there is refused by probeEntry, which is left to say so). A path that changes kind
 * between the tests and the stat makes the counts disagree: the survey then fails as a whole.
 */
export async function surveyEntries(
  transport: Transport,
  paths: readonly string[],
): Promise<(EntryState | undefined)[]> {
  const out: (EntryState | undefined)[] = [];
  for (let i = 0; i < paths.length; i += SURVEY_BATCH) {
    out.push(...(await surveyBatch(transport, paths.slice(i, i + SURVEY_BATCH))));
  }
  return out;
}

async function surveyBatch(
  transport: Transport,
  paths: readonly string[],
): Promise<(EntryState | undefined)[]> {
  for (const [i, path] of paths.entries()) checkPath(path, `paths[${i}]`);
  const dirs = [...new Set(paths.flatMap(ancestors))];
  const each = (test: string, then: string) => `for p in "$@"; do if ${test}; then ${then}; fi; done`;
  const isFile = '[ -f "$p" ] && [ ! -L "$p" ]';
  const script = [
    ...(dirs.length === 0 ? [] : [sh`for d in ${dirs}; do if [ -L "$d" ]; then echo "link $d"; fi; done`]),
    'echo --',
    'for p in "$@"; do',
    '  if [ -L "$p" ]; then echo L; elif [ -f "$p" ]; then echo F; elif [ -d "$p" ]; then echo D;',
    '  elif [ -e "$p" ]; then echo O; else echo A; fi',
    'done',
    'echo --',
    `${each(isFile, 'printf \'%s\\0\' "$p"')} | xargs -0 -r stat -c '%a %U %G' --`,
    'echo --',
    `${each(isFile, 'printf \'%s\\0\' "$p"')} | xargs -0 -r sha256sum --`,
    'echo --',
    `${each('[ -d "$p" ] && [ ! -L "$p" ]', 'printf \'%s\\0\' "$p"')} | xargs -0 -r stat -c '%a %U %G' --`,
    'echo --',
    each(
      '[ -L "$p" ]',
      `echo "$(stat -c '%U %G' -- "$p") $(readlink -n -- "$p" | od -An -v -tx1 | tr -d ' \\n')"`,
    ),
    'echo --',
    each('[ ! -L "$p" ] && [ -e "$p" ] && [ ! -f "$p" ] && [ ! -d "$p" ]', 'stat -c %F -- "$p"'),
  ].join('\n');
  const { stdout } = await runOk(
    transport,
    `reading ${paths.length} paths`,
    `${sh`set -- ${paths}`}\n${script}`,
  );
  const [linkLines, kinds, fileStats, hashes, dirStats, links, others] = stdout
    .replace(/\n$/, '')
    .split(/^--$/m)
    .map((part) => part.split('\n').filter((l) => l !== ''));
  const unreadable = () =>
    new HostStateConflictError(
      `could not read the state of ${paths.length} paths at once`,
      'file',
      paths[0] ?? '',
    );
  if (!linkLines || !kinds || !fileStats || !hashes || !dirStats || !links || !others) throw unreadable();
  if (kinds.length !== paths.length) throw unreadable();
  const linked = new Set(linkLines.map((l) => l.slice('link '.length)));
  const take = (list: string[]) => {
    const line = list.shift();
    if (line === undefined) throw unreadable();
    return line;
  };
  const states = kinds.map((kind, i): EntryState | undefined => {
    const path = paths[i] as string;
    switch (kind) {
      case 'F': {
        const stat = take(fileStats);
        // sha256sum starts a line with "\" when it had to escape the name; the hash follows.
        const hash = take(hashes).replace(/^\\/, '').slice(0, 64);
        return parseState(`file ${stat} ${hash}`, path);
      }
      case 'D':
        return parseState(`directory ${take(dirStats)}`, path);
      case 'L':
        return parseState(`symlink ${take(links)}`, path);
      case 'O':
        return { kind: 'other', type: take(others) };
      case 'A':
        return { kind: 'absent' };
      default:
        throw unreadable();
    }
  });
  if (fileStats.length + hashes.length + dirStats.length + links.length + others.length > 0)
    throw unreadable();
  return states.map((state, i) =>
    ancestors(paths[i] as string).some((d) => linked.has(d)) ? undefined : state,
  );
}

/**
 * probeEntry for executors that write only regular files: a folder or a link at the path is
 * something else, which they refuse.
 */
export async function probeFile(
  transport: Transport,
  path: string,
  field: string,
): Promise<{ state: FileState; missing: string[] }> {
  const { state, missing } = await probeEntry(transport, path, field);
  if (state.kind === 'directory') return { state: { kind: 'other', type: 'directory' }, missing };
  if (state.kind === 'symlink') return { state: { kind: 'other', type: 'symbolic link' }, missing };
  return { state, missing };
}

function parseState(line: string, path: string): EntryState {
  if (line === 'absent') return { kind: 'absent' };
  const [kind, ...fields] = line.split(' ');
  if (kind === 'other') return { kind: 'other', type: fields.join(' ') };
  const [mode, owner, group, sha256] = fields;
  const unreadable = () =>
    new HostStateConflictError(`could not read the state of ${path} (${displayValue(line)})`, 'file', path);
  if (kind === 'symlink') {
    // stat prints no mode for a link: its fields are owner, group and the target's bytes.
    const [linkOwner, linkGroup, hex] = fields;
    if (linkOwner === undefined || linkGroup === undefined || !hex || !/^([0-9a-f]{2})+$/.test(hex))
      throw unreadable();
    const bytes = Buffer.from(hex, 'hex');
    const target = bytes.toString('utf8');
    // A target that is not UTF-8 could not be written back as it was: refuse to replace it.
    if (!Buffer.from(target, 'utf8').equals(bytes)) {
      throw new HostStateConflictError(
        `${path} is a symbolic link whose target is not UTF-8 text, which a revert could not put back`,
        'file',
        path,
      );
    }
    return { kind: 'symlink', owner: linkOwner, group: linkGroup, target };
  }
  if (kind === 'directory' && mode !== undefined && owner !== undefined && group !== undefined)
    return { kind: 'directory', mode, owner, group };
  if (kind !== 'file' || mode === undefined || owner === undefined || group === undefined || !sha256)
    throw unreadable();
  return { kind: 'file', mode, owner, group, sha256 };
}

/** Where the Change's copy of a file goes: one per Change, in the operation's folder. */
function backupPlace(ctx: ExecutorContext): { dir: string; backup: string } {
  const dir = `${BACKUP_ROOT}/${checkOperation(ctx.operation)}`;
  return { dir, backup: `${dir}/${ctx.seq}` };
}

/** Keeps the file's bytes, owner and mode on the host, under the operation's backup folder. */
export async function backupFile(ctx: ExecutorContext, path: string): Promise<string> {
  const { dir, backup } = backupPlace(ctx);
  await runOk(
    ctx.transport,
    `keeping ${path}`,
    sh`umask 077 && mkdir -p -- ${dir} && cp -P -p -- ${path} ${backup}`,
  );
  return backup;
}

/** What a file Change reads before it writes: the state, the missing folders, and a backup. */
export async function prepareFile(ctx: ExecutorContext, path: string, field: string): Promise<FilePrior> {
  const prior = await prepareEntry(ctx, path, field);
  const kind = prior.state.kind;
  if (kind === 'directory' || kind === 'symlink') {
    throw new HostStateConflictError(
      `${path} is a ${kind === 'directory' ? 'directory' : 'symbolic link'} on the host, not a file`,
      'file',
      path,
    );
  }
  return prior;
}

/**
 * prepareFile for a path that may also be a folder or a symbolic link (whose state is all a
 * revert needs: a folder's contents are not the Change's). `sealed`: the file's hash is not
 * kept in the prior, which the journal stores.
 */
export async function prepareEntry(
  ctx: ExecutorContext,
  path: string,
  field: string,
  options: { readonly sealed?: boolean } = {},
): Promise<FilePrior> {
  const keep = backupPlace(ctx);
  const { state, missing, kept: copied } = await probeEntry(ctx.transport, path, field, keep);
  if (state.kind === 'other') {
    throw new HostStateConflictError(`${path} is a ${state.type} on the host`, 'file', path);
  }
  // A file that appeared between the test and the read is kept by a second command.
  const backup = state.kind !== 'file' ? undefined : copied ? keep.backup : await backupFile(ctx, path);
  const kept: PriorState =
    state.kind === 'file' && options.sealed === true
      ? { kind: 'file', mode: state.mode, owner: state.owner, group: state.group }
      : state;
  return { path, state: kept, createdDirs: missing, ...(backup === undefined ? {} : { backup }) };
}

export interface FileAttributes {
  readonly mode: number;
  readonly owner: string;
  readonly group: string;
}

export const sameMode = (a: string, b: number) => Number.parseInt(a, 8) === b;

/** The file is already these bytes with these attributes. */
export function fileMatches(state: EntryState, sha256: string, attrs: FileAttributes): boolean {
  return state.kind === 'file' && state.sha256 === sha256 && sameAttributes(state, attrs);
}

/** The folder or file has this mode, owner and group. */
export const sameAttributes = (
  state: { readonly mode: string; readonly owner: string; readonly group: string },
  attrs: FileAttributes,
) => sameMode(state.mode, attrs.mode) && state.owner === attrs.owner && state.group === attrs.group;

/**
 * A folder's mode for chmod with five digits: GNU chmod keeps a folder's set-user-ID and
 * set-group-ID bits under a four-digit mode, so 0755 would not clear a 2755 folder's bit.
 */
const directoryMode = (mode: number) => `0${octalMode(mode)}`;

function checkedTarget(target: string, path: string): string {
  // Any byte but NUL is a link's data: a newline, "..", a leading "-" are all fine, quoted.
  const bytes = Buffer.byteLength(target, 'utf8');
  if (target === '' || target.includes('\0') || /\p{Cs}/u.test(target) || bytes > PATH_MAX_BYTES) {
    throw new InvalidInputError(
      `the symbolic link ${displayValue(path)} has a target no link can hold (empty, a NUL, a lone surrogate, or over ${PATH_MAX_BYTES} bytes)`,
      [{ path: 'target', message: 'not a symbolic link target' }],
    );
  }
  return target;
}

export interface WriteOptions {
  /** The content is a sealed secret: no message names its hash (see PriorState). */
  readonly sealed?: boolean;
}

/**
 * Replaces `path` with `content`: folders above it created (0755), the bytes written to a new
 * temporary file beside it (mktemp: O_EXCL, mode 0600), given their owner and mode, checked by
 * SHA-256, and renamed over the path, so the host never has half a file or a file readable
 * before its mode; then the landed file is hashed again. The expected hash goes on standard
 * input ahead of the bytes, not on the command line, which every user of the host can read.
 */
export async function writeFile(
  transport: Transport,
  path: string,
  content: Uint8Array,
  attrs: FileAttributes,
  options: WriteOptions = {},
): Promise<void> {
  checkPath(path, 'path');
  const expected = sha256Hex(content);
  const script = [
    'set -e',
    sh`p=${path}`,
    sh`umask 022 && mkdir -p -- ${parentOf(path)}`,
    ...refuseLinkedParents(path),
    'IFS= read -r h',
    't=$(mktemp -- "$p.persona-XXXXXX")',
    'trap \'rm -f -- "$t"\' EXIT',
    'cat > "$t"',
    sh`chown -- ${`${attrs.owner}:${attrs.group}`} "$t"`,
    sh`chmod -- ${octalMode(attrs.mode)} "$t"`,
    `[ "$(sha256sum < "$t" | cut -d' ' -f1)" = "$h" ] || { echo 'content changed on the way' >&2; exit 47; }`,
    // -T: a link to a folder that appeared at the path since the probe is replaced, not
    // followed (without it mv would move the file into that folder).
    'mv -T -f -- "$t" "$p"',
    'trap - EXIT',
    // Hashed again where it landed, in the same round trip.
    'sha256sum < "$p" | cut -d\' \' -f1',
  ].join('\n');
  const landed = await runScript(
    transport,
    `writing ${path}`,
    script,
    path,
    Buffer.concat([Buffer.from(`${expected}\n`), content]),
  );
  checkHash(path, expected, landed.trim(), options);
}

/** Runs a write script, naming a refusal of the host (a linked parent, a folder not empty). */
async function runScript(
  transport: Transport,
  what: string,
  script: string,
  path: string,
  stdin?: Uint8Array,
): Promise<string> {
  const result = await transport.run(script, stdin === undefined ? {} : { stdin });
  if (result.exitCode === EXIT_LINKED) {
    throw new HostStateConflictError(
      `${path} is below a symbolic link (${displayValue(result.stderr.trim())}): refusing to write through it`,
      'file',
      path,
    );
  }
  if (result.exitCode === EXIT_NOT_EMPTY) {
    throw new HostStateConflictError(
      `${path} is a folder that holds entries no Change of this operation made: left in place`,
      'file',
      path,
    );
  }
  if (result.exitCode !== 0)
    throw new HostCommandError(what, script, result.exitCode, result.stderr, transport.target);
  return result.stdout;
}

export async function verifyFile(
  transport: Transport,
  path: string,
  sha256: string,
  options: WriteOptions = {},
): Promise<void> {
  const { stdout } = await runOk(transport, `hashing ${path}`, sh`sha256sum < ${path} | cut -d' ' -f1`);
  checkHash(path, sha256, stdout.trim(), options);
}

function checkHash(path: string, sha256: string, actual: string, options: WriteOptions): void {
  if (actual === sha256) return;
  if (options.sealed === true)
    throw new VerificationError(path, "the sealed content's SHA-256", 'another SHA-256');
  throw new VerificationError(path, `sha256:${sha256}`, `sha256:${actual}`);
}

/**
 * Makes `path` a folder with these attributes: created (with any missing parents, 0755) when
 * absent, else given its owner and mode. Only a folder is changed: anything else is refused.
 */
export async function writeDirectory(
  transport: Transport,
  path: string,
  attrs: FileAttributes,
  exists: boolean,
): Promise<void> {
  checkPath(path, 'path');
  const script = [
    'set -e',
    sh`p=${path}`,
    ...(exists
      ? [`[ -d "$p" ] && [ ! -L "$p" ] || { echo 'it is no longer a folder' >&2; exit 1; }`]
      : [
          sh`umask 022 && mkdir -p -- ${parentOf(path)}`,
          ...refuseLinkedParents(path),
          'umask 077',
          'mkdir -- "$p"',
        ]),
    // chown first: it clears set-user-ID and set-group-ID bits that the chmod then sets.
    sh`chown -h -- ${`${attrs.owner}:${attrs.group}`} "$p"`,
    sh`chmod -- ${directoryMode(attrs.mode)} "$p"`,
  ].join('\n');
  await runScript(transport, `making the folder ${path}`, script, path);
  const { state } = await probeEntry(transport, path, 'path');
  if (state.kind !== 'directory' || !sameAttributes(state, attrs)) {
    throw new VerificationError(path, describeAttrs('a folder', attrs), describeState(state));
  }
}

/**
 * Makes `path` a symbolic link to `target` owned by `owner:group`: the link made beside it
 * (ln -s, which never replaces what is there) and renamed over the path with mv -T, so the path
 * is the old entry or the new link at every moment and a folder there is never entered.
 */
export async function writeSymlink(
  transport: Transport,
  path: string,
  target: string,
  owner: string,
  group: string,
): Promise<void> {
  checkPath(path, 'path');
  checkedTarget(target, path);
  const script = [
    'set -e',
    sh`p=${path}`,
    sh`umask 022 && mkdir -p -- ${parentOf(path)}`,
    ...refuseLinkedParents(path),
    't="$p.persona-$$"',
    sh`ln -s -- ${target} "$t"`,
    'trap \'rm -f -- "$t"\' EXIT',
    sh`chown -h -- ${`${owner}:${group}`} "$t"`,
    'mv -T -f -- "$t" "$p"',
    'trap - EXIT',
  ].join('\n');
  await runScript(transport, `linking ${path}`, script, path);
  const { state } = await probeEntry(transport, path, 'path');
  if (state.kind !== 'symlink' || state.target !== target || state.owner !== owner || state.group !== group) {
    throw new VerificationError(
      path,
      `a symbolic link to ${displayValue(target)} owned by ${owner}:${group}`,
      describeState(state),
    );
  }
}

const describeAttrs = (what: string, attrs: FileAttributes) =>
  `${what} ${attrs.owner}:${attrs.group} ${octalMode(attrs.mode)}`;

function describeState(state: EntryState): string {
  switch (state.kind) {
    case 'absent':
      return 'nothing';
    case 'symlink':
      return `a symbolic link to ${displayValue(state.target)} owned by ${state.owner}:${state.group}`;
    case 'other':
      return `a ${state.type}`;
    default:
      return `a ${state.kind === 'file' ? 'file' : 'folder'} ${state.owner}:${state.group} ${state.mode}`;
  }
}

const attrsOf = (state: { readonly mode: string; readonly owner: string; readonly group: string }) => ({
  mode: Number.parseInt(state.mode, 8),
  owner: state.owner,
  group: state.group,
});

/**
 * Puts back what `prior` saw: the kept file with its owner and mode, the folder's owner and
 * mode, the link with its target, or nothing (and no new folders) where there was nothing.
 */
export async function restoreFile(transport: Transport, prior: FilePrior): Promise<'restored' | 'unchanged'> {
  const path = checkPath(prior.path, 'path');
  const now = await probeEntry(transport, path, 'path').catch(() => undefined);
  const was = prior.state;
  if (was.kind === 'file') return restoreKept(transport, prior, was, now?.state);
  if (was.kind === 'directory') {
    const attrs = attrsOf(was);
    if (now?.state.kind === 'directory' && sameAttributes(now.state, attrs)) return 'unchanged';
    if (now !== undefined && now.state.kind !== 'directory' && now.state.kind !== 'absent') {
      throw new HostStateConflictError(
        `${path} was a folder and is now ${describeState(now.state)}: not replaced`,
        'file',
        path,
      );
    }
    await writeDirectory(transport, path, attrs, now?.state.kind === 'directory');
    return 'restored';
  }
  if (was.kind === 'symlink') {
    const s = now?.state;
    if (s?.kind === 'symlink' && s.target === was.target && s.owner === was.owner && s.group === was.group)
      return 'unchanged';
    if (s?.kind === 'directory') {
      throw new HostStateConflictError(
        `${path} was a symbolic link and is now a folder: not replaced`,
        'file',
        path,
      );
    }
    await writeSymlink(transport, path, was.target, was.owner, was.group);
    return 'restored';
  }
  const dirs = prior.createdDirs.toReversed();
  const present = now === undefined || now.state.kind !== 'absent';
  const dirsLeft = dirs.some((d) => !now?.missing.includes(d));
  if (!present && !dirsLeft) return 'unchanged';
  // Only what the apply may have made goes: a file or link, and a folder (at the path or above
  // it) only when empty. A folder it made that others filled is left, and said so.
  const script = [
    sh`p=${path}`,
    'if [ -f "$p" ] || [ -L "$p" ]; then rm -f -- "$p" || exit 1;',
    `elif [ -d "$p" ]; then rmdir -- "$p" 2>/dev/null || exit ${EXIT_NOT_EMPTY}; fi`,
    ...(dirs.length === 0 ? [] : [sh`for d in ${dirs}; do rmdir -- "$d" 2>/dev/null || true; done`]),
  ].join('\n');
  await runScript(transport, `removing ${path}`, script, path);
  return 'restored';
}

async function restoreKept(
  transport: Transport,
  prior: FilePrior,
  was: Extract<PriorState, { kind: 'file' }>,
  now: EntryState | undefined,
): Promise<'restored' | 'unchanged'> {
  const path = prior.path;
  if (prior.backup === undefined)
    throw new HostStateConflictError(`no copy of ${path} was kept`, 'file', path);
  const backup = checkPath(prior.backup, 'backup');
  const sealed = was.sha256 === undefined;
  if (now?.kind === 'file' && sameAttributes(now, attrsOf(was))) {
    if (was.sha256 !== undefined ? now.sha256 === was.sha256 : await sameBytes(transport, backup, path))
      return 'unchanged';
  }
  const script = [
    'set -e',
    sh`p=${path}`,
    sh`[ -f ${backup} ] || { echo 'the kept copy is gone' >&2; exit 44; }`,
    't="$p.persona-$$"',
    'trap \'rm -f -- "$t"\' EXIT',
    sh`cp -P -p -- ${backup} "$t"`,
    'mv -T -f -- "$t" "$p"',
    'trap - EXIT',
  ].join('\n');
  await runScript(transport, `restoring ${path}`, script, path);
  if (!sealed) await verifyFile(transport, path, was.sha256 as string);
  else if (!(await sameBytes(transport, backup, path)))
    throw new VerificationError(path, 'the bytes of the copy kept on the host', 'other bytes');
  return 'restored';
}

/** The two files hold the same bytes, compared on the host (neither's hash leaves it). */
async function sameBytes(transport: Transport, a: string, b: string): Promise<boolean> {
  const result = await transport.run(sh`cmp -s -- ${a} ${b}`);
  if (result.exitCode > 1)
    throw new HostCommandError(
      `comparing ${b}`,
      `cmp -s -- ${a} ${b}`,
      result.exitCode,
      result.stderr,
      transport.target,
    );
  return result.exitCode === 0;
}

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
