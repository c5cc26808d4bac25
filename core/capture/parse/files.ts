// Configuration files: metadata of everything under /etc and the application paths, with the
// content hash the script computed. Content itself goes to the snapshot store, never here. A file
// that holds credentials is a secret: by its name, by a private key in it, or by credential
// lines (`DB_PASSWORD=...`) the script found in it; such a file keeps no bare SHA-256 here.
import type { z } from 'zod';
import { ConfigFile } from '../../profile/schema.js';
import { fileLooksSensitive, keyedContentHash } from '../secrets.js';
import {
  type CaptureSections,
  lines,
  partsWith,
  partWith,
  type Section,
  type SectionPart,
} from '../sections.js';
import { count, int, type ParseContext, sample } from './context.js';

type FileInput = z.input<typeof ConfigFile>;

export interface FileOptions {
  /**
   * The key under which files holding credential lines keep their content hash
   * (`hmac-sha256:`, keyedContentHash). Without it such files keep no hash at all.
   */
  readonly contentHashKey?: Uint8Array;
}

export interface ParsedFiles {
  readonly files: FileInput[];
  /**
   * The content hash a file may show in the Profile, for services and monitoring agents that
   * point at one: keyed for a file holding credentials, none for a private key.
   */
  readonly hashOf: (path: string) => string | undefined;
  /** The hash the Profile may show for a file whose SHA-256 another section computed. */
  readonly protect: (path: string, sha256: string) => string | undefined;
}

interface Entry {
  type: 'f' | 'd' | 'l';
  mode: string;
  owner: string;
  group: string;
  size: number | undefined;
  target: string;
  path: string;
}

/** sha256sum escapes names with a backslash or newline and marks such lines with a leading "\". */
const unescapeSum = (name: string): string =>
  name.replace(/\\(\\|n)/g, (_m, c: string) => (c === 'n' ? '\n' : '\\'));

export function parseHashes(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of lines(text)) {
    const m = /^(\\?)([0-9a-f]{64}) [ *](.+)$/.exec(line);
    if (!m?.[2] || !m[3]) continue;
    const path = m[1] ? unescapeSum(m[3]) : m[3];
    if (!out.has(path)) out.set(path, `sha256:${m[2]}`);
  }
  return out;
}

function printfEntry(line: string): Entry | undefined {
  const fields = line.split('\t');
  if (fields.length < 7) return undefined;
  const [type, mode = '', owner = '', group = '', size, target = ''] = fields;
  if (type !== 'f' && type !== 'd' && type !== 'l') return undefined;
  return { type, mode, owner, group, size: int(size), target, path: fields.slice(6).join('\t') };
}

