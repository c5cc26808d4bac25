// Restoring a snapshot onto a host: the entries go as one pax tar stream over the Transport into
// GNU tar on the host, and what landed is then checked there (type, owner, mode, link target,
// and the digest of every regular file, computed here while streaming) against the manifest.
// The digest is BLAKE2b-512 where the host has coreutils' b2sum (about 2.6× as fast there as
// sha256sum, which coreutils builds without the CPU's SHA instructions), SHA-256 where not.
//
// Confinement on the host rests on three things, none on the host's goodwill:
// - the manifest is checked before anything is sent (manifest.ts): relative names, no "..",
//   every parent a directory, nothing below a link;
// - every directory above a sent entry is sent too, so tar never resolves a path through a
//   directory it did not itself make or check (GNU tar 1.34 writes `etc/f` through an existing
//   `etc -> /elsewhere` when the archive has no `etc/` entry, and replaces the link when it has);
// - before tar runs, a script removes whatever non-directory (a symlink above all) sits at the
//   path of a directory to be restored, parents first; and tar runs without TAR_OPTIONS, whose
//   `--keep-directory-symlink` or `--overwrite` would make it keep or write through links.
// tar's default for an existing file is to unlink it and create a new one, so a symlink at a
// file's path is replaced, not followed. `--unlink-first` is not used: it makes tar try to
// remove an existing non-empty directory, fail, and skip that directory's owner and mode.
// Directory times and modes are set at the very end (`--delay-directory-restore`): hard links
// come after every file in the stream and would otherwise change a finished directory's mtime,
// and a read-only directory would refuse what goes into it.
//
// The stream holds every directory first (path order), then the files in the order their
// content lies in the packs, read ahead through the store's BlobReader (ranged reads of just
// their blobs, several in flight, decoded on the thread pool), then links, devices and fifos,
// hard links last. Nothing is below a link (manifest.ts), so no entry's parent is anything but
// a directory the stream already made.
import { createHash } from 'node:crypto';
import type { Writable } from 'node:stream';
import { InvalidInputError, type Issue, NotFoundError } from '../errors.js';
import { TransportError } from '../transport/errors.js';
import { checkPath } from '../transport/paths.js';
import { displayValue, sh } from '../transport/shell.js';
import type { Transport } from '../transport/transport.js';
import { CorruptionError } from './errors.js';
import { comparePaths, type Manifest, type ManifestEntry, sameContent, sameMetadata } from './manifest.js';
import type { SnapshotRecord } from './records.js';
import type { SnapshotStore } from './store.js';
import { withHoles } from './tar.js';
import { TarWriter } from './tar-writer.js';
import type { RestoreFailure } from './tree.js';

export interface RemoteRestoreOptions {
  /** The directory on the host the snapshot's root is restored as; made when absent. */
  readonly target: string;
  /**
   * Only these entries of the snapshot (manifest paths, e.g. `etc/nginx`); a directory brings
   * everything below it. The directories above them are sent too (see above).
   */
  readonly paths?: readonly string[];
  /** What the target already holds (a manifest of it): entries the same there are not sent. */
  readonly existing?: Manifest;
  /** Give up on the extraction after this long. */
  readonly timeoutMs?: number;
}

/** How a regular file's content is checked on the host: the host's tool decides (see restoreToHost). */
export type HostDigest = 'blake2b512' | 'sha256';

const DIGEST_TOOL: Readonly<Record<HostDigest, { tool: string; hexLength: number; name: string }>> = {
  blake2b512: { tool: 'b2sum', hexLength: 128, name: 'BLAKE2b-512' },
  sha256: { tool: 'sha256sum', hexLength: 64, name: 'SHA-256' },
};

/** An entry as it must be found on the host, with the digest of a regular file's content. */
export interface ExpectedEntry {
  readonly entry: ManifestEntry;
  readonly digest?: { readonly algorithm: HostDigest; readonly hex: string };
}

