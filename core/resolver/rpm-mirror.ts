// RHEL-family repositories as the control machine reaches them over HTTP: what versions they
// have, and a verified copy of one of them for Persona's package store — the rpm counterpart of
// AptMirror, for targets with no route to any repository. Verified as dnf verifies a download:
// repodata/repomd.xml names the primary index with its checksum (and the checksum of its
// uncompressed text), the primary index gives each package's location, size and checksum, and
// the package's own header must name that package. Every value read from a repository is data:
// names and versions pass the RPM grammar (rpm.ts), a location must be a plain relative path
// below the repository (no `..`, no xml:base sending the fetch elsewhere).
//
// Not done: GPG signatures (repomd.xml.asc, the package's header signature), which dnf checks
// where the repository configuration asks for it (repo_gpgcheck, gpgcheck); the target's rpm
// checks package signatures on install where its policy says so.
import { createHash } from 'node:crypto';
import { gunzipSync, zstdDecompressSync } from 'node:zlib';
import { InvalidInputError, TooLargeError } from '../errors.js';
import { displayValue } from '../transport/shell.js';
import type { Available, PackageSpec } from './manager.js';
import { PackageVerificationError } from './manager.js';
import { checkRpmArch, checkRpmName, compareRpmVersions, formatEvr, parseEvr } from './rpm.js';

/** One repository: dnf's repo id (used as the origin in resolutions) and its base URL. */
export interface RpmRepository {
  readonly id: string;
  /** The folder holding `repodata/`: `https://mirror.example/rhel9/BaseOS/x86_64/os/`. */
  readonly baseUrl: string;
}

/** One package of a primary index, as fetch verifies it. */
export interface RpmRecord {
  readonly name: string;
  /** `[epoch:]version-release`, the epoch written only when it is not 0 (as rpm -q prints it). */
  readonly version: string;
  readonly arch: string;
  /** The checksum the index gives, by its algorithm. */
  readonly checksum: { readonly type: string; readonly value: string };
  /** SHA-256 of the bytes, which the package store keys by (filled in by fetch). */
  readonly sha256: string;
  readonly size: number;
  /** Relative to the repository's base URL, checked: `Packages/t/tree-1.8.0-10.el9.x86_64.rpm`. */
  readonly location: string;
  /** An xml:base the index gave the location, which is never followed. */
  readonly xmlBase?: string;
  readonly repository: string;
}

export interface RpmMirrorOptions {
  /** Largest uncompressed primary index accepted (bytes). Default 256 MiB. */
  readonly maxIndexBytes?: number;
  /** Largest package file accepted (bytes). Default 2 GiB. */
  readonly maxPackageBytes?: number;
}

const REPO_ID = /^[A-Za-z0-9_.:-]{1,100}$/;
// Path segments as createrepo_c writes them; `.` and `..` are not segments of this grammar.
const SEGMENT = /^[A-Za-z0-9_+~^%][A-Za-z0-9._+~^%-]*$/;
const CHECKSUMS: Readonly<Record<string, string>> = {
  sha224: 'sha224',
  sha256: 'sha256',
  sha384: 'sha384',
  sha512: 'sha512',
};
const MAX_REPOMD = 4 * 1024 * 1024;
// A mirror that stops answering fails the fetch instead of holding the apply for ever.
const FETCH_TIMEOUT_MS = 15 * 60 * 1000;

/** Thrown for repository metadata Persona will not act on: a location outside the repository. */
function badLocation(repository: string, href: string, why: string): InvalidInputError {
  return new InvalidInputError(
    `repository ${repository}: location ${displayValue(href)} ${why}; nothing is fetched from it`,
    [{ path: `${repository}.location.href`, message: why }],
  );
}

/** A location as the repository gives it, checked to name a file below the repository. */
export function checkLocation(repository: string, href: string, suffix: string): string {
  if (href.length === 0 || href.length > 1024) throw badLocation(repository, href, 'is empty or too long');
  if (href.startsWith('/') || /^[A-Za-z][A-Za-z0-9+.-]*:/.test(href))
    throw badLocation(repository, href, 'is not a path relative to the repository');
  const segments = href.split('/');
  if (segments.some((s) => s === '..' || s === '.'))
    throw badLocation(repository, href, 'leaves the repository ("..")');
  if (!segments.every((s) => SEGMENT.test(s)))
    throw badLocation(repository, href, 'holds characters outside a package path');
  if (!href.endsWith(suffix)) throw badLocation(repository, href, `does not name a ${suffix} file`);
  return href;
}