// `stat -c '%F\t%a\t%U\t%G\t%s\t%N'`, where %N is 'path' or 'path' -> 'target'.
function statEntry(line: string): Entry | undefined {
  const fields = line.split('\t');
  if (fields.length < 6) return undefined;
  const [kind = '', mode = '', owner = '', group = '', size] = fields;
  const quoted = fields.slice(5).join('\t');
  const m = /^['"](.*?)['"](?: -> ['"](.*)['"])?$/.exec(quoted);
  const path = m?.[1] ?? quoted;
  const type = kind.startsWith('regular')
    ? 'f'
    : kind === 'directory'
      ? 'd'
      : kind === 'symbolic link'
        ? 'l'
        : undefined;
  if (type === undefined) return undefined;
  return { type, mode, owner, group, size: int(size), target: m?.[2] ?? '', path };
}

const listingParts = (section: Section | undefined): SectionPart[] =>
  (section?.parts ?? []).filter((p) => /^(printf|stat)( |$)/.test(p.header));

/** Entries the file listings of a capture hold, against the maxFiles bound of a later pass. */
export const listedFiles = (sections: CaptureSections): number =>
  listingParts(sections.get('files')).reduce((n, p) => n + lines(p.text).length, 0);

/** KiB of the hash budget the first pass left (its `left` part), undefined when it did not say. */
export const hashBudgetLeftKiB = (sections: CaptureSections): number | undefined =>
  int(partWith(sections.get('hashes'), 'left')?.header.split(' ')[1]);

export function parseFiles(ctx: ParseContext, options: FileOptions = {}): ParsedFiles {
  const hashes = parseHashes(ctx.section('hashes')?.text ?? '');
  const privateKeys = new Set(lines(ctx.section('privkeys')?.text ?? ''));
  // Outputs recorded before the script scanned for credential lines have no such section.
  const credentialFiles = new Set(
    lines((ctx.sections.has('credfiles') ? ctx.section('credfiles') : undefined)?.text ?? ''),
  );
  // Paths the files section listed: a unit file of a package under /usr/lib whose name happens
  // to look like a credential (systemd-ask-password-*.service) is not a file of the Profile.
  const inProfile = new Set<string>();
  const protect = (path: string, sha256: string): string | undefined => {
    if (privateKeys.has(path) || (inProfile.has(path) && fileLooksSensitive(path))) return undefined;
    if (!credentialFiles.has(path)) return sha256;
    return options.contentHashKey === undefined
      ? undefined
      : keyedContentHash(options.contentHashKey, sha256);
  };
  const hashOf = (path: string) => {
    const hash = hashes.get(path);
    return hash === undefined ? undefined : protect(path, hash);
  };
  const section = ctx.section('files');
  // One listing per pass of the script: /etc and the given paths, then the discovered trees.
  const listings = listingParts(section);
  if (listings.length === 0) return { files: [], hashOf, protect };
  const unreadable = new Set<string>();
  const unlisted: string[] = [];
  for (const part of partsWith(section, 'unreadable')) {
    for (const line of lines(part.text)) {
      if (line.startsWith('f\t')) unreadable.add(line.slice(2));
      else if (line.startsWith('d\t')) unlisted.push(line.slice(2));
    }
  }

  const entries: (Entry | undefined)[] = [];
  for (const part of listings) {
    const limit = int(part.header.split(' ')[1]);
    let listed = lines(part.text);
    if (limit !== undefined && listed.length > limit) {
      ctx.unknown(
        'files',
        `more than ${limit} files under /etc and the application paths: only the first ${limit} are listed`,
      );
      listed = listed.slice(0, limit);
    }
    const parse = part.header.startsWith('printf') ? printfEntry : statEntry;
    for (const line of listed) entries.push(parse(line));
  }

  const files: FileInput[] = [];
  const unhashed: string[] = [];
  const denied: string[] = [];
  // An application path under /etc is listed twice, once for each root: the first is kept.
  for (const e of entries) {
    if (!e?.path.startsWith('/') || inProfile.has(e.path)) continue;
    inProfile.add(e.path);
    const mode = /^[0-7]{1,4}$/.test(e.mode) ? e.mode.padStart(4, '0') : undefined;
    const common = {
      path: e.path,
      ...(mode === undefined || e.type === 'l' ? {} : { mode }),
      ...(e.owner ? { owner: e.owner } : {}),
      ...(e.group ? { group: e.group } : {}),
    };
    if (e.type === 'd') {
      files.push({ ...common, type: 'directory' });
    } else if (e.type === 'l') {
      files.push({ ...common, type: 'symlink', target: e.target });
    } else if (unreadable.has(e.path)) {
      // Neither its hash nor, for a secret, its sealed content can be had by this user.
      denied.push(e.path);
    } else if (fileLooksSensitive(e.path) || privateKeys.has(e.path)) {
      // No hash: a hash of a short secret (a password file) can be brute-forced.
      files.push({
        ...common,
        type: 'file',
        ...(e.size === undefined ? {} : { size: e.size }),
        sensitive: true,
        secretRef: ctx.secrets.add('file', e.path),
      });
    } else {
      const hash = hashes.get(e.path);
      if (credentialFiles.has(e.path)) {
        // Credential lines make the file a secret: sealed, kept out of the general snapshot, and
        // here only with a keyed hash, so that a change still shows as a change of the host.
        const keyed = hash === undefined ? undefined : protect(e.path, hash);
        files.push({
          ...common,
          type: 'file',
          ...(keyed === undefined ? {} : { hash: keyed }),
          ...(e.size === undefined ? {} : { size: e.size }),
          sensitive: true,
          secretRef: ctx.secrets.add('file', e.path),
        });
        continue;
      }
      if (hash === undefined) {
        unhashed.push(e.path);
        continue;
      }
      files.push({ ...common, type: 'file', hash, ...(e.size === undefined ? {} : { size: e.size }) });
    }
  }
  // Past the listing limit the Profile has no entry for a file, but one that holds a private key
  // or credential lines is still a secret: sealed, and so kept out of the snapshot.
  for (const path of [...privateKeys, ...credentialFiles]) {
    if (path.startsWith('/') && !inProfile.has(path) && !unreadable.has(path)) ctx.secrets.add('file', path);
  }
  if (denied.length > 0) {
    ctx.unknown(
      'files',
      `${count(denied.length, 'file')} could not be read: permission denied (capture as root): ${sample(denied)}`,
    );
  }
  if (unlisted.length > 0) {
    ctx.unknown(
      'files',
      `${count(unlisted.length, 'directory', 'directories')} could not be listed: permission denied (capture as root): ${sample(unlisted)}`,
    );
  }
  if (unhashed.length > 0) {
    ctx.unknown(
      'hashes',
      `${count(unhashed.length, 'file')} left out without a content hash (unreadable, over the size limit or the hash budget; the snapshot has them): ${sample(unhashed)}`,
    );
  }
  return {
    files: ctx.keep('files', ConfigFile, files, (f) => f.path, 'file'),
    hashOf,
    protect,
  };
}
