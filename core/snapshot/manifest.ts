// The manifest: the file-level state of a tree at one moment. Entries are in path order, so
// that a restore creates every directory before what it contains and two manifests can be
// compared in one pass.
import * as z from 'zod';
import { formatPath, InvalidInputError, type Issue } from '../errors.js';

export const ENTRY_TYPES = ['file', 'dir', 'symlink', 'hardlink', 'char', 'block', 'fifo'] as const;
export type EntryType = (typeof ENTRY_TYPES)[number];

/** Why `p` is not a normalised relative path inside a tree, or undefined when it is one. */
export function pathProblem(p: string): string | undefined {
  if (p === '') return 'the path is empty';
  if (p.includes('\0')) return 'the path contains a NUL byte';
  if (p.startsWith('/')) return 'the path is absolute';
  const segments = p.split('/');
  if (segments.includes('..')) return 'the path contains ".."';
  if (segments.some((s) => s === '.' || s === '')) return 'the path has "." or empty segments';
  return undefined;
}

const relativePath = z.string().superRefine((p, ctx) => {
  const problem = pathProblem(p);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});

export const ManifestEntry = z.object({
  path: relativePath,
  type: z.enum(ENTRY_TYPES),
  mode: z.number().int().min(0).max(0o7777),
  uid: z.number().int().nonnegative(),
  gid: z.number().int().nonnegative(),
  user: z.string().optional(),
  group: z.string().optional(),
  size: z.number().int().nonnegative().optional(),
  /** Nanoseconds since the epoch, as a decimal string (beyond a double's precision). */
  mtimeNs: z.string().regex(/^-?\d+$/),
  /** Symlink target, or for a hard link the path of the entry it shares content with. */
  target: z.string().optional(),
  /** Device number for char and block devices. */
  rdev: z.number().int().nonnegative().optional(),
  chunks: z.array(z.string()).optional(),
  /**
   * Inode number and status-change time of a file when it was read: with size and mtime they
   * let the next snapshot of the same host reuse the chunk list without reading the file again
   * (ctime cannot be set back by a user, unlike mtime).
   */
  ino: z.string().regex(/^\d+$/).optional(),
  ctimeNs: z
    .string()
    .regex(/^-?\d+$/)
    .optional(),
  /** Data extents [offset, length] of a sparse file; the chunks cover them in order. */
  sparse: z.array(z.tuple([z.number().int().nonnegative(), z.number().int().positive()])).optional(),
});
export type ManifestEntry = z.infer<typeof ManifestEntry>;

export const Manifest = z.object({
  /** How the manifest is kept in the bucket (FORMAT.md): 1 whole, 2 with its entries in chunks. */
  format: z.union([z.literal(1), z.literal(2)]),
  host: z.string(),
  createdAt: z.iso.datetime(),
  root: z.string(),
  entries: z.array(ManifestEntry),
});
export type Manifest = z.infer<typeof Manifest>;

const parentOf = (p: string): string => {
  const at = p.lastIndexOf('/');
  return at < 0 ? '' : p.slice(0, at);
};

/**
 * The rules a tree must keep to be restored without leaving its target, checked entry by entry
 * as a tree or a tar stream is read (in whatever order it comes): no path twice, no entry below
 * anything but a directory, a hard link only to a regular file seen before it (as tar requires),
 * a symlink with a target. Link targets are recorded, never resolved.
 */
export class EntryChecker {
  private readonly seen = new Map<string, EntryType>();
  /** Directories that entries below them imply, and have not appeared themselves (yet). */
  private readonly implied = new Map<string, Pick<ManifestEntry, 'path' | 'mtimeNs'>>();

  /** Throws an InvalidInputError naming the entry (`where`, e.g. `tar entry "a/b"`) when it breaks a rule. */
  add(entry: Pick<ManifestEntry, 'path' | 'type' | 'target' | 'mtimeNs'>, where: string): void {
    const problem = entryProblem(entry, (p) => this.seen.get(p), 'before it');
    if (problem !== undefined) throw refusal(where, entry.path, problem);
    if (entry.type !== 'dir' && this.implied.has(entry.path)) {
      throw refusal(
        where,
        entry.path,
        `entries below it were seen, so it must be a directory, not a ${entry.type}`,
      );
    }
    for (let p = parentOf(entry.path); p !== ''; p = parentOf(p)) {
      const type = this.seen.get(p);
      if (type !== undefined && type !== 'dir')
        throw refusal(where, entry.path, `${JSON.stringify(p)} is a ${type}, not a directory`);
      if (type === 'dir' || this.implied.has(p)) break;
      this.implied.set(p, { path: p, mtimeNs: entry.mtimeNs });
    }
    this.implied.delete(entry.path);
    this.seen.set(entry.path, entry.type);
  }

  /** How many entries were accepted. */
  get count(): number {
    return this.seen.size;
  }

  /** Directories implied by entries below them that never appeared themselves. */
  missingDirectories(): Pick<ManifestEntry, 'path' | 'mtimeNs'>[] {
    return [...this.implied.values()];
  }
}