function checkRepository(repo: RpmRepository): { id: string; base: URL } {
  if (!REPO_ID.test(repo.id)) {
    throw new InvalidInputError(`repository id ${displayValue(repo.id)} is not a repo id`, [
      { path: 'repository.id', message: 'expected letters, digits, "_", ".", ":" or "-"' },
    ]);
  }
  let base: URL;
  try {
    base = new URL(repo.baseUrl.endsWith('/') ? repo.baseUrl : `${repo.baseUrl}/`);
  } catch {
    throw new InvalidInputError(`repository ${repo.id}: ${displayValue(repo.baseUrl)} is not a URL`, [
      { path: `${repo.id}.baseUrl`, message: 'not a URL' },
    ]);
  }
  if (base.protocol !== 'http:' && base.protocol !== 'https:') {
    throw new InvalidInputError(`repository ${repo.id}: only http and https repositories are fetched`, [
      { path: `${repo.id}.baseUrl`, message: 'not http or https' },
    ]);
  }
  if (base.search !== '' || base.hash !== '' || base.username !== '' || base.password !== '') {
    throw new InvalidInputError(
      `repository ${repo.id}: the base URL holds a query, fragment or credentials`,
      [{ path: `${repo.id}.baseUrl`, message: 'holds a query, fragment or credentials' }],
    );
  }
  return { id: repo.id, base };
}

// --- a small reader for the XML createrepo_c writes ---------------------------------------

const ENTITIES: Readonly<Record<string, string>> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

function decodeXml(text: string): string {
  return text.replace(/&(#x[0-9A-Fa-f]{1,6}|#[0-9]{1,7}|[a-z]{2,4});/g, (whole, ref: string) => {
    if (ref.startsWith('#x')) return safeCodePoint(Number.parseInt(ref.slice(2), 16)) ?? whole;
    if (ref.startsWith('#')) return safeCodePoint(Number.parseInt(ref.slice(1), 10)) ?? whole;
    return ENTITIES[ref] ?? whole;
  });
}

const safeCodePoint = (n: number) => (n > 0 && n <= 0x10ffff ? String.fromCodePoint(n) : undefined);

function attributes(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of text.matchAll(/([A-Za-z_][\w:.-]*)\s*=\s*(?:"([^"]*)"|'([^']*)')/g)) {
    out.set(m[1] as string, decodeXml(m[2] ?? m[3] ?? ''));
  }
  return out;
}

/** The first `<tag ...>text</tag>` or `<tag .../>` in `xml`: its attributes and text. */
function element(xml: string, tag: string): { attrs: Map<string, string>; text: string } | undefined {
  const m = new RegExp(`<${tag}(\\s[^>]*?)?(?:/>|>([^<]*)</${tag}>)`).exec(xml);
  if (!m) return undefined;
  return { attrs: attributes(m[1] ?? ''), text: decodeXml(m[2] ?? '').trim() };
}

// --- repomd.xml and primary.xml ------------------------------------------------------------

interface MetadataFile {
  readonly location: string;
  readonly checksum: { readonly type: string; readonly value: string };
  readonly openChecksum?: { readonly type: string; readonly value: string };
  readonly size?: number;
  readonly openSize?: number;
}

function checksumOf(
  repository: string,
  found: { attrs: Map<string, string>; text: string } | undefined,
  what: string,
): { type: string; value: string } | undefined {
  if (found === undefined) return undefined;
  const type = found.attrs.get('type') ?? '';
  const value = found.text.toLowerCase();
  if (CHECKSUMS[type] === undefined) {
    throw new PackageVerificationError(
      `repository ${repository}: ${what} has a ${displayValue(type)} checksum, which Persona does not accept (sha224 to sha512)`,
      what,
    );
  }
  if (!/^[0-9a-f]{56,128}$/.test(value)) {
    throw new PackageVerificationError(`repository ${repository}: ${what} has no checksum`, what);
  }
  return { type, value };
}

const sizeOf = (text: string | undefined) => {
  const n = Number(text);
  return text !== undefined && /^[0-9]{1,15}$/.test(text) && Number.isSafeInteger(n) ? n : undefined;
};

