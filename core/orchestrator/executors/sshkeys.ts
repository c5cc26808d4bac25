// sshkey.authorize and sshkey.revoke: one public key in a user's ~/.ssh/authorized_keys. The
// key line comes from its sealed reference (capture keeps it sealed beside the fingerprint) and
// is checked on the control side before it is sent: one line, a key type and its key, nothing
// sshd would read as options, and a blob whose SHA256 fingerprint is the Change's. A key is
// never added twice; a revoke removes the lines holding that key and no other. The file is
// rewritten atomically (files.ts), never through a link: a symlinked home, .ssh or
// authorized_keys is refused.
import { createHash } from 'node:crypto';
import type { z } from 'zod';
import type { Change } from '../../delta/changes.js';
import { InvalidInputError, NotFoundError } from '../../errors.js';
import type { SshKey as SshKeySchema } from '../../profile/schema.js';
import { checkPath } from '../../transport/paths.js';
import { displayValue, sh } from '../../transport/shell.js';
import type { Transport } from '../../transport/transport.js';
import { HostStateConflictError } from '../errors.js';
import {
  accountNameProblem,
  changed,
  type Executor,
  type ExecutorContext,
  runOk,
  unchanged,
} from './executor.js';
import {
  type EntryState,
  type FileAttributes,
  type FilePrior,
  prepareEntry,
  probeEntry,
  restoreFile,
  writeFile,
} from './files.js';

type SshKey = z.infer<typeof SshKeySchema>;

type KeyChange = Extract<Change, { section: 'sshKeys' }>;

/** The key types OpenSSH reads in authorized_keys, certificates included. */
const KEY_TYPES = new Set(
  [
    'ssh-rsa',
    'ssh-dss',
    'ssh-ed25519',
    'ecdsa-sha2-nistp256',
    'ecdsa-sha2-nistp384',
    'ecdsa-sha2-nistp521',
    'sk-ssh-ed25519@openssh.com',
    'sk-ecdsa-sha2-nistp256@openssh.com',
  ].flatMap((t) => [t, t.replace(/(@openssh\.com)?$/, '-cert-v01@openssh.com')]),
);

const BASE64 = /^[A-Za-z0-9+/]+={0,3}$/;

/** The OpenSSH SHA256 fingerprint of a key blob (base64), as `ssh-keygen -lf` prints it. */
export const keyFingerprint = (blob: string): string =>
  `SHA256:${createHash('sha256').update(Buffer.from(blob, 'base64')).digest('base64').replace(/=+$/, '')}`;

/** The type the blob names inside itself (its first length-prefixed string), if it has one. */
function blobType(blob: string): string | undefined {
  const bytes = Buffer.from(blob, 'base64');
  if (bytes.toString('base64').replace(/=+$/, '') !== blob.replace(/=+$/, '') || bytes.length < 4)
    return undefined;
  const length = bytes.readUInt32BE(0);
  if (length === 0 || length > 64 || bytes.length < 4 + length) return undefined;
  return bytes.subarray(4, 4 + length).toString('latin1');
}

/**
 * The key a line of authorized_keys holds, options or not: options are the first word unless
 * it is a key type, and may hold quoted spaces (`command="a b"`), so words are split outside
 * double quotes only.
 */
export function keyOfLine(line: string): { readonly type: string; readonly blob: string } | undefined {
  const text = line.trim();
  if (text === '' || text.startsWith('#')) return undefined;
  const words: string[] = [];
  let word = '';
  let quoted = false;
  for (let i = 0; i < text.length && words.length < 3; i++) {
    const ch = text[i] as string;
    if (ch === '\\' && quoted && i + 1 < text.length) {
      word += ch + (text[++i] as string);
    } else if (ch === '"') {
      quoted = !quoted;
      word += ch;
    } else if (!quoted && (ch === ' ' || ch === '\t')) {
      if (word !== '') words.push(word);
      word = '';
    } else word += ch;
  }
  if (word !== '' && words.length < 3) words.push(word);
  const at = KEY_TYPES.has(words[0] ?? '') ? 0 : 1;
  const [type, blob] = [words[at], words[at + 1]];
  if (type === undefined || blob === undefined || !KEY_TYPES.has(type) || !BASE64.test(blob))
    return undefined;
  return { type, blob };
}

/** The text has a line holding the key with this fingerprint. */
export const holdsKey = (text: string, fingerprint: string) =>
  text.split('\n').some((line) => {
    const key = keyOfLine(line);
    return key !== undefined && keyFingerprint(key.blob) === fingerprint;
  });

/** The text without the lines holding the key with this fingerprint; every other byte kept. */
export function withoutKey(text: string, fingerprint: string): string {
  return text
    .split('\n')
    .filter((line) => {
      const key = keyOfLine(line);
      return key === undefined || keyFingerprint(key.blob) !== fingerprint;
    })
    .join('\n');
}

/** The text with `line` appended as a line of its own. */
export const withLine = (text: string, line: string) =>
  `${text}${text === '' || text.endsWith('\n') ? '' : '\n'}${line}\n`;