function refusal(where: string, path: string, problem: string): InvalidInputError {
  return new InvalidInputError(`${where} is refused: ${problem}`, [
    { path: where, message: `${JSON.stringify(path)}: ${problem}` },
  ]);
}

/** Rules of one entry on its own, with `typeOf` telling what another path of the tree is. */
function entryProblem(
  entry: Pick<ManifestEntry, 'path' | 'type' | 'target'>,
  typeOf: (path: string) => EntryType | undefined,
  seenWhen: string,
): string | undefined {
  const problem = pathProblem(entry.path);
  if (problem !== undefined) return problem;
  if (typeOf(entry.path) !== undefined) return 'the same path appears twice';
  if (
    entry.type === 'symlink' &&
    (entry.target === undefined || entry.target === '' || entry.target.includes('\0'))
  )
    return 'a symlink needs a target without NUL bytes';
  if (entry.type === 'hardlink') {
    const target = entry.target ?? '';
    const targetProblem = pathProblem(target);
    if (targetProblem !== undefined)
      return `its link target ${JSON.stringify(target)} is refused: ${targetProblem}`;
    const type = typeOf(target);
    if (type !== 'file') {
      return type === undefined
        ? `its link target ${JSON.stringify(target)} is not a file of the tree ${seenWhen}`
        : `its link target ${JSON.stringify(target)} is a ${type}, not a regular file`;
    }
  }
  return undefined;
}

const ENTRY_KEYS = new Set(Object.keys(ManifestEntry.shape));
const ENTRY_TYPE_SET = new Set<string>(ENTRY_TYPES);
const DECIMAL = /^-?\d+$/;
const DIGITS = /^\d+$/;
const isCount = (v: unknown) => Number.isSafeInteger(v) && (v as number) >= 0;
const absentOr = (v: unknown, test: (v: unknown) => boolean) => v === undefined || test(v);
const isString = (v: unknown) => typeof v === 'string';
// By index, not `every`: that skips the holes of a sparse array, which zod reads as undefined.
const allOf = (v: unknown, test: (x: unknown) => boolean): boolean => {
  if (!Array.isArray(v)) return false;
  for (let i = 0; i < v.length; i++) if (!test(v[i])) return false;
  return true;
};

/**
 * Whether `value` certainly passes the `Manifest` schema: the schema's rules over the entries
 * written out plainly (zod took about 110 ms on each of a root filesystem's 6,700 entries, twice
 * per snapshot: the previous manifest read and the new one checked). Stricter where it is
 * simpler (an unknown key, an optional key present as undefined, an integer beyond 2^53): such a
 * value goes through zod, which then decides and names what is wrong. Never true where zod
 * would refuse (a property test holds it to that).
 */
export function conformsPlainly(value: unknown): value is Manifest {
  if (typeof value !== 'object' || value === null) return false;
  const entries = (value as { entries?: unknown }).entries;
  if (!Array.isArray(entries)) return false;
  // The few fields around the entries go through zod itself (the ISO datetime's rules above all).
  if (!Manifest.safeParse({ ...value, entries: [] }).success) return false;
  if (Object.keys(value).some((k) => !(k in Manifest.shape))) return false;
  for (const e of entries) {
    if (typeof e !== 'object' || e === null || Array.isArray(e)) return false;
    const x = e as Record<string, unknown>;
    for (const k of Object.keys(x)) if (!ENTRY_KEYS.has(k) || x[k] === undefined) return false;
    if (typeof x.path !== 'string' || pathProblem(x.path) !== undefined) return false;
    if (typeof x.type !== 'string' || !ENTRY_TYPE_SET.has(x.type)) return false;
    if (!isCount(x.mode) || (x.mode as number) > 0o7777 || !isCount(x.uid) || !isCount(x.gid)) return false;
    if (typeof x.mtimeNs !== 'string' || !DECIMAL.test(x.mtimeNs)) return false;
    if (!absentOr(x.user, isString) || !absentOr(x.group, isString) || !absentOr(x.target, isString))
      return false;
    if (!absentOr(x.size, isCount) || !absentOr(x.rdev, isCount)) return false;
    if (!absentOr(x.ino, (v) => typeof v === 'string' && DIGITS.test(v))) return false;
    if (!absentOr(x.ctimeNs, (v) => typeof v === 'string' && DECIMAL.test(v))) return false;
    if (x.chunks !== undefined && !allOf(x.chunks, isString)) return false;
    const extent = (t: unknown) =>
      Array.isArray(t) && t.length === 2 && isCount(t[0]) && isCount(t[1]) && (t[1] as number) > 0;
    if (x.sparse !== undefined && !allOf(x.sparse, extent)) return false;
  }
  return true;
}

/**
 * A manifest as read from the store, checked before anything uses it: the schema, then paths
 * unique and in path order, every parent a directory entry, hard links to regular files of the
 * manifest. Every problem is named by its entry; a manifest that breaks a rule is refused whole.
 * `context` goes before the message (the snapshot it belongs to).
 */
