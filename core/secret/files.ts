// Files that hold secrets are not in a host's snapshot: they are sealed, and the Profile version
// the snapshot belongs to says where they go (path, mode, owner) and which sealed value they hold.
// Putting them back into a tar stream is what lets a clone restore the host whole.
import { PassThrough, type Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { InvalidInputError } from '../errors.js';
import type { Profile, SecretRef } from '../profile/schema.js';
import { getProfile, type ProfileDeps } from '../profile/service.js';
import type { SnapshotRecord } from '../snapshot/records.js';
import type { SnapshotStore } from '../snapshot/store.js';
import { writeTar } from '../snapshot/tar.js';
import { SecretResolver } from './resolve.js';

export interface SecretFile {
  /** Relative to the tree's root, as in a snapshot manifest (`etc/shadow`). */
  readonly path: string;
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly user?: string;
  readonly group?: string;
  readonly ref: SecretRef;
}

/** The files of a Profile whose content is a sealed secret, with their owners as numbers. */
export function secretFilesOf(profile: Profile): SecretFile[] {
  const uids = new Map(profile.spec.security.users.map((u) => [u.name, u.uid]));
  const gids = new Map(profile.spec.security.groups.map((g) => [g.name, g.gid]));
  const out: SecretFile[] = [];
  for (const f of profile.spec.configuration.files) {
    if (f.type !== 'file' || f.secretRef === undefined) continue;
    out.push({
      path: f.path.replace(/^\/+/, ''),
      // Without a recorded mode, readable by its owner only: these files hold credentials.
      mode: f.mode === undefined ? 0o600 : Number.parseInt(f.mode, 8),
      uid: (f.owner === undefined ? undefined : uids.get(f.owner)) ?? 0,
      gid: (f.group === undefined ? undefined : gids.get(f.group)) ?? 0,
      ...(f.owner === undefined ? {} : { user: f.owner }),
      ...(f.group === undefined ? {} : { group: f.group }),
      ref: f.secretRef,
    });
  }
  return out;
}

/**
 * Copies a tar stream to `out` with the secret files added at its end, each resolved for `host`
 * (so only that host's own secrets), stamped with `mtime`.
 */
export async function addSecretFiles(
  input: Readable,
  out: Writable,
  options: {
    readonly files: readonly SecretFile[];
    readonly resolver: SecretResolver;
    readonly host: string;
    readonly mtime: Date;
  },
): Promise<{ readonly skipped: readonly string[] }> {
  const extract = tar.extract();
  const pack = tar.pack();
  const written = pipeline(pack as unknown as Readable, out);
  const adding = new Set(options.files.map((f) => f.path));
  const copying = (async () => {
    for await (const item of extract) {
      const name = item.header.name.replace(/^\.?\/+/, '').replace(/\/+$/, '');
      // A tree that still holds one of these files (an older snapshot) gives way to the sealed value.
      if (adding.has(name)) {
        item.resume();
        continue;
      }
      const sink = pack.entry(item.header);
      await pipeline(item, sink as unknown as Writable);
    }
  })();
  await Promise.all([pipeline(input, extract as unknown as Writable), copying]);
  const skipped: string[] = [];
  for (const f of options.files) {
    // A reference the capture could not pin names no sealed value (a file it could not read).
    if (f.ref.provider === 'local' && f.ref.digest === undefined) {
      skipped.push(f.path);
      continue;
    }
    const content = await options.resolver.resolve({ ref: f.ref, host: options.host, field: f.path });
    await new Promise<void>((resolve, reject) =>
      pack.entry(
        {
          name: f.path,
          type: 'file',
          size: content.length,
          mode: f.mode,
          uid: f.uid,
          gid: f.gid,
          mtime: options.mtime,
          ...(f.user === undefined ? {} : { uname: f.user }),
          ...(f.group === undefined ? {} : { gname: f.group }),
        },
        Buffer.from(content),
        (error) => (error ? reject(error) : resolve()),
      ),
    );
  }
  pack.finalize();
  await written;
  return { skipped };
}

/**
 * A snapshot as a tar stream with its secret files, from the Profile version it belongs to: what
 * `persona snapshot export --include-secrets` writes. Refused for a snapshot of no Profile version;
 * `skipped` names the files whose value the capture could not seal.
 */
export async function writeTarWithSecrets(
  deps: { readonly store: SnapshotStore; readonly profiles: ProfileDeps },
  record: SnapshotRecord,
  out: Writable,
): Promise<{ readonly skipped: readonly string[] }> {
  if (record.profile === undefined)
    throw new InvalidInputError(
      `snapshot ${record.version} of ${record.host} belongs to no Profile version, which is what says where its secret files go`,
      [{ path: '--include-secrets', message: 'only for snapshots taken by a capture' }],
    );
  const { profile } = await getProfile(deps.profiles, record.profile.name, record.profile.version);
  const tarred = new PassThrough();
  const [, added] = await Promise.all([
    writeTar(deps.store, record, tarred),
    addSecretFiles(tarred, out, {
      files: secretFilesOf(profile),
      resolver: new SecretResolver({ vault: async () => deps.store.secrets }),
      host: record.host,
      mtime: new Date(record.createdAt),
    }),
  ]);
  return added;
}
