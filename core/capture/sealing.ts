// What a capture does with the secrets it found: seal each value in the store, pin the Profile's
// references to the values sealed (so that each Profile version resolves its own), and keep the
// files that hold secrets out of the general snapshot.
import { localSecretKeyProblem, type ProfileInput, type SecretRef } from '../profile/schema.js';
import { MAX_SECRET_BYTES, type SealedSecret, type SecretVault } from '../snapshot/secrets.js';
import type { SourceEntry, TreeSource } from '../snapshot/tree.js';
import type { Transport } from '../transport/transport.js';
import { type CapturedSecret, fileLooksSensitive } from './secrets.js';

export interface SealedSecrets {
  /** Digest of the sealed value, by reference key. */
  readonly digests: ReadonlyMap<string, string>;
  /** Host paths (absolute) of the files sealed: the snapshot leaves them out. */
  readonly files: ReadonlySet<string>;
  readonly sealed: readonly SealedSecret[];
  /** Files that could not be sealed (unreadable, gone, too large), with the reason. */
  readonly unsealed: readonly { readonly path: string; readonly reason: string }[];
}

/**
 * Seals every captured secret. A file's content never passes through the capture script: it is
 * read from the host here, only to be sealed.
 */
export async function sealSecrets(
  vault: SecretVault,
  transport: Pick<Transport, 'getFile'>,
  secrets: readonly CapturedSecret[],
): Promise<SealedSecrets> {
  const digests = new Map<string, string>();
  const files = new Set<string>();
  const sealed: SealedSecret[] = [];
  const unsealed: { path: string; reason: string }[] = [];
  for (const s of secrets) {
    if (s.ref.provider !== 'local') continue;
    // Kept out of the snapshot whatever happens next.
    if (s.kind === 'file') files.add(s.source);
    // A name the Profile could not hold either (a path with control characters): the Profile
    // left its entry out as invalid, so there is nothing to pin.
    if (localSecretKeyProblem(s.ref.key) !== undefined) continue;
    let value: Uint8Array | string | undefined = s.value;
    if (value === undefined && s.kind === 'file') {
      // A file the capture may not read (a capture by a user other than root), or one gone since
      // it was listed, stays out of the snapshot and unpinned in the Profile: an unknown, not a
      // failed capture.
      try {
        value = await transport.getFile(s.source);
      } catch (error) {
        unsealed.push({ path: s.source, reason: `could not be read: ${(error as Error).message}` });
        continue;
      }
    }
    if (value === undefined) continue;
    if (s.kind === 'file' && value.length > MAX_SECRET_BYTES) {
      unsealed.push({
        path: s.source,
        reason: `larger than a sealed secret may be (${MAX_SECRET_BYTES} bytes)`,
      });
      continue;
    }
    const done = await vault.put(s.ref.key, value);
    digests.set(s.ref.key, done.digest);
    sealed.push(done);
  }
  return { digests, files, sealed, unsealed };
}

const isLocalRef = (v: object): v is Extract<SecretRef, { provider: 'local' }> =>
  (v as { provider?: unknown }).provider === 'local' && typeof (v as { key?: unknown }).key === 'string';

/**
 * The Profile with every `local` reference it holds pinned to the value sealed for it. A reference
 * whose value was not sealed loses nothing but stays unpinned, and resolving it is refused.
 */
export function pinSecretRefs(profile: ProfileInput, digests: ReadonlyMap<string, string>): ProfileInput {
  const walk = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(walk);
    if (v === null || typeof v !== 'object') return v;
    if (isLocalRef(v)) {
      const digest = digests.get(v.key);
      return digest === undefined ? { ...v } : { ...v, digest };
    }
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x)]));
  };
  return walk(profile) as ProfileInput;
}

export interface Exclusion {
  /** Paths relative to the tree's root (`etc/shadow`) of every file left out. */
  readonly excluded: string[];
  /** Host paths of files left out that the Profile does not refer to (sealed by `sealUnlisted`). */
  readonly unlisted: string[];
}

/**
 * The tree without the files that hold secrets: those sealed from the Profile, and any whose path
 * alone says it holds credentials (a key under a path the capture did not list). Hard links to a
 * file left out go with it: their content is that file's.
 */
export function withoutSecretFiles(
  source: TreeSource,
  sealedFiles: ReadonlySet<string>,
  exclusion: Exclusion = { excluded: [], unlisted: [] },
  /** Seals a file left out that was not sealed before, from the tree's own bytes. */
  sealUnlisted?: (path: string, content: Uint8Array) => Promise<void>,
): TreeSource {
  const secret = (relative: string) => {
    const absolute = `/${relative}`;
    return sealedFiles.has(absolute) || fileLooksSensitive(absolute);
  };
  return {
    root: source.root,
    async *entries(): AsyncGenerator<SourceEntry> {
      const left = new Set<string>();
      for await (const item of source.entries()) {
        const e = item.entry;
        const drop =
          (e.type === 'file' && secret(e.path)) ||
          (e.type === 'hardlink' && (secret(e.path) || left.has(e.target ?? '')));
        if (!drop) {
          yield item;
          continue;
        }
        left.add(e.path);
        exclusion.excluded.push(e.path);
        // A tar source hands out each file's content once, before the next entry: read it all.
        const pieces: Uint8Array[] = [];
        if (item.content) for await (const piece of item.content()) pieces.push(piece);
        const absolute = `/${e.path}`;
        if (e.type === 'file' && !sealedFiles.has(absolute)) {
          exclusion.unlisted.push(absolute);
          const content = Buffer.concat(pieces);
          if (localSecretKeyProblem(absolute.slice(1)) === undefined && content.length <= MAX_SECRET_BYTES)
            await sealUnlisted?.(absolute, content);
        }
      }
    },
  };
}
