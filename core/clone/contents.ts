// Where a clone's file contents come from: the source's own snapshots, by path, each file
// verified against the content hash its Change names before a byte of it is written; and the
// source's sealed secrets, opened in memory only and only under the source's own prefix.
import { createHash } from 'node:crypto';
import { InvalidInputError, NotFoundError } from '../errors.js';
import type { ContentSource } from '../orchestrator/executors/executor.js';
import { localSecretKeyProblem, type SecretRef } from '../profile/schema.js';
import type { ManifestEntry } from '../snapshot/manifest.js';
import type { SnapshotRecord } from '../snapshot/records.js';
import type { SnapshotStore } from '../snapshot/store.js';
import { displayValue } from '../transport/shell.js';

/** The newest snapshots a content lookup reads: the one of the Profile's version first. */
const SNAPSHOTS_READ = 3;

export class SnapshotContents implements ContentSource {
  private manifests: Promise<Map<string, ManifestEntry>[]> | undefined;

  constructor(
    private readonly store: SnapshotStore,
    /** The source host: its snapshots hold the files, and its secrets are the only ones opened. */
    private readonly host: string,
    private readonly profileVersion?: number,
  ) {}

  /** The source's snapshots, the one taken with the Profile's version first, then the newest. */
  async records(): Promise<SnapshotRecord[]> {
    const all = (await this.store.list(this.host)).toSorted((a, b) => b.version - a.version);
    const own = all.filter((r) => r.profile?.version === this.profileVersion);
    return [...own, ...all.filter((r) => !own.includes(r))].slice(0, SNAPSHOTS_READ);
  }

  private load(): Promise<Map<string, ManifestEntry>[]> {
    this.manifests ??= this.records().then((records) =>
      Promise.all(
        records.map(async (r) => new Map((await this.store.manifest(r)).entries.map((e) => [e.path, e]))),
      ),
    );
    return this.manifests;
  }

  async read(hash: string, path: string): Promise<Uint8Array> {
    const m = /^sha256:([0-9a-f]{64})$/.exec(hash);
    if (!m)
      throw new InvalidInputError(
        `${displayValue(path)}: content hash ${displayValue(hash)} is not a SHA-256`,
        [{ path: 'hash', message: 'expected sha256: and 64 hex digits' }],
      );
    const relative = path.replace(/^\/+/, '');
    for (const manifest of await this.load()) {
      const entry = manifest.get(relative);
      if (entry?.type !== 'file') continue;
      const parts: Uint8Array[] = [];
      for await (const chunk of this.store.content(entry)) parts.push(chunk);
      const bytes = Buffer.concat(parts);
      // Another version of the file (the host changed it since): look further back.
      if (createHash('sha256').update(bytes).digest('hex') === m[1]) return bytes;
    }
    throw new NotFoundError(
      `no snapshot of ${displayValue(this.host)} holds ${displayValue(path)} with content ${hash}: capture the source again`,
      path,
    );
  }

  async readSealed(ref: SecretRef, field: string): Promise<Uint8Array> {
    const refuse = (message: string): never => {
      throw new InvalidInputError(`${field}: ${message}`, [{ path: field, message }]);
    };
    if (ref.provider !== 'local') return refuse(`a ${ref.provider} reference is not opened by a clone`);
    const problem = localSecretKeyProblem(ref.key);
    if (problem !== undefined) refuse(problem);
    if (!ref.key.startsWith(`${this.host}/`))
      refuse(`names a secret of another host than the source ${displayValue(this.host)}`);
    if (ref.digest === undefined) refuse('the reference pins no value (no digest)');
    return this.store.secrets.get(ref.key, ref.digest as string);
  }
}
