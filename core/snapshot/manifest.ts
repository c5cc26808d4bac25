// The manifest: the file-level state of a tree at one moment. Entries are in path order, so
// that a restore creates every directory before what it contains and two manifests can be
// compared in one pass.
import { z } from 'zod';

export const ENTRY_TYPES = ['file', 'dir', 'symlink', 'hardlink', 'char', 'block', 'fifo'] as const;
export type EntryType = (typeof ENTRY_TYPES)[number];

const relativePath = z
  .string()
  .min(1)
  .refine(
    (p) =>
      !p.startsWith('/') &&
      !p.split('/').some((s) => s === '..' || s === '.' || s === '') &&
      !p.includes('\0'),
    'expected a relative path without "..", "." or empty segments',
  );

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
  format: z.literal(1),
  host: z.string(),
  createdAt: z.iso.datetime(),
  root: z.string(),
  entries: z.array(ManifestEntry),
});
export type Manifest = z.infer<typeof Manifest>;

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