export function checkManifest(value: unknown, source: string, context = ''): Manifest {
  const parsed = conformsPlainly(value) ? { success: true as const, data: value } : Manifest.safeParse(value);
  if (!parsed.success) {
    // Named by the entry's path as well as its index: the index alone says little to an operator.
    const entries = (value as { entries?: unknown } | null)?.entries;
    const pathAt = (i: unknown) => {
      const p =
        Array.isArray(entries) && typeof i === 'number'
          ? (entries[i] as { path?: unknown })?.path
          : undefined;
      return typeof p === 'string' ? `${JSON.stringify(p)}: ` : '';
    };
    const issues = parsed.error.issues.slice(0, 100).map((i) => ({
      path: formatPath(i.path),
      message: `${i.path[0] === 'entries' ? pathAt(i.path[1]) : ''}${i.message}`,
    }));
    throw new InvalidInputError(
      `${context}manifest ${source} is refused: ${issues[0]?.path} ${issues[0]?.message}`,
      issues,
      { source },
    );
  }
  const manifest = parsed.data;
  const types = new Map<string, EntryType>();
  const issues: Issue[] = [];
  const note = (i: number, path: string, message: string) => {
    // A hostile manifest could hold millions of bad entries: the first ones make the point.
    if (issues.length < 100)
      issues.push({ path: `entries[${i}]`, message: `${JSON.stringify(path)}: ${message}` });
  };
  let previous: string | undefined;
  manifest.entries.forEach((e, i) => {
    if (previous !== undefined && comparePaths(previous, e.path) >= 0) {
      note(
        i,
        e.path,
        comparePaths(previous, e.path) === 0 ? 'the same path appears twice' : 'out of path order',
      );
    }
    previous = e.path;
    const parent = parentOf(e.path);
    if (parent !== '' && types.get(parent) !== 'dir') {
      const type = types.get(parent);
      note(
        i,
        e.path,
        type === undefined
          ? `its parent ${JSON.stringify(parent)} is not in the manifest`
          : `its parent ${JSON.stringify(parent)} is a ${type}, not a directory`,
      );
    }
    if (!types.has(e.path)) types.set(e.path, e.type);
  });
  manifest.entries.forEach((e, i) => {
    // Duplicates were named above, by the order check.
    const problem = entryProblem(e, (p) => (p === e.path ? undefined : types.get(p)), 'in the manifest');
    if (problem !== undefined) note(i, e.path, problem);
  });
  if (issues.length > 0) {
    const first = issues[0] as Issue;
    throw new InvalidInputError(
      `${context}manifest ${source} is refused: ${first.path} ${first.message}${issues.length > 1 ? ` (and ${issues.length - 1} more)` : ''}`,
      issues,
      { source },
    );
  }
  return manifest;
}

/** Path order: parents before children, siblings by name (byte order). */
export function comparePaths(a: string, b: string): number {
  const as = a.split('/');
  const bs = b.split('/');
  for (let i = 0; i < Math.min(as.length, bs.length); i++) {
    const x = as[i] as string;
    const y = bs[i] as string;
    if (x !== y) return Buffer.compare(Buffer.from(x), Buffer.from(y));
  }
  return as.length - bs.length;
}

/** What changed between two manifests, by path. */
export interface ManifestDiff {
  readonly added: string[];
  readonly removed: string[];
  /** Content differs. */
  readonly changed: string[];
  /** Same content, other owner, mode, time or link target. */
  readonly metadata: string[];
}

export const sameContent = (a: ManifestEntry, b: ManifestEntry): boolean =>
  a.type === b.type &&
  a.size === b.size &&
  a.target === b.target &&
  a.rdev === b.rdev &&
  JSON.stringify(a.chunks ?? []) === JSON.stringify(b.chunks ?? []) &&
  JSON.stringify(a.sparse ?? []) === JSON.stringify(b.sparse ?? []);

export const sameMetadata = (a: ManifestEntry, b: ManifestEntry): boolean =>
  a.mode === b.mode && a.uid === b.uid && a.gid === b.gid && a.mtimeNs === b.mtimeNs;

export function diffManifests(from: Manifest, to: Manifest): ManifestDiff {
  const before = new Map(from.entries.map((e) => [e.path, e]));
  const after = new Map(to.entries.map((e) => [e.path, e]));
  const out: ManifestDiff = { added: [], removed: [], changed: [], metadata: [] };
  for (const [path, e] of after) {
    const old = before.get(path);
    if (old === undefined) out.added.push(path);
    else if (!sameContent(old, e)) out.changed.push(path);
    else if (!sameMetadata(old, e)) out.metadata.push(path);
  }
  for (const path of before.keys()) if (!after.has(path)) out.removed.push(path);
  return out;
}

/** The chunk ids a manifest refers to. */
export function chunksOf(manifest: Manifest): Set<string> {
  const ids = new Set<string>();
  for (const e of manifest.entries) for (const c of e.chunks ?? []) ids.add(c);
  return ids;
}