export interface RemoteRestoreStats {
  /** Entries sent in the tar stream. */
  readonly entries: number;
  /** Entries not sent because `existing` says the host has them as they are. */
  readonly unchanged: number;
  /** Bytes of file content sent. */
  readonly bytes: number;
  /** Bytes of the tar stream, headers included: what crossed the Transport. */
  readonly sentBytes: number;
  readonly seconds: number;
  /** Entries not restored as the snapshot has them, by path (a damaged chunk, a mismatch found on the host). */
  readonly failed: readonly RestoreFailure[];
  /** What was sent, as `verifyOnHost` checks it; pass it again to check the host later. */
  readonly expected: readonly ExpectedEntry[];
}

const FIND_TYPE: Readonly<Record<ManifestEntry['type'], string>> = {
  file: 'f',
  hardlink: 'f',
  dir: 'd',
  symlink: 'l',
  char: 'c',
  block: 'b',
  fifo: 'p',
};
const TYPE_NAME: Readonly<Record<string, string>> = {
  f: 'a regular file',
  d: 'a directory',
  l: 'a symlink',
  c: 'a character device',
  b: 'a block device',
  p: 'a fifo',
  s: 'a socket',
};

// Reads NUL-separated names on standard input, prints `<tool> -z` records for them.
const hashOnHost = (tool: string) =>
  [
    't=$(mktemp -d) || exit 1',
    `trap 'rm -rf -- "$t"' EXIT`,
    'cat >"$t/names"',
    'n=$(nproc 2>/dev/null) || n=1',
    'case $n in *[!0-9]* | "") n=1 ;; esac',
    'if [ "$n" -gt 8 ]; then n=8; fi',
    'if [ "$n" -gt 1 ] && split -n "r/$n" -t "\\0" -- "$t/names" "$t/part."; then',
    `  for p in "$t"/part.*; do xargs -0r ${tool} -z -- <"$p" >"$p.sums" & done`,
    '  wait',
    '  cat "$t"/part.*.sums',
    'else',
    `  xargs -0r ${tool} -z -- <"$t/names"`,
    'fi',
  ].join('\n');

/** How many times the store's `collectBytes` the restore onto a host consumes between collections. */
const REMOTE_COLLECTION_FACTOR = 4;

/** What the stream gathers before it writes to the Transport (see restoreToHost). */
const STREAM_WRITE_BYTES = 256 * 1024;

/** `./path`, so that no name can be read as an option by find, xargs or the digest tool. */
const dotted = (path: string) => `./${path}`;
const nulList = (paths: readonly string[]) =>
  Buffer.from(paths.map((p) => `${dotted(p)}\0`).join(''), 'utf8');

const parentsOf = (path: string): string[] => {
  const out: string[] = [];
  for (let at = path.lastIndexOf('/'); at > 0; at = path.lastIndexOf('/', at - 1))
    out.push(path.slice(0, at));
  return out;
};

const failureOfEntry = (e: unknown) => e instanceof CorruptionError || e instanceof NotFoundError;
const reasonOf = (e: unknown) => (e instanceof Error ? e.message : String(e));

/**
 * Names the host's tools cannot carry as themselves: a lone surrogate has no UTF-8 form, so tar
 * would create another name (U+FFFD) than the manifest's. Every other name a manifest admits
 * (spaces, newlines, backslashes, a leading "-") goes through NUL-separated lists and pax records.
 */
function refuseUncarriable(entries: readonly ManifestEntry[]): void {
  const issues: Issue[] = [];
  for (const e of entries) {
    for (const [field, value] of [
      ['path', e.path],
      ['target', e.target ?? ''],
    ] as const) {
      if (/\p{Cs}/u.test(value) && issues.length < 100)
        issues.push({
          path: e.path,
          message: `${field} ${displayValue(value)} holds a lone surrogate, which has no bytes on the host`,
        });
    }
  }
  if (issues.length > 0) {
    throw new InvalidInputError(
      `the snapshot cannot be restored onto a host: ${issues[0]?.message}${issues.length > 1 ? ` (and ${issues.length - 1} more)` : ''}`,
      issues,
    );
  }
}