/** The primary index's entry of repomd.xml. */
export function parseRepomd(repository: string, xml: string): MetadataFile {
  const block = [...xml.matchAll(/<data\s[^>]*?type\s*=\s*["']primary["'][^>]*>([\s\S]*?)<\/data>/g)][0]?.[1];
  if (block === undefined) {
    throw new PackageVerificationError(
      `repository ${repository}: repomd.xml names no primary index`,
      'repomd',
    );
  }
  const location = element(block, 'location');
  if (location?.attrs.has('xml:base')) {
    throw badLocation(
      repository,
      location.attrs.get('xml:base') ?? '',
      'is an xml:base, which is not followed',
    );
  }
  const href = location?.attrs.get('href') ?? '';
  const suffix = /\.xml(\.[a-z0-9]+)?$/.exec(href)?.[0] ?? '.xml.gz';
  if (!['.xml', '.xml.gz', '.xml.zst'].includes(suffix)) {
    throw new PackageVerificationError(
      `repository ${repository}: the primary index ${displayValue(href)} is compressed in a way Persona does not read (gz and zst are read)`,
      'repomd',
    );
  }
  const checksum = checksumOf(repository, element(block, 'checksum'), 'the primary index');
  if (checksum === undefined) {
    throw new PackageVerificationError(
      `repository ${repository}: the primary index has no checksum`,
      'repomd',
    );
  }
  const openChecksum = checksumOf(repository, element(block, 'open-checksum'), 'the primary index');
  const size = sizeOf(element(block, 'size')?.text);
  const openSize = sizeOf(element(block, 'open-size')?.text);
  return {
    location: checkLocation(repository, href, suffix),
    checksum,
    ...(openChecksum ? { openChecksum } : {}),
    ...(size === undefined ? {} : { size }),
    ...(openSize === undefined ? {} : { openSize }),
  };
}

/**
 * The packages of a primary index. Only the elements before `<format>` are read (the package's
 * own name, arch, version, checksum, size and location; its provides are versions of other
 * things). Source packages and entries off the grammar are dropped; a location is checked when
 * it is fetched, so one bad entry does not hide the others.
 */
export function parsePrimary(repository: string, xml: string): Omit<RpmRecord, 'sha256'>[] {
  const out: Omit<RpmRecord, 'sha256'>[] = [];
  for (const m of xml.matchAll(/<package\s[^>]*>([\s\S]*?)<\/package>/g)) {
    const body = (m[1] ?? '').split('<format>')[0] ?? '';
    const name = element(body, 'name')?.text ?? '';
    const arch = element(body, 'arch')?.text ?? '';
    const v = element(body, 'version')?.attrs;
    const location = element(body, 'location');
    const size = sizeOf(element(body, 'size')?.attrs.get('package'));
    if (arch === 'src' || arch === 'nosrc' || v === undefined || size === undefined) continue;
    try {
      checkRpmName(name, 'name');
      checkRpmArch(arch, 'arch');
      const evr = parseEvr(`${v.get('epoch') ?? '0'}:${v.get('ver') ?? ''}-${v.get('rel') ?? ''}`);
      const checksum = checksumOf(repository, element(body, 'checksum'), name);
      if (checksum === undefined || location === undefined) continue;
      const xmlBase = location.attrs.get('xml:base');
      out.push({
        name,
        version: formatEvr(evr),
        arch,
        checksum,
        size,
        location: location.attrs.get('href') ?? '',
        ...(xmlBase === undefined ? {} : { xmlBase }),
        repository,
      });
    } catch {
      // An entry off the grammar is no candidate: a repository could print anything.
    }
  }
  return out;
}

function decompress(repository: string, location: string, bytes: Uint8Array, max: number): Buffer {
  const options = { maxOutputLength: max };
  try {
    if (location.endsWith('.gz')) return gunzipSync(bytes, options);
    if (location.endsWith('.zst')) return zstdDecompressSync(bytes, options);
  } catch (cause) {
    if ((cause as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE') {
      throw new TooLargeError(
        `repository ${repository}: the primary index is larger than ${max} bytes`,
        max,
        {
          cause,
        },
      );
    }
    throw new PackageVerificationError(
      `repository ${repository}: ${location} does not decompress (${cause instanceof Error ? cause.message : String(cause)})`,
      'primary',
      { cause },
    );
  }
  return Buffer.from(bytes);
}

const digest = (type: string, bytes: Uint8Array) => createHash(type).update(bytes).digest('hex');

// --- the rpm file's own header -------------------------------------------------------------

const TAG = { name: 1000, version: 1001, release: 1002, epoch: 1003, arch: 1022 } as const;

/**
 * Name, EVR and arch from an rpm file's header (after the lead and the signature header), as
 * `rpm -qp` would print them: the bytes must be that package, not just bytes of that hash.
 */
export function readRpmHeader(
  bytes: Uint8Array,
): { name: string; version: string; arch: string } | undefined {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = (at: number) =>
    at + 16 <= bytes.length && bytes[at] === 0x8e && bytes[at + 1] === 0xad && bytes[at + 2] === 0xe8;
  if (bytes.length < 96 || view.getUint32(0) !== 0xedabeedb || !magic(96)) return undefined;
  const headerAt = (at: number) => ({ count: view.getUint32(at + 8), size: view.getUint32(at + 12) });
  const sig = headerAt(96);
  if (sig.count > 10_000 || sig.size > 64 * 1024 * 1024) return undefined;
  const sigLength = 16 + sig.count * 16 + sig.size;
  const main = 96 + sigLength + ((8 - (sigLength % 8)) % 8);
  if (!magic(main)) return undefined;
  const { count, size } = headerAt(main);
  const store = main + 16 + count * 16;
  if (count > 100_000 || store + size > bytes.length) return undefined;
  const values = new Map<number, string | number>();
  for (let i = 0; i < count; i++) {
    const at = main + 16 + i * 16;
    const tag = view.getUint32(at);
    const type = view.getUint32(at + 4);
    const offset = view.getUint32(at + 8);
    if (!Object.values(TAG).includes(tag as never) || offset >= size) continue;
    if (type === 4 && offset + 4 <= size) values.set(tag, view.getUint32(store + offset));
    if (type === 6) {
      const end = bytes.indexOf(0, store + offset);
      if (end < 0 || end > store + size) return undefined;
      values.set(tag, Buffer.from(bytes.subarray(store + offset, end)).toString('utf8'));
    }
  }
  const [name, version, release, arch] = [TAG.name, TAG.version, TAG.release, TAG.arch].map((t) =>
    values.get(t),
  );
  const epoch = values.get(TAG.epoch) ?? 0;
  if (typeof name !== 'string' || typeof version !== 'string' || typeof release !== 'string')
    return undefined;
  if (typeof arch !== 'string' || typeof epoch !== 'number') return undefined;
  try {
    return { name, version: formatEvr(parseEvr(`${epoch}:${version}-${release}`)), arch };
  } catch {
    return undefined;
  }
}

// --- the mirror ----------------------------------------------------------------------------

/**
 * The repositories of a RHEL-family distribution as the control machine reaches them: what
 * versions they have (MirrorLike) and verified bytes of one (Fetcher). The primary indexes are
 * read once per mirror, on first use.
 */
export class RpmMirror {
  readonly family = 'rpm' as const;
  private readonly repositories: readonly { id: string; base: URL }[];
  private index: Promise<Omit<RpmRecord, 'sha256'>[]> | undefined;
  private readonly maxIndex: number;
  private readonly maxPackage: number;

  constructor(repositories: readonly RpmRepository[], options: RpmMirrorOptions = {}) {
    this.repositories = repositories.map(checkRepository);
    this.maxIndex = options.maxIndexBytes ?? 256 * 1024 * 1024;
    this.maxPackage = options.maxPackageBytes ?? 2 * 1024 * 1024 * 1024;
  }

  get location(): string {
    return this.repositories.map((r) => r.base.href).join(' ');
  }

  private async get(url: URL, max: number, what: string): Promise<Uint8Array> {
    // Redirects are followed as dnf follows a mirror's: what arrives is checked by its checksum.
    const response = await fetch(url, { redirect: 'follow', signal: AbortSignal.timeout(FETCH_TIMEOUT_MS) });
    if (!response.ok) {
      await response.body?.cancel().catch(() => undefined);
      throw new PackageVerificationError(`${what}: ${url.href} answered ${response.status}`, what);
    }
    const length = Number(response.headers.get('content-length') ?? 0);
    if (length > max) {
      await response.body?.cancel().catch(() => undefined);
      throw new TooLargeError(`${what}: ${url.href} is ${length} bytes, more than ${max}`, max);
    }
    const bytes = new Uint8Array(await response.arrayBuffer());
    if (bytes.length > max) throw new TooLargeError(`${what}: ${url.href} is more than ${max} bytes`, max);
    return bytes;
  }

  private async readRepository(repo: { id: string; base: URL }): Promise<Omit<RpmRecord, 'sha256'>[]> {
    const repomd = await this.get(
      new URL('repodata/repomd.xml', repo.base),
      MAX_REPOMD,
      `${repo.id} repomd.xml`,
    );
    const primary = parseRepomd(repo.id, Buffer.from(repomd).toString('utf8'));
    const compressed = await this.get(
      new URL(primary.location, repo.base),
      primary.size ?? this.maxIndex,
      `${repo.id} primary index`,
    );
    const got = digest(primary.checksum.type, compressed);
    if (
      got !== primary.checksum.value ||
      (primary.size !== undefined && compressed.length !== primary.size)
    ) {
      throw new PackageVerificationError(
        `repository ${repo.id}: ${primary.location} has ${primary.checksum.type} ${got} (${compressed.length} bytes); repomd.xml says ${primary.checksum.value}${primary.size === undefined ? '' : ` (${primary.size} bytes)`}`,
        'primary',
      );
    }
    const text = decompress(
      repo.id,
      primary.location,
      compressed,
      Math.min(primary.openSize ?? this.maxIndex, this.maxIndex),
    );
    if (primary.openChecksum) {
      const open = digest(primary.openChecksum.type, text);
      if (open !== primary.openChecksum.value) {
        throw new PackageVerificationError(
          `repository ${repo.id}: ${primary.location} decompresses to ${primary.openChecksum.type} ${open}; repomd.xml says ${primary.openChecksum.value}`,
          'primary',
        );
      }
    }
    return parsePrimary(repo.id, text.toString('utf8'));
  }

  private records(): Promise<Omit<RpmRecord, 'sha256'>[]> {
    this.index ??= (async () => {
      const all: Omit<RpmRecord, 'sha256'>[] = [];
      for (const repo of this.repositories) all.push(...(await this.readRepository(repo)));
      return all;
    })();
    // A failed read is not remembered: the next call asks the repositories again.
    this.index.catch(() => {
      this.index = undefined;
    });
    return this.index;
  }

  async available(names: readonly string[]): Promise<Available[]> {
    const wanted = new Set(names);
    return (await this.records())
      .filter((r) => wanted.has(r.name))
      .map((r) => ({ name: r.name, version: r.version, arch: r.arch, origin: r.repository }));
  }

  /**
   * The bytes of one version, verified as dnf verifies a download (the size and checksum the
   * primary index gives) and then by the package's own header naming that package, version
   * and arch. The first repository, in the order given, that has it is the one asked.
   */
  async fetch(spec: PackageSpec): Promise<{ readonly bytes: Uint8Array; readonly record: RpmRecord }> {
    // A saved plan is a document: its specs pass the grammar again before anything is asked.
    checkRpmName(spec.name, 'spec.name');
    parseEvr(spec.version, 'spec.version');
    checkRpmArch(spec.arch, 'spec.arch');
    const found = (await this.records()).find(
      (r) =>
        r.name === spec.name &&
        compareRpmVersions(r.version, spec.version) === 0 &&
        (r.arch === spec.arch || r.arch === 'noarch'),
    );
    const label = `${spec.name} ${spec.version} (${spec.arch})`;
    if (found === undefined) {
      throw new PackageVerificationError(
        `${label} is in none of the repositories ${this.location}`,
        spec.name,
      );
    }
    const repo = this.repositories.find((r) => r.id === found.repository);
    if (repo === undefined) throw new TypeError(`no repository ${found.repository}`);
    if (found.xmlBase !== undefined)
      throw badLocation(repo.id, found.xmlBase, 'is an xml:base, which is not followed');
    const href = checkLocation(repo.id, found.location, '.rpm');
    const url = new URL(href, repo.base);
    // Belt and braces: the checked grammar already keeps the URL below the base.
    if (!url.href.startsWith(repo.base.href)) throw badLocation(repo.id, href, 'leaves the repository');
    const bytes = await this.get(url, Math.min(found.size, this.maxPackage), `${repo.id} ${label}`);
    const got = digest(found.checksum.type, bytes);
    if (got !== found.checksum.value || bytes.length !== found.size) {
      throw new PackageVerificationError(
        `${label} from ${url.href} has ${found.checksum.type} ${got} (${bytes.length} bytes); the primary index of ${repo.id} says ${found.checksum.value} (${found.size} bytes): not stored`,
        spec.name,
      );
    }
    const header = readRpmHeader(bytes);
    if (
      header === undefined ||
      header.name !== found.name ||
      header.arch !== found.arch ||
      compareRpmVersions(header.version, found.version) !== 0
    ) {
      throw new PackageVerificationError(
        `${label} from ${url.href} is not that package: its header says ${header ? `${header.name} ${header.version} (${header.arch})` : 'nothing readable'}`,
        spec.name,
      );
    }
    return { bytes, record: { ...found, location: href, sha256: digest('sha256', bytes) } };
  }
}
