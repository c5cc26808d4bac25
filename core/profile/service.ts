// Profiles with history: every version immutable, new versions only on top of the version the
// writer read (optimistic locking), writes idempotent so that a retried request is harmless.
import { createHash } from 'node:crypto';
import type { Delta } from '../delta/changes.js';
import { diff } from '../delta/diff.js';
import {
  ConflictError,
  CorruptProfileError,
  InvalidInputError,
  NotFoundError,
  PreconditionRequiredError,
} from '../errors.js';
import { sortObjectKeys } from './collections.js';
import type { Profile } from './schema.js';
import type { Page, PageRequest, ProfileHead, ProfileRepository, ProfileVersion } from './store.js';
import { canonicalProfile } from './validate.js';

export interface ProfileDeps {
  readonly profiles: ProfileRepository;
  readonly now?: () => Date;
}

export interface WriteResult {
  readonly version: ProfileVersion;
  /** False when the document equals the latest version and nothing was written. */
  readonly created: boolean;
}

export interface VersionedProfile {
  readonly version: ProfileVersion;
  readonly profile: Profile;
}

export const MAX_PAGE_SIZE = 100;

const sha256 = (text: string) => `sha256:${createHash('sha256').update(text, 'utf8').digest('hex')}`;

/** The stored form: canonical order, stable key order, so equal profiles are equal bytes. */
export function serializeProfile(profile: Profile): string {
  return JSON.stringify(sortObjectKeys(canonicalProfile(profile)));
}

function versionRecord(profile: Profile, version: number, body: string, now: Date): ProfileVersion {
  const hash = sha256(body);
  const { spec, metadata } = canonicalProfile(profile);
  return {
    name: metadata.name,
    version,
    hash,
    specHash: sha256(JSON.stringify(sortObjectKeys(spec))),
    bodyKey: `profiles/${metadata.name}/${hash.slice('sha256:'.length)}.json`,
    sizeBytes: Buffer.byteLength(body, 'utf8'),
    createdAt: now.toISOString(),
    summary: {
      packages: spec.packages.length,
      services: spec.services.length,
      files: spec.configuration.files.length,
      users: spec.security.users.length,
      kernelModules: spec.kernelModules.length,
    },
    ...(metadata.description === undefined ? {} : { description: metadata.description }),
    ...(metadata.labels === undefined ? {} : { labels: metadata.labels }),
  };
}

async function write(
  deps: ProfileDeps,
  profile: Profile,
  version: number,
  expected: number,
): Promise<ProfileVersion> {
  const body = serializeProfile(profile);
  const record = versionRecord(profile, version, body, (deps.now ?? (() => new Date()))());
  await deps.profiles.putBody(record.bodyKey, body);
  await deps.profiles.writeVersion(record, expected);
  return record;
}

async function latestVersion(deps: ProfileDeps, head: ProfileHead): Promise<ProfileVersion> {
  const latest = await deps.profiles.getVersion(head.name, head.latest);
  if (latest === undefined)
    throw new NotFoundError(`profile ${head.name} has no version ${head.latest}`, head.name);
  return latest;
}

/**
 * Creates a profile at version 1. Creating it again with the same document returns the
 * existing version (a retried request); with a different document it is a conflict.
 */
export async function createProfile(deps: ProfileDeps, profile: Profile): Promise<WriteResult> {
  const name = profile.metadata.name;
  const head = await deps.profiles.getHead(name);
  if (head !== undefined) {
    const body = serializeProfile(profile);
    if (head.hash === sha256(body)) return { version: await latestVersion(deps, head), created: false };
    throw new ConflictError(
      `profile ${name} already exists (latest version ${head.latest}); write a new version with PUT /profiles/${name}`,
      head.latest,
    );
  }
  try {
    return { version: await write(deps, profile, 1, 0), created: true };
  } catch (e) {
    // Two creators raced; the loser may still have sent the same document.
    if (e instanceof ConflictError) return createProfile(deps, profile);
    throw e;
  }
}

/**
 * Writes the next version of `name`. `expectedVersion` is the version the caller read (0:
 * the caller believes the profile does not exist yet). A stale expectation is a conflict and
 * writes nothing; a document equal to the latest version writes nothing and returns it.
 */