/** The entries to send, in an order tar can extract: path order, hard links after every file. */
function chooseEntries(
  manifest: Manifest,
  options: RemoteRestoreOptions,
): { send: ManifestEntry[]; unchanged: number } {
  const byPath = new Map(manifest.entries.map((e) => [e.path, e]));
  let chosen = manifest.entries;
  if (options.paths !== undefined) {
    const issues: Issue[] = [];
    options.paths.forEach((p, i) => {
      if (!byPath.has(p))
        issues.push({ path: `paths[${i}]`, message: `${displayValue(p)} is not an entry of the snapshot` });
    });
    if (issues.length > 0) throw new InvalidInputError(`paths: ${issues[0]?.message}`, issues);
    const roots = new Set(options.paths);
    chosen = manifest.entries.filter(
      (e) => roots.has(e.path) || parentsOf(e.path).some((parent) => roots.has(parent)),
    );
  }
  const have = new Map((options.existing?.entries ?? []).map((e) => [e.path, e]));
  const send = new Set<string>();
  let unchanged = 0;
  for (const e of chosen) {
    const old = have.get(e.path);
    if (old !== undefined && sameContent(old, e) && sameMetadata(old, e)) unchanged++;
    else send.add(e.path);
  }
  for (const e of chosen) {
    if (e.type !== 'hardlink') continue;
    const target = e.target ?? '';
    // A file written anew is a new inode: links to it are made again. A link tar makes needs
    // its file earlier in the same archive.
    if (send.has(target) && !send.has(e.path)) {
      send.add(e.path);
      unchanged--;
    }
    if (send.has(e.path)) send.add(target);
  }
  for (const path of [...send]) for (const parent of parentsOf(path)) send.add(parent);
  const entries = [...send]
    .map((p) => byPath.get(p) as ManifestEntry)
    .sort((a, b) => comparePaths(a.path, b.path));
  return { send: entries, unchanged: Math.max(0, unchanged) };
}

/**
 * The order the stream sends entries in: directories (path order), files where their content
 * lies in the packs, then what is neither (links, devices, fifos), hard links last.
 */
async function streamOrder(
  store: SnapshotStore,
  entries: readonly ManifestEntry[],
): Promise<ManifestEntry[]> {
  // Another process may have written the snapshot after this store loaded its index.
  if (entries.some((e) => (e.chunks ?? []).some((id) => !store.index.has(id)))) await store.loadIndex();
  const place = (e: ManifestEntry): readonly [string, number] => {
    const first = e.chunks?.[0];
    const at = first === undefined ? undefined : store.index.get(first);
    return at === undefined ? ['', 0] : [at.packId, at.offset];
  };
  const files = entries
    .filter((e) => e.type === 'file')
    .map((e) => ({ e, p: place(e) }))
    .sort((a, b) => (a.p[0] < b.p[0] ? -1 : a.p[0] > b.p[0] ? 1 : a.p[1] - b.p[1]))
    .map((x) => x.e);
  return [
    ...entries.filter((e) => e.type === 'dir'),
    ...files,
    ...entries.filter((e) => e.type !== 'dir' && e.type !== 'file' && e.type !== 'hardlink'),
    ...entries.filter((e) => e.type === 'hardlink'),
  ];
}

const hostRun = (transport: Transport, command: string, stdin: Uint8Array) =>
  transport.run(command, { stdin });

/**
 * Makes the target and clears the way for the directories to be restored: parents first, any
 * non-directory at a directory's path (a symlink to anywhere, a file) is removed, so neither tar
 * nor anything after it resolves a path through it. Says which digest the host can check.
 */