/**
 * The line to write for `key`, from the sealed bytes: refused, naming the Change and never
 * showing the bytes, unless it is one line of a key type, its key and an optional comment, of
 * the Change's type, whose fingerprint is the Change's. Options (from=, command=) are refused:
 * they would reach sshd as they were sealed, and a line they restrict is one to write by hand.
 */
export function checkedKeyLine(bytes: Uint8Array, key: SshKey, name: string): string {
  const refuse = (why: string): never => {
    throw new InvalidInputError(`the sealed key line for ${name} ${why}: not written`, [
      { path: 'keyRef', message: why },
    ]);
  };
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return refuse('is not UTF-8 text');
  }
  const line = text.endsWith('\n') ? text.slice(0, -1) : text;
  if (/[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/u.test(line.replaceAll('\t', ' ')))
    refuse('holds a line break or another control character');
  const words = line.trim().split(/[ \t]+/);
  const [type = '', blob = ''] = words;
  if (!KEY_TYPES.has(type))
    refuse('does not start with a key type (options such as from= or command= are refused)');
  if (type !== key.type) refuse(`is a ${displayValue(type)} key, not ${displayValue(key.type)}`);
  if (!BASE64.test(blob) || blobType(blob) !== type) refuse(`does not hold a ${type} key after its type`);
  if (keyFingerprint(blob) !== key.fingerprint)
    refuse(`holds a key whose fingerprint is not ${key.fingerprint}`);
  return line.trim();
}

function keyChange(change: Change): KeyChange & { readonly entry: SshKey } {
  if (change.section !== 'sshKeys') throw new TypeError(`${change.kind} is not an SSH key change`);
  const entry = (change.to ?? change.from) as SshKey;
  const problem = accountNameProblem(entry.user);
  if (problem !== undefined)
    throw new InvalidInputError(
      `sshKeys ${displayValue(change.key)}: user ${displayValue(entry.user)} ${problem}`,
      [{ path: 'user', message: problem }],
    );
  return { ...change, entry };
}

interface Account {
  readonly uid: number;
  readonly gid: number;
  readonly home: string;
}

async function account(transport: Transport, user: string, c: KeyChange): Promise<Account> {
  const result = await transport.run(sh`getent -- passwd ${user}`);
  if (result.exitCode === 2)
    throw new HostStateConflictError(`the host has no user ${user} to authorize keys for`, c.kind, c.key);
  if (result.exitCode !== 0) {
    throw new HostStateConflictError(
      `getent passwd ${user} failed: ${displayValue(result.stderr.trim())}`,
      c.kind,
      c.key,
    );
  }
  const fields = result.stdout.replace(/\n$/, '').split(':');
  const [uid, gid, home] = [fields[2], fields[3], fields[5]];
  if (fields.length !== 7 || !/^\d+$/.test(uid ?? '') || !/^\d+$/.test(gid ?? '') || home === undefined)
    throw new HostStateConflictError(`getent passwd ${user} printed no passwd entry`, c.kind, c.key);
  return {
    uid: Number(uid),
    gid: Number(gid),
    home: checkPath(home.replace(/\/+$/, '') || '/', `home of ${user}`),
  };
}

const keysPath = (home: string) => `${home === '/' ? '' : home}/.ssh/authorized_keys`;
const sshDir = (home: string) => `${home === '/' ? '' : home}/.ssh`;

/** The authorized_keys file as it is, refused when it is anything but absent or a file. */
async function readKeys(
  transport: Transport,
  c: KeyChange,
  path: string,
): Promise<{ state: EntryState; missing: string[]; text: string }> {
  const { state, missing } = await probeEntry(transport, path, `${c.kind} ${c.key}`);
  if (state.kind !== 'absent' && state.kind !== 'file') {
    throw new HostStateConflictError(
      `${path} is ${state.kind === 'symlink' ? 'a symbolic link' : `a ${state.kind === 'other' ? state.type : 'folder'}`}: refusing to write through it`,
      c.kind,
      c.key,
    );
  }
  const text =
    state.kind === 'file' ? (await runOk(transport, `reading ${path}`, sh`cat -- ${path}`)).stdout : '';
  return { state, missing, text };
}

interface KeyPrior {
  readonly file: FilePrior;
  /** The key was in the file before: an authorize did nothing, so its revert does nothing. */
  readonly present: boolean;
  readonly uid: number;
  readonly gid: number;
}

