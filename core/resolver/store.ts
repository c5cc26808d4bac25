// Persona's package store: package files kept on the control side by their SHA-256, with a small
// index (family, name, version, arch, sha256, size), so that a version once fetched stays
// installable on targets with no route to any repository, even after the mirror dropped it.
//
//   <prefix>blobs/<sha256>                                   the package file's bytes
//   <prefix>index/<family>/<name>/<version>_<arch>.json      one IndexEntry (URI-encoded parts)
//
// A blob's name is its content's hash, so it is written once and never changes; every read
// checks the bytes against it before they go anywhere.
import { createHash } from 'node:crypto';
import * as z from 'zod';
import { ConflictError } from '../errors.js';
import type { ObjectStore } from '../snapshot/object-store.js';
import type { Family, PackageSpec } from './manager.js';
import { PackageVerificationError } from './manager.js';

const IndexEntry = z.strictObject({
  family: z.enum(['deb', 'rpm']),
  name: z.string().min(1).max(256),
  version: z.string().min(1).max(256),
  arch: z.string().min(1).max(64),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  size: z.number().int().positive(),
  storedAt: z.iso.datetime(),
});
export type StoredPackage = z.infer<typeof IndexEntry>;

/** Where a resolver finds what it fetched before; PackageStore is the one implementation. */
export interface PackageIndex {
  readonly location: string;
  versionsOf(family: Family, names: readonly string[]): Promise<readonly StoredPackage[]>;
}

const sha256Of = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

export class PackageStore implements PackageIndex {
  constructor(
    private readonly objects: ObjectStore,
    private readonly prefix = 'packages/',
    private readonly now: () => Date = () => new Date(),
  ) {}

  get location(): string {
    return `${this.objects.location}/${this.prefix}`;
  }

  private blobKey(sha256: string): string {
    return `${this.prefix}blobs/${sha256}`;
  }

  private namePrefix(family: Family, name: string): string {
    return `${this.prefix}index/${family}/${encodeURIComponent(name)}/`;
  }

  private entryKey(family: Family, spec: PackageSpec): string {
    return `${this.namePrefix(family, spec.name)}${encodeURIComponent(spec.version)}_${encodeURIComponent(spec.arch)}.json`;
  }

  /**
   * Stores the bytes if they hash to `sha256` (what the repository's index says they are),
   * then records them in the index. The blob is written before its index entry, so an entry
   * never names a missing blob.
   */
  async put(family: Family, spec: PackageSpec, bytes: Uint8Array, sha256: string): Promise<StoredPackage> {
    const actual = sha256Of(bytes);
    if (actual !== sha256) {
      throw new PackageVerificationError(
        `${spec.name} ${spec.version} (${spec.arch}) hashes to ${actual}, not the ${sha256} its index gives: not stored`,
        spec.name,
      );
    }
    const key = this.blobKey(sha256);
    try {
      await this.objects.put(key, bytes, { ifAbsent: true });
    } catch (e) {
      // The same bytes are there already: a blob's name is its content.
      if (!(e instanceof ConflictError)) throw e;
    }
    const entry: StoredPackage = {
      family,
      name: spec.name,
      version: spec.version,
      arch: spec.arch,
      sha256,
      size: bytes.length,
      storedAt: this.now().toISOString(),
    };
    await this.objects.put(
      this.entryKey(family, spec),
      new TextEncoder().encode(`${JSON.stringify(entry)}\n`),
    );
    return entry;
  }

  /** Every stored version of the package, for every architecture; entries that do not parse are skipped. */
  async versions(family: Family, name: string): Promise<StoredPackage[]> {
    return this.versionsOf(family, [name]);
  }

  /**
   * Every stored version of each of the packages: one listing of the family's index, then only
   * the entries of those names are read, however many packages a Profile has.
   */
  async versionsOf(family: Family, names: readonly string[]): Promise<StoredPackage[]> {
    const wanted = new Set(names);
    const familyPrefix = `${this.prefix}index/${family}/`;
    const keys: string[] = [];
    for await (const info of this.objects.list(
      names.length === 1 ? this.namePrefix(family, names[0] as string) : familyPrefix,
    )) {
      const folder = info.key.slice(familyPrefix.length).split('/')[0] ?? '';
      if (wanted.has(safeDecode(folder))) keys.push(info.key);
    }
    const out: StoredPackage[] = [];
    for (const key of keys) {
      const text = new TextDecoder().decode(await this.objects.get(key));
      const parsed = IndexEntry.safeParse(safeJson(text));
      if (parsed.success && parsed.data.family === family && wanted.has(parsed.data.name))
        out.push(parsed.data);
    }
    return out;
  }

  async find(family: Family, spec: PackageSpec): Promise<StoredPackage | undefined> {
    return (await this.versions(family, spec.name)).find(
      (e) => e.version === spec.version && e.arch === spec.arch,
    );
  }

  /** The package file, checked against its SHA-256 and size before it is handed out. */
  async read(entry: StoredPackage): Promise<Uint8Array> {
    const bytes = await this.objects.get(this.blobKey(entry.sha256));
    const actual = sha256Of(bytes);
    if (actual !== entry.sha256 || bytes.length !== entry.size) {
      throw new PackageVerificationError(
        `stored ${entry.name} ${entry.version} (${entry.arch}) in ${this.location} is damaged: SHA-256 ${actual}, ${bytes.length} bytes; expected ${entry.sha256}, ${entry.size} bytes`,
        entry.name,
      );
    }
    return bytes;
  }
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return '';
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