async function clearDirectoryPaths(
  transport: Transport,
  target: string,
  dirs: readonly string[],
): Promise<HostDigest> {
  const script =
    sh`set -e; mkdir -p -- ${target}; cd -- ${target}; ` +
    `xargs -0r sh -c 'for d; do if [ -L "$d" ] || { [ -e "$d" ] && [ ! -d "$d" ]; }; then rm -f -- "$d"; fi; done' sh; ` +
    'if command -v b2sum >/dev/null 2>&1; then echo blake2b512; else echo sha256; fi';
  const result = await hostRun(transport, script, nulList(dirs));
  if (result.exitCode !== 0) {
    throw new TransportError(
      `cannot prepare ${target} on ${transport.target} for the restore: ${result.stderr.trim() || `exit code ${result.exitCode}`}`,
      'failed',
      transport.target,
    );
  }
  return result.stdout.trim().split('\n').pop() === 'blake2b512' ? 'blake2b512' : 'sha256';
}

/** Restores a snapshot (or `paths` of it) into `target` on the host, then verifies it there. */
export async function restoreToHost(
  store: SnapshotStore,
  record: SnapshotRecord,
  transport: Transport,
  options: RemoteRestoreOptions,
): Promise<RemoteRestoreStats> {
  const started = performance.now();
  // "/" only for a subset: trees restored in place (a clone's application trees), never a whole
  // snapshot over a running system. The caller checks that no directory above them is a link.
  const target =
    options.target === '/' && (options.paths?.length ?? 0) > 0 ? '/' : checkPath(options.target, 'target');
  // Checked as it is read (manifest.ts): a manifest that could lead outside the target is refused whole.
  const manifest = await store.manifest(record);
  const chosen = chooseEntries(manifest, options);
  refuseUncarriable(chosen.send);
  const { unchanged } = chosen;
  const send = await streamOrder(store, chosen.send);
  // Sparse files go through withHoles (their holes become zeros); the rest read ahead.
  const ahead = send.flatMap((entry, index) =>
    entry.type === 'file' && !entry.sparse && (entry.chunks?.length ?? 0) > 0 ? [{ index, entry }] : [],
  );
  // Lent: each chunk is copied into the tar stream's block before the next is asked for.
  // Collections are prompted a quarter as often as a restore into a directory prompts them:
  // here the host waits on this process's CPU, which on the bench's /usr and /etc (147.6 MiB)
  // spent about 0.4 s less (2.3 s against 2.7 s) for a peak some 15-40 MiB higher.
  const reader = store.blobReader(ahead, {
    lend: true,
    collectBytes: Math.min(REMOTE_COLLECTION_FACTOR * store.limits.collectBytes, Number.MAX_SAFE_INTEGER),
  });
  const failed: RestoreFailure[] = [];
  const expected: ExpectedEntry[] = [];
  const damaged = new Set<string>();
  let bytes = 0;
  const digest = await clearDirectoryPaths(
    transport,
    target,
    send.filter((e) => e.type === 'dir').map((e) => e.path),
  );
  // TAR_OPTIONS from the host's environment would add options to ours: it is removed.
  const command = sh`unset TAR_OPTIONS; cd -- ${target} && exec tar -x -f - --numeric-owner --same-owner --same-permissions --delay-directory-restore`;
  const handle = await transport.stream(command, {
    input: true,
    ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
  });
  // tar writes nothing on standard output here; it is drained so the channel never stalls.
  handle.stdout.resume();
  // Written in blocks of STREAM_WRITE_BYTES: a tree of small files crosses in full packets, and
  // each chunk, a view of the reader's window, is copied once, into a block.
  const writer = new TarWriter(handle.stdin as Writable, { blockBytes: STREAM_WRITE_BYTES });
  let streamError: unknown;
  try {
    for (const [index, e] of send.entries()) {
      await writer.entry(e);
      if (e.type === 'file') {
        const hash = createHash(digest);
        const content = reader.planned(index) ? reader.content(index) : withHoles(store, e);
        let sent = 0;
        try {
          for await (const piece of content) {
            hash.update(piece);
            sent += piece.length;
            await writer.content(piece);
          }
        } catch (error) {
          if (!failureOfEntry(error)) throw error;
          // A tar entry has the size its header announced: the rest is zeros, and the file is
          // removed from the host afterwards.
          damaged.add(e.path);
          failed.push({ path: e.path, reason: reasonOf(error), damaged: true });
          await writer.zeros((e.size ?? 0) - sent);
        }
        bytes += e.size ?? 0;
        if (!damaged.has(e.path))
          expected.push({ entry: e, digest: { algorithm: digest, hex: hash.digest('hex') } });
        continue;
      }
      if (!(e.type === 'hardlink' && damaged.has(e.target ?? ''))) expected.push({ entry: e });
    }
    await writer.finish();
  } catch (error) {
    streamError = error;
    for (const { index } of ahead) reader.release(index);
    (handle.stdin as Writable).destroy();
  }
  const sentBytes = writer.written;
  // The host's word on what happened comes before ours: a tar that stopped reading explains a
  // broken pipe here.
  const { exitCode, stderr } = await handle.done;
  if (streamError !== undefined && exitCode === 0) throw streamError;
  if (streamError !== undefined) {
    throw new TransportError(
      `tar on ${transport.target} stopped the restore into ${target}: ${stderr.trim() || `exit code ${exitCode}`}`,
      'failed',
      transport.target,
      { cause: streamError },
    );
  }
  if (damaged.size > 0) {
    // What tar wrote for a damaged file is zeros past the damage: not left looking restored.
    const hardlinks = send
      .filter((e) => e.type === 'hardlink' && damaged.has(e.target ?? ''))
      .map((e) => e.path);
    await hostRun(transport, sh`cd -- ${target} && xargs -0r rm -f --`, nulList([...damaged, ...hardlinks]));
    for (const path of hardlinks) failed.push({ path, reason: `its link target was damaged`, damaged: true });
  }
  const found = await verifyOnHost(transport, target, expected);
  failed.push(...found);
  if (exitCode !== 0 && found.length === 0) {
    failed.push({ path: '.', reason: `tar exited with ${exitCode}: ${stderr.trim()}` });
  }
  failed.sort((a, b) => (a.path === '.' ? -1 : b.path === '.' ? 1 : comparePaths(a.path, b.path)));
  return {
    entries: send.length,
    unchanged,
    bytes,
    sentBytes,
    seconds: (performance.now() - started) / 1000,
    failed,
    expected,
  };
}