export const sshKeyExecutor: Executor = {
  kinds: ['sshkey.authorize', 'sshkey.revoke'],

  async prepare(ctx, change) {
    const c = keyChange(change);
    const who = await account(ctx.transport, c.entry.user, c);
    const path = keysPath(who.home);
    const { text } = await readKeys(ctx.transport, c, path);
    const file = await prepareEntry(ctx, path, `${c.kind} ${c.key}`);
    const prior: KeyPrior = {
      file,
      present: holdsKey(text, c.entry.fingerprint),
      uid: who.uid,
      gid: who.gid,
    };
    return prior;
  },

  async apply(ctx, change) {
    const c = keyChange(change);
    const { user, fingerprint } = c.entry;
    const who = await account(ctx.transport, user, c);
    const path = keysPath(who.home);
    const { state, missing, text } = await readKeys(ctx.transport, c, path);
    if (c.kind === 'sshkey.revoke') {
      if (!holdsKey(text, fingerprint)) return unchanged(`${user} has no key ${fingerprint}`);
      await writeKeys(ctx.transport, path, withoutKey(text, fingerprint), state, who);
      return changed(`revoked ${fingerprint} for ${user}`);
    }
    if (holdsKey(text, fingerprint)) return unchanged(`${fingerprint} is already authorized for ${user}`);
    const line = await keyLine(ctx, c);
    const dir = sshDir(who.home);
    if (missing.some((d) => d !== dir)) {
      throw new HostStateConflictError(
        `the home folder ${who.home} of ${user} does not exist: no key is authorized there`,
        c.kind,
        c.key,
      );
    }
    if (missing.includes(dir)) {
      // sshd's StrictModes refuses a .ssh others can write: made 0700, the user's, before use.
      await runOk(
        ctx.transport,
        `making ${dir}`,
        sh`umask 077 && mkdir -- ${dir} && chown -h -- ${`${who.uid}:${who.gid}`} ${dir} && chmod -- 0700 ${dir}`,
      );
    }
    await writeKeys(ctx.transport, path, withLine(text, line), state, who);
    return changed(`authorized ${fingerprint} for ${user}`);
  },

  async revert(ctx, change, priorValue) {
    const c = keyChange(change);
    const prior = priorValue as KeyPrior;
    const { fingerprint, user } = c.entry;
    const path = prior.file.path;
    const { state, text } = await readKeys(ctx.transport, c, path);
    const kept =
      prior.file.backup === undefined
        ? ''
        : (
            await runOk(
              ctx.transport,
              `reading the kept copy of ${path}`,
              sh`cat -- ${checkPath(prior.file.backup, 'backup')}`,
            )
          ).stdout;
    const was = prior.file.state;
    if (was.kind === 'file' && state.kind === 'file' && was.sha256 === state.sha256)
      return unchanged(`${path} is as it was`);
    if (c.kind === 'sshkey.authorize') {
      if (prior.present) return unchanged(`${fingerprint} was authorized for ${user} before`);
      const stripped = withoutKey(text, fingerprint);
      // The file is what this apply made of it: put back exactly what was there (or nothing).
      if (
        stripped === kept ||
        (!kept.endsWith('\n') && stripped === `${kept}\n`) ||
        (was.kind === 'absent' && stripped === '')
      ) {
        await restoreFile(ctx.transport, prior.file);
        return changed(`removed ${fingerprint} from ${path}`);
      }
      if (stripped === text) return unchanged(`${fingerprint} is not in ${path}`);
      await writeKeys(ctx.transport, path, stripped, state, prior);
      return changed(`removed ${fingerprint} from ${path}`);
    }
    if (was.kind !== 'file') return unchanged(`${path} did not exist: nothing was revoked`);
    if (text === withoutKey(kept, fingerprint) || state.kind === 'absent') {
      await restoreFile(ctx.transport, prior.file);
      return changed(`authorized ${fingerprint} for ${user} again`);
    }
    // Changed since by others: only the lines of this key come back, from the kept copy.
    const lines = kept.split('\n').filter((l) => {
      const key = keyOfLine(l);
      return key !== undefined && keyFingerprint(key.blob) === fingerprint;
    });
    if (lines.length === 0 || holdsKey(text, fingerprint)) return unchanged(`${fingerprint} is in ${path}`);
    await writeKeys(ctx.transport, path, lines.reduce(withLine, text), state, prior);
    return changed(`authorized ${fingerprint} for ${user} again`);
  },
};

async function keyLine(ctx: ExecutorContext, c: KeyChange & { readonly entry: SshKey }): Promise<string> {
  const ref = c.entry.keyRef;
  if (ref === undefined)
    throw new InvalidInputError(`sshKeys ${c.key} carries no reference to its key line`, [
      { path: 'keyRef', message: 'required to authorize a key' },
    ]);
  const open = ctx.contents.readSealed;
  if (open === undefined)
    throw new NotFoundError(
      `the key line of ${c.key} is sealed, and this apply was given no way to open it`,
      c.key,
    );
  return checkedKeyLine(await open.call(ctx.contents, ref, `sshKeys ${c.key} keyRef`), c.entry, c.key);
}

/** Writes the file with the owner and mode it has, or the user's and 0600 for a new one. */
async function writeKeys(
  transport: Transport,
  path: string,
  text: string,
  state: EntryState,
  who: { readonly uid: number; readonly gid: number },
): Promise<void> {
  const attrs: FileAttributes =
    state.kind === 'file'
      ? { mode: Number.parseInt(state.mode, 8), owner: state.owner, group: state.group }
      : { mode: 0o600, owner: String(who.uid), group: String(who.gid) };
  await writeFile(transport, path, Buffer.from(text, 'utf8'), attrs);
}
