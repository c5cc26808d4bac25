// The three tools on the same tree: Persona's SnapshotStore (over the S3 protocol and DynamoDB,
// each snapshot in a child process), restic and borg (Debian's packages), each with a fresh
// repository of its own in the benchmark's work directory.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import type { ChunkerParams } from '../../core/snapshot/chunker.js';
import { LOCAL_CREDENTIALS, LOCAL_REGION } from '../../local/stand-ins.js';
import type { ChildJob, ChildResult } from './persona-child.js';
import { cpuSecondsOf, fileBytes, type Run, timed } from './run.js';

export interface Ingest {
  readonly run: Run;
  /** For Persona: the child's own figures (start-up, store open, the work itself). */
  readonly child?: ChildResult;
  /** CPU seconds the stand-ins spent serving this run (Persona only). */
  readonly s3CpuS?: number;
  readonly dynamoCpuS?: number;
  /** What the tool says it did, in a few words. */
  readonly said?: string;
}

export interface Tool {
  readonly name: string;
  init(): Promise<void>;
  ingest(tree: string, version: number): Promise<Ingest>;
  restore(target: string): Promise<Ingest>;
  /** Bytes the repository holds. */
  storedBytes(): Promise<number>;
  /** Bytes of local caches kept beside the repository (not part of it). */
  cacheBytes(): number;
}

const dirBytes = (dir: string) => {
  try {
    return fileBytes(dir);
  } catch {
    return 0;
  }
};

const lastJson = (stdout: string, pick: (o: Record<string, unknown>) => boolean) => {
  for (const line of stdout.trim().split('\n').reverse()) {
    try {
      const o = JSON.parse(line) as Record<string, unknown>;
      if (pick(o)) return o;
    } catch {
      // Not JSON (progress output).
    }
  }
  return undefined;
};

/** restic 0.14 with repository format 2, whose default compression is zstd ("auto"). */
export class Restic implements Tool {
  readonly name = 'restic';
  private readonly repo: string;
  private readonly cache: string;
  private readonly env: Record<string, string>;

  constructor(work: string) {
    this.repo = join(work, 'restic-repo');
    this.cache = join(work, 'restic-cache');
    this.env = { RESTIC_PASSWORD: 'bench', RESTIC_CACHE_DIR: this.cache, RESTIC_PROGRESS_FPS: '0.1' };
  }

  async init() {
    await timed('restic', ['-r', this.repo, 'init', '--repository-version', '2'], { env: this.env });
  }

  async ingest(tree: string): Promise<Ingest> {
    // From inside the tree, as `.`: the snapshot's root is the tree's root, as with the others.
    const run = await timed('restic', ['-r', this.repo, 'backup', '.', '--host', 'bench', '--json'], {
      cwd: tree,
      env: this.env,
    });
    const s = lastJson(run.stdout, (o) => o.message_type === 'summary');
    const said = s
      ? `files ${s.files_new} new, ${s.files_changed} changed, ${s.files_unmodified} unmodified; ${s.data_blobs} new blobs`
      : undefined;
    return { run, ...(said ? { said } : {}) };
  }

  async restore(target: string): Promise<Ingest> {
    return {
      run: await timed('restic', ['-r', this.repo, 'restore', 'latest', '--target', target], {
        env: this.env,
      }),
    };
  }

  async storedBytes() {
    return dirBytes(this.repo);
  }

  /** Bytes per folder of the repository: data (packs), index, snapshots, keys. */
  breakdown(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const d of ['data', 'index', 'snapshots', 'keys']) out[d] = dirBytes(join(this.repo, d));
    return out;
  }

  cacheBytes() {
    return dirBytes(this.cache);
  }
}

/** borg 1.2 with repokey encryption and zstd level 3, the level Persona uses. */
export class Borg implements Tool {
  readonly name = 'borg';
  private readonly repo: string;
  private readonly base: string;
  private readonly env: Record<string, string>;

  constructor(work: string) {
    this.repo = join(work, 'borg-repo');
    this.base = join(work, 'borg-base');
    this.env = {
      BORG_PASSPHRASE: 'bench',
      BORG_BASE_DIR: this.base,
      BORG_RELOCATED_REPO_ACCESS_IS_OK: 'yes',
    };
  }

  async init() {
    await timed('borg', ['init', '-e', 'repokey', this.repo], { env: this.env });
  }

  async ingest(tree: string, version: number): Promise<Ingest> {
    const run = await timed(
      'borg',
      ['create', '--compression', 'zstd,3', '--json', `${this.repo}::v${version}`, '.'],
      { cwd: tree, env: this.env },
    );
    const stats = (
      JSON.parse(run.stdout) as { archive?: { stats?: { nfiles?: number; deduplicated_size?: number } } }
    ).archive?.stats;
    return {
      run,
      ...(stats
        ? {
            said: `${stats.nfiles} files, ${((stats.deduplicated_size ?? 0) / 1024 / 1024).toFixed(1)} MiB new after dedup+compression`,
          }
        : {}),
    };
  }

  async restore(target: string): Promise<Ingest> {
    mkdirSync(target, { recursive: true });
    // Numeric ids, as restic and Persona restore them: the tree's users are the rootfs's, not this machine's.
    return {
      run: await timed('borg', ['extract', '--numeric-ids', `${this.repo}::${await this.last()}`], {
        cwd: target,
        env: this.env,
      }),
    };
  }

  private async last(): Promise<string> {
    const run = await timed('borg', ['list', '--short', '--last', '1', this.repo], { env: this.env });
    return run.stdout.trim();
  }

  async storedBytes() {
    return dirBytes(this.repo);
  }

  cacheBytes() {
    return dirBytes(this.base);
  }
}