interface Found {
  readonly type: string;
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly size: number;
  readonly inode: string;
  readonly link: string;
}

// One record per name: name, type, mode, uid, gid, size, inode, link target; fields end in NUL.
const FIND_FORMAT = '%p\\0%y\\0%m\\0%U\\0%G\\0%s\\0%i\\0%l\\0';
const FIELDS = 8;

/**
 * Checks on the host that every entry is there as expected: its type, owner and mode (one
 * `find` pass, which does not follow links), a symlink's target, a hard link's inode (the
 * file's), and the digest of every regular file (one `b2sum` or `sha256sum` pass). Names go as
 * NUL-separated lists on standard input, so any name the manifest admits is carried whole.
 * Returns what differs, by path; nothing is changed on the host.
 */
export async function verifyOnHost(
  transport: Transport,
  target: string,
  expected: readonly ExpectedEntry[],
): Promise<RestoreFailure[]> {
  // Reading only: "/" is a target like another here.
  if (target !== '/') checkPath(target, 'target');
  refuseUncarriable(expected.map((x) => x.entry));
  const names = [
    ...new Set(
      expected.flatMap((x) => [x.entry.path, ...(x.entry.type === 'hardlink' ? [x.entry.target ?? ''] : [])]),
    ),
  ];
  const listing = await hostRun(
    transport,
    sh`cd -- ${target} && find -files0-from - -maxdepth 0 -printf ${FIND_FORMAT}`,
    nulList(names),
  );
  const fields = listing.stdout.split('\0');
  const found = new Map<string, Found>();
  for (let i = 0; i + FIELDS <= fields.length; i += FIELDS) {
    const [name = '', type = '', mode = '', uid = '', gid = '', size = '', inode = '', link = ''] =
      fields.slice(i, i + FIELDS);
    found.set(name.slice(2), {
      type,
      mode: Number.parseInt(mode, 8),
      uid: Number(uid),
      gid: Number(gid),
      size: Number(size),
      inode,
      link,
    });
  }
  if (listing.exitCode !== 0 && found.size === 0) {
    throw new TransportError(
      `cannot list ${target} on ${transport.target}: ${listing.stderr.trim() || `exit code ${listing.exitCode}`}`,
      'failed',
      transport.target,
    );
  }
  const failed: RestoreFailure[] = [];
  const toHash: ExpectedEntry[] = [];
  for (const x of expected) {
    const e = x.entry;
    const f = found.get(e.path);
    if (f === undefined) {
      failed.push({ path: e.path, reason: 'missing on the host' });
      continue;
    }
    const want = FIND_TYPE[e.type];
    if (f.type !== want) {
      failed.push({
        path: e.path,
        reason: `is ${TYPE_NAME[f.type] ?? f.type} on the host, not ${TYPE_NAME[want]}`,
      });
      continue;
    }
    const wrong: string[] = [];
    if (f.uid !== e.uid || f.gid !== e.gid) wrong.push(`owner ${f.uid}:${f.gid}, not ${e.uid}:${e.gid}`);
    // A symlink's own mode means nothing on Linux.
    if (e.type !== 'symlink' && f.mode !== e.mode)
      wrong.push(`mode ${f.mode.toString(8).padStart(4, '0')}, not ${e.mode.toString(8).padStart(4, '0')}`);
    if (e.type === 'symlink' && f.link !== e.target)
      wrong.push(`points to ${displayValue(f.link)}, not ${displayValue(e.target ?? '')}`);
    if (e.type === 'file' && f.size !== (e.size ?? 0)) wrong.push(`size ${f.size}, not ${e.size ?? 0}`);
    if (e.type === 'hardlink' && found.get(e.target ?? '')?.inode !== f.inode)
      wrong.push(`is not a hard link to ${displayValue(e.target ?? '')}`);
    if (wrong.length > 0) failed.push({ path: e.path, reason: wrong.join('; ') });
    else if (e.type === 'file' && x.digest !== undefined) toHash.push(x);
  }
  for (const algorithm of Object.keys(DIGEST_TOOL) as HostDigest[]) {
    const these = toHash.filter((x) => x.digest?.algorithm === algorithm);
    if (these.length > 0) failed.push(...(await checkDigests(transport, target, algorithm, these)));
  }
  return failed.sort((a, b) => comparePaths(a.path, b.path));
}