export async function putProfile(
  deps: ProfileDeps,
  name: string,
  profile: Profile,
  options: { readonly expectedVersion: number | undefined },
): Promise<WriteResult> {
  if (profile.metadata.name !== name) {
    throw new InvalidInputError(`metadata.name must be ${name}, the profile being written`, [
      {
        path: 'metadata.name',
        message: `expected "${name}" (the name in the path), got "${profile.metadata.name}"`,
      },
    ]);
  }
  const expected = options.expectedVersion;
  if (expected === undefined) {
    throw new PreconditionRequiredError(
      `say which version of ${name} this replaces (If-Match: "<version>", or 0 for a new profile)`,
    );
  }
  const head = await deps.profiles.getHead(name);
  const current = head?.latest ?? 0;
  if (head !== undefined) {
    const hash = sha256(serializeProfile(profile));
    // Unchanged, or a retry of the write that made the latest version: nothing to do.
    if (head.hash === hash && (current === expected || current === expected + 1)) {
      return { version: await latestVersion(deps, head), created: false };
    }
  }
  if (current !== expected) {
    throw new ConflictError(
      head === undefined
        ? `profile ${name} does not exist; it cannot be at version ${expected}`
        : `profile ${name} is at version ${current}, not ${expected}`,
      current,
    );
  }
  try {
    return { version: await write(deps, profile, current + 1, current), created: true };
  } catch (e) {
    // Concurrent copies of one request (a client retrying before the first answer came back)
    // race for the same version: the losers find the winner wrote their very document and
    // answer with its result, as a retry after the fact would.
    if (!(e instanceof ConflictError)) throw e;
    const now = await deps.profiles.getHead(name);
    if (now !== undefined && now.latest === current + 1 && now.hash === sha256(serializeProfile(profile))) {
      return { version: await latestVersion(deps, now), created: false };
    }
    throw e;
  }
}

/**
 * Records a captured profile: a new version only when what the host is (the spec) changed.
 * Observations alone (usage, connections) change with every capture and do not make a version.
 */
export async function recordProfile(deps: ProfileDeps, profile: Profile): Promise<WriteResult> {
  const name = profile.metadata.name;
  for (let attempt = 0; ; attempt++) {
    const head = await deps.profiles.getHead(name);
    if (head !== undefined) {
      const latest = await latestVersion(deps, head);
      if (latest.specHash === sha256(JSON.stringify(sortObjectKeys(canonicalProfile(profile).spec)))) {
        return { version: latest, created: false };
      }
    }
    try {
      return await putProfile(deps, name, profile, { expectedVersion: head?.latest ?? 0 });
    } catch (e) {
      // Another capture of the same host wrote first: compare against what it wrote.
      if (!(e instanceof ConflictError) || attempt >= 3) throw e;
    }
  }
}

export async function getProfile(
  deps: ProfileDeps,
  name: string,
  version?: number,
): Promise<VersionedProfile> {
  let wanted = version;
  if (wanted === undefined) {
    const head = await deps.profiles.getHead(name);
    if (head === undefined) throw new NotFoundError(`profile ${name} does not exist`, name);
    wanted = head.latest;
  }
  const record = await deps.profiles.getVersion(name, wanted);
  if (record === undefined) {
    const head = version === undefined ? undefined : await deps.profiles.getHead(name);
    throw new NotFoundError(
      head === undefined && version !== undefined
        ? `profile ${name} does not exist`
        : `profile ${name} has no version ${wanted}${head ? ` (latest is ${head.latest})` : ''}`,
      name,
    );
  }
  return { version: record, profile: await readDocument(deps, record) };
}

/**
 * A version's document, checked against the hash recorded when it was written: a body changed
 * or lost in the bucket is reported as damage to that version, never served as if it were it.
 */
async function readDocument(deps: ProfileDeps, record: ProfileVersion): Promise<Profile> {
  const damaged = (what: string, cause?: unknown) =>
    new CorruptProfileError(
      `profile ${record.name} version ${record.version} is damaged: ${what}`,
      record.name,
      record.version,
      { cause },
    );
  let body: string;
  try {
    body = await deps.profiles.getBody(record.bodyKey);
  } catch (cause) {
    if (cause instanceof NotFoundError) throw damaged(`its document ${record.bodyKey} is missing`, cause);
    throw cause;
  }
  const actual = sha256(body);
  if (actual !== record.hash) {
    throw damaged(`its document ${record.bodyKey} hashes to ${actual}, not the recorded ${record.hash}`);
  }
  try {
    return JSON.parse(body) as Profile;
  } catch (cause) {
    throw damaged(`its document ${record.bodyKey} is not JSON`, cause);
  }
}

const pageSize = (limit: number | undefined) => Math.min(Math.max(limit ?? 50, 1), MAX_PAGE_SIZE);

export async function listProfiles(
  deps: ProfileDeps,
  page: Partial<PageRequest> = {},
): Promise<Page<ProfileHead>> {
  return deps.profiles.listHeads({ limit: pageSize(page.limit), cursor: page.cursor });
}

export async function listVersions(
  deps: ProfileDeps,
  name: string,
  page: Partial<PageRequest> = {},
): Promise<Page<ProfileVersion>> {
  const head = await deps.profiles.getHead(name);
  if (head === undefined) throw new NotFoundError(`profile ${name} does not exist`, name);
  return deps.profiles.listVersions(name, { limit: pageSize(page.limit), cursor: page.cursor });
}

/** The Delta from version `from` to version `to` (default: the latest) of one profile. */
export async function diffVersions(
  deps: ProfileDeps,
  name: string,
  from: number,
  to?: number,
): Promise<Delta> {
  const [a, b] = await Promise.all([getProfile(deps, name, from), getProfile(deps, name, to)]);
  return diff(a.profile, b.profile, {
    from: { name, version: a.version.version },
    to: { name, version: b.version.version },
  });
}