export interface PersonaSetup {
  readonly s3: S3Client;
  readonly s3Endpoint: string;
  readonly dynamoEndpoint: string;
  /** Where s3rver keeps its files: the bucket's folder is underneath. */
  readonly s3Dir: string;
  /** The JVM of DynamoDB Local, for its CPU time. */
  readonly dynamoPid: number | undefined;
}

const CHILD = fileURLToPath(new URL('./persona-child.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** Persona's SnapshotStore, each run in a child process: what `persona snapshot` does. */
export class Persona implements Tool {
  private readonly keysDir: string;

  constructor(
    readonly name: string,
    private readonly setup: PersonaSetup,
    readonly bucket: string,
    readonly tables: { snapshots: string; locks: string },
    work: string,
    readonly chunker?: ChunkerParams,
  ) {
    this.keysDir = join(work, `keys-${bucket}`);
    this.cacheDir = join(work, `cache-${bucket}`);
  }

  /**
   * What `persona` keeps under ~/.cache/persona, here per bucket: listing chunks
   * (core/snapshot/listing-cache.ts) and V8's compile cache (cli/compile-cache.js), which the
   * first run of the child fills.
   */
  private readonly cacheDir: string;

  cacheBytes() {
    return dirBytes(join(this.cacheDir, 'listings'));
  }

  private job(mode: ChildJob['mode'], dir: string): ChildJob {
    return {
      mode,
      dir,
      host: 'rootfs',
      s3: this.setup.s3Endpoint,
      dynamo: this.setup.dynamoEndpoint,
      region: LOCAL_REGION,
      credentials: LOCAL_CREDENTIALS,
      bucket: this.bucket,
      snapshotsTable: this.tables.snapshots,
      locksTable: this.tables.locks,
      keysDir: this.keysDir,
      cacheDir: join(this.cacheDir, 'listings'),
      ...(this.chunker ? { chunker: this.chunker } : {}),
    };
  }

  async init() {}

  /**
   * The child as one file bundled by esbuild (as the `persona` command ships), or through tsx
   * when no bundle is given: then TypeScript is compiled at every start.
   */
  bundle: string | undefined;

  private async child(job: ChildJob, tsx = this.bundle === undefined): Promise<Ingest> {
    const cpu0 = process.cpuUsage();
    const dynamo0 = this.setup.dynamoPid === undefined ? undefined : cpuSecondsOf(this.setup.dynamoPid);
    const args = tsx || !this.bundle ? ['--import', 'tsx', CHILD] : [this.bundle];
    const run = await timed(process.execPath, [...args, JSON.stringify(job)], {
      cwd: ROOT,
      env: { NODE_COMPILE_CACHE: join(this.cacheDir, 'compile-cache') },
    });
    const cpu = process.cpuUsage(cpu0);
    const dynamo1 = this.setup.dynamoPid === undefined ? undefined : cpuSecondsOf(this.setup.dynamoPid);
    const child = JSON.parse(run.stdout.trim().split('\n').pop() ?? '{}') as ChildResult;
    return {
      run,
      child,
      // This process does nothing but serve S3 while the child runs.
      s3CpuS: (cpu.user + cpu.system) / 1e6,
      ...(dynamo0 !== undefined && dynamo1 !== undefined ? { dynamoCpuS: dynamo1 - dynamo0 } : {}),
      ...(child.snapshot
        ? {
            said: `${child.snapshot.files} files, ${child.snapshot.chunks} chunks, ${child.snapshot.newChunks} new (${(child.snapshot.newBytes / 1024 / 1024).toFixed(1)} MiB before compression)`,
          }
        : {}),
    };
  }

  ingest(tree: string): Promise<Ingest> {
    return this.child(this.job('snapshot', tree));
  }

  restore(target: string): Promise<Ingest> {
    return this.child(this.job('restore', target));
  }

  /** Start-up through tsx, doing nothing. */
  noop(): Promise<Ingest> {
    return this.child(this.job('noop', ''), true);
  }

  /** Sum of the object sizes under `snapshots/`, as S3 bills them. */
  async storedBytes(): Promise<number> {
    let total = 0;
    let token: string | undefined;
    do {
      const out = await this.setup.s3.send(
        new ListObjectsV2Command({ Bucket: this.bucket, Prefix: 'snapshots/', ContinuationToken: token }),
      );
      for (const o of out.Contents ?? []) total += o.Size ?? 0;
      token = out.IsTruncated ? out.NextContinuationToken : undefined;
    } while (token);
    return total;
  }

  /** Stored bytes by kind of object: packs, indexes, manifests, config. */
  async breakdown(): Promise<Record<string, { objects: number; bytes: number }>> {
    const kinds: Record<string, { objects: number; bytes: number }> = {};
    let token: string | undefined;
    do {
      const out = await this.setup.s3.send(
        new ListObjectsV2Command({ Bucket: this.bucket, Prefix: 'snapshots/', ContinuationToken: token }),
      );
      for (const o of out.Contents ?? []) {
        const kind = (o.Key ?? '').split('/')[1] ?? '?';
        const k = kinds[kind] ?? { objects: 0, bytes: 0 };
        kinds[kind] = k;
        k.objects++;
        k.bytes += o.Size ?? 0;
      }
      token = out.IsTruncated ? out.NextContinuationToken : undefined;
    } while (token);
    return kinds;
  }

  /** Start-up of the child from a single bundled file instead of through tsx. */
  noopBundled(bundle: string): Promise<Run> {
    return timed(process.execPath, [bundle, JSON.stringify(this.job('noop', ''))], { cwd: ROOT });
  }

  /** What s3rver keeps on disk for the bucket: the objects plus its metadata files. */
  serverBytes(): number {
    return dirBytes(join(this.setup.s3Dir, this.bucket));
  }
}