/** The files' content checked with the host's `b2sum` or `sha256sum`: what differs, by path. */
async function checkDigests(
  transport: Transport,
  target: string,
  algorithm: HostDigest,
  toHash: readonly ExpectedEntry[],
): Promise<RestoreFailure[]> {
  const { tool, hexLength, name } = DIGEST_TOOL[algorithm];
  // -z ends each line with NUL and leaves names unescaped (GNU coreutils 9.1, Debian bookworm).
  // The names are dealt round-robin to one process per core (at most 8), each writing to a
  // file of its own, so that their records never interleave; one process when split cannot.
  const hashed = await hostRun(
    transport,
    sh`cd -- ${target} && ` + hashOnHost(tool),
    nulList(toHash.map((x) => x.entry.path)),
  );
  const record = new RegExp(`^([0-9a-f]{${hexLength}}) {2}\\./([\\s\\S]*)$`);
  const sums = new Map<string, string>();
  for (const line of hashed.stdout.split('\0')) {
    const m = record.exec(line);
    if (m) sums.set(m[2] as string, m[1] as string);
  }
  const failed: RestoreFailure[] = [];
  for (const x of toHash) {
    const sum = sums.get(x.entry.path);
    const want = x.digest?.hex;
    if (sum === undefined) failed.push({ path: x.entry.path, reason: 'could not be read on the host' });
    else if (sum !== want)
      failed.push({ path: x.entry.path, reason: `content differs on the host: ${name} ${sum}, not ${want}` });
  }
  return failed;
}
