// A capture's secrets, versioned: the real capture operation over the recorded Debian host's script
// output, with the real stores on DynamoDB Local and the S3-protocol server. A changed secret makes
// a new Profile version whose diff names it without its value, and each version resolves its own.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { DynamoDBClient, ListTablesCommand, ScanCommand } from '@aws-sdk/client-dynamodb';
import { S3Client } from '@aws-sdk/client-s3';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import tar from 'tar-stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildProfile } from '../../../core/capture/collect.js';
import { type CaptureDeps, runCapture, startCapture } from '../../../core/capture/operation.js';
import { parseSections } from '../../../core/capture/sections.js';
import { NotFoundError } from '../../../core/errors.js';
import { DynamoHostRegistry } from '../../../core/host/registry.js';
import { HostRegistration } from '../../../core/host/schema.js';
import { DynamoOperationStore } from '../../../core/operation/store.js';
import { DynamoProfileStore } from '../../../core/profile/dynamo-store.js';
import type { Profile, SecretRef } from '../../../core/profile/schema.js';
import { diffVersions, getProfile, type ProfileDeps } from '../../../core/profile/service.js';
import { SecretResolver } from '../../../core/secret/resolve.js';
import { LocalKeyProvider } from '../../../core/snapshot/keys.js';
import { S3ObjectStore } from '../../../core/snapshot/object-store.js';
import { DynamoLocks, DynamoSnapshotRecords } from '../../../core/snapshot/records.js';
import { SnapshotStore } from '../../../core/snapshot/store.js';
import {
  HOSTS_TABLE,
  LOCKS_TABLE,
  OPERATIONS_TABLE,
  PROFILES_TABLE,
  SNAPSHOTS_TABLE,
} from '../../../core/storage/definitions.js';
import type { Transport } from '../../../core/transport/transport.js';
import { LOCAL_CREDENTIALS, LOCAL_REGION, type StandIns, startStandIns } from '../../../local/stand-ins.js';
import { FIXTURE_PROCESS, FIXTURE_SECRETS } from './fixtures/record.js';
import { fixture } from './helpers.js';

const HOST = 'vm';
const BUCKET = 'persona-versioning';
const ROTATED = 'rotated-db-password-51c3';
const SHADOW_V1 = 'root:$6$first-shadow-hash$abc:19000:0:99999:7:::\n';
const SHADOW_V2 = 'root:$6$second-shadow-hash$def:19001:0:99999:7:::\n';

/** The recorded host, with the files it holds: its script output and its tree. */
class RecordedHost implements Transport {
  readonly target = 'recorded://vm';
  output = fixture('debian-12');
  readonly files = new Map<string, string>([
    ['/etc/hostname', 'vm\n'],
    ['/etc/shadow', SHADOW_V1],
    ['/etc/ssh/ssh_host_ed25519_key', '-----BEGIN OPENSSH PRIVATE KEY-----\nhost-key-body\n'],
    ['/etc/ssl/private/unlisted.key', '-----BEGIN PRIVATE KEY-----\nnot-in-the-listing\n'],
  ]);

  async run(command: string) {
    const stdout = command.startsWith('uname') ? 'Linux\n' : this.output;
    return { exitCode: 0, stdout, stderr: '', durationMs: 1 };
  }

  async stream() {
    const pack = tar.pack();
    pack.entry({ name: 'etc/', type: 'directory', mode: 0o755 });
    for (const [path, content] of this.files) pack.entry({ name: path.slice(1), mode: 0o600 }, content);
    pack.finalize();
    return {
      stdout: Readable.from(pack as unknown as AsyncIterable<Buffer>),
      stdin: new PassThrough(),
      done: Promise.resolve({ exitCode: 0, stderr: '' }),
    };
  }

  /** Files the capture may not read, as for a user other than root. */
  readonly unreadable = new Set<string>();

  async getFile(path: string): Promise<Uint8Array> {
    if (this.unreadable.has(path)) throw new Error(`${path}: Permission denied`);
    // Files the recorded listing names that this stand-in does not carry read as a fixed body.
    return Buffer.from(this.files.get(path) ?? `content of ${path}\n`);
  }

  async putFile(): Promise<void> {
    throw new NotFoundError('a recorded host is read only', this.target);
  }

  async close(): Promise<void> {}
}

let dir: string;
let standIns: StandIns;
let ddb: DynamoDBClient;
let s3: S3Client;
let deps: CaptureDeps;
let profiles: ProfileDeps;
let store: SnapshotStore;
const host = new RecordedHost();
let captures = 0;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'persona-versioning-'));
  const tables = [PROFILES_TABLE, SNAPSHOTS_TABLE, LOCKS_TABLE, HOSTS_TABLE, OPERATIONS_TABLE].map(
    (definition) => ({ definition, name: definition.id.toLowerCase() }),
  );
  standIns = await startStandIns({ dataDir: join(dir, 'data'), tables, buckets: [BUCKET] });
  const config = { region: LOCAL_REGION, credentials: LOCAL_CREDENTIALS };
  ddb = new DynamoDBClient({ ...config, endpoint: standIns.dynamoEndpoint });
  s3 = new S3Client({ ...config, endpoint: standIns.s3Endpoint, forcePathStyle: true });
  const doc = DynamoDBDocumentClient.from(ddb, { marshallOptions: { removeUndefinedValues: true } });
  const name = (d: { id: string }) => d.id.toLowerCase();
  profiles = {
    profiles: new DynamoProfileStore(doc, s3, { tableName: name(PROFILES_TABLE), bucketName: BUCKET }),
  };
  store = await SnapshotStore.open({
    objects: new S3ObjectStore(s3, BUCKET),
    records: new DynamoSnapshotRecords(doc, name(SNAPSHOTS_TABLE)),
    locks: new DynamoLocks(doc, name(LOCKS_TABLE)),
    keys: new LocalKeyProvider(join(dir, 'keys')),
  });
  const hosts = new DynamoHostRegistry(doc, name(HOSTS_TABLE));
  await hosts.save(
    HostRegistration.parse({
      name: HOST,
      platform: 'local',
      transport: 'local',
      processes: [FIXTURE_PROCESS],
    }),
    new Date(),
  );
  deps = {
    hosts,
    operations: new DynamoOperationStore(doc, name(OPERATIONS_TABLE)),
    profiles,
    snapshots: async () => store,
    transportFor: async () => host,
  };
}, 180_000);

afterAll(async () => {
  await standIns?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function capture() {
  const id = `capture-${++captures}`;
  await startCapture(deps, HOST, id);
  await runCapture(deps, id);
  return (await deps.operations.get(id)).result as {
    profile: { version: number; created: boolean };
    unknowns: { section: string; reason: string }[];
  };
}

const resolver = () => new SecretResolver({ vault: async () => store.secrets });
const text = (b: Uint8Array) => Buffer.from(b).toString('utf8');
const envRef = (p: Profile, name: string) =>
  p.spec.configuration.env.find((e) => e.name === name)?.secretRef as SecretRef;
const fileRef = (p: Profile, path: string) =>
  p.spec.configuration.files.find((f) => f.path === path)?.secretRef as SecretRef;

/** Every value the capture of the recorded output treats as a secret, and the files' bodies. */
function secretValues(): string[] {
  const built = buildProfile(parseSections(host.output), {
    name: HOST,
    capturedAt: new Date().toISOString(),
  });
  return [
    ...built.secrets.flatMap((s) => (s.value === undefined ? [] : [s.value])),
    ...Object.values(FIXTURE_SECRETS),
    ROTATED,
    SHADOW_V1.trim(),
    SHADOW_V2.trim(),
    'host-key-body',
    'not-in-the-listing',
  ].filter((v) => v.length >= 8);
}

async function everythingStored(): Promise<Buffer> {
  const parts: Buffer[] = [];
  const tables = await ddb.send(new ListTablesCommand({}));
  for (const TableName of tables.TableNames ?? []) {
    const items = await ddb.send(new ScanCommand({ TableName }));
    parts.push(Buffer.from(JSON.stringify(items.Items ?? [])));
  }
  const objects = new S3ObjectStore(s3, BUCKET);
  for await (const o of objects.list('')) parts.push(Buffer.from(await objects.get(o.key)));
  return Buffer.concat(parts);
}

describe('a captured secret, versioned', () => {
  it('is sealed and pinned by digest in the Profile, and in clear nowhere in DynamoDB or the bucket', async () => {
    const result = await capture();
    expect(result.profile).toMatchObject({ version: 1, created: true });
    const v1 = (await getProfile(profiles, HOST, 1)).profile;
    const ref = envRef(v1, 'DB_PASSWORD');
    expect(ref).toMatchObject({ provider: 'local', key: `${HOST}/env/${FIXTURE_PROCESS}/DB_PASSWORD` });
    expect(ref).toHaveProperty('digest', expect.stringMatching(/^[0-9a-f]{64}$/));
    expect(text(await resolver().resolve({ ref, host: HOST }))).toBe(FIXTURE_SECRETS.DB_PASSWORD);
    expect(text(await resolver().resolve({ ref: fileRef(v1, '/etc/shadow'), host: HOST }))).toBe(SHADOW_V1);

    const stored = await everythingStored();
    for (const value of secretValues()) expect(stored.includes(value), value).toBe(false);
  });

  it('keeps files that hold secrets out of the snapshot, sealing even one the listing missed', async () => {
    const record = await store.record(HOST);
    const paths = (await store.manifest(record)).entries.map((e) => e.path);
    expect(paths).toContain('etc/hostname');
    expect(paths).not.toContain('etc/shadow');
    expect(paths).not.toContain('etc/ssh/ssh_host_ed25519_key');
    expect(paths).not.toContain('etc/ssl/private/unlisted.key');
    const sealed = await store.secrets.get(
      `${HOST}/file/etc/ssl/private/unlisted.key`,
      store.secrets.digest(
        `${HOST}/file/etc/ssl/private/unlisted.key`,
        host.files.get('/etc/ssl/private/unlisted.key') ?? '',
      ),
    );
    expect(text(sealed)).toContain('not-in-the-listing');
    const op = await deps.operations.get('capture-1');
    expect(JSON.stringify(op.result)).toContain('/etc/ssl/private/unlisted.key');
  });

  it('makes no new version while the secrets stay the same', async () => {
    expect((await capture()).profile).toMatchObject({ version: 1, created: false });
  });

  it('makes a new version when a secret changes, whose diff names it but carries no value', async () => {
    host.output = host.output.replaceAll(FIXTURE_SECRETS.DB_PASSWORD, ROTATED);
    expect((await capture()).profile).toMatchObject({ version: 2, created: true });

    const delta = await diffVersions(profiles, HOST, 1, 2);
    const json = JSON.stringify(delta);
    expect(delta.changes).toHaveLength(1);
    expect(delta.changes[0]?.key).toContain('DB_PASSWORD');
    expect(json).not.toContain(FIXTURE_SECRETS.DB_PASSWORD);
    expect(json).not.toContain(ROTATED);
  });

  it('resolves each version to its own value', async () => {
    const v1 = (await getProfile(profiles, HOST, 1)).profile;
    const v2 = (await getProfile(profiles, HOST, 2)).profile;
    expect(envRef(v1, 'DB_PASSWORD')).not.toEqual(envRef(v2, 'DB_PASSWORD'));
    expect(text(await resolver().resolve({ ref: envRef(v1, 'DB_PASSWORD'), host: HOST }))).toBe(
      FIXTURE_SECRETS.DB_PASSWORD,
    );
    expect(text(await resolver().resolve({ ref: envRef(v2, 'DB_PASSWORD'), host: HOST }))).toBe(ROTATED);
    // Unchanged secrets keep their digest from one version to the next.
    expect(envRef(v2, 'STRIPE_API_KEY')).toEqual(envRef(v1, 'STRIPE_API_KEY'));
  });

  it('treats a changed secret file as a change of the host too', async () => {
    host.files.set('/etc/shadow', SHADOW_V2);
    expect((await capture()).profile).toMatchObject({ version: 3, created: true });
    const delta = await diffVersions(profiles, HOST, 2, 3);
    expect(delta.changes.map((c) => c.key)).toEqual(['/etc/shadow']);
    expect(JSON.stringify(delta)).not.toContain('shadow-hash');
    const [v2, v3] = await Promise.all([getProfile(profiles, HOST, 2), getProfile(profiles, HOST, 3)]);
    expect(text(await resolver().resolve({ ref: fileRef(v2.profile, '/etc/shadow'), host: HOST }))).toBe(
      SHADOW_V1,
    );
    expect(text(await resolver().resolve({ ref: fileRef(v3.profile, '/etc/shadow'), host: HOST }))).toBe(
      SHADOW_V2,
    );
    const stored = await everythingStored();
    for (const value of secretValues()) expect(stored.includes(value), value).toBe(false);
  });

  it('records a secret file it may not read as unknown, keeping it out of the snapshot, and still captures', async () => {
    host.files.set('/etc/gshadow', 'root:*::\nshadow-group-secret-line\n');
    host.unreadable.add('/etc/gshadow');
    const result = await capture();
    expect(result.unknowns).toContainEqual({
      section: 'secrets',
      reason:
        '/etc/gshadow holds secrets and could not be read: /etc/gshadow: Permission denied: it is neither sealed nor in the snapshot',
    });
    const paths = (await store.manifest(await store.record(HOST))).entries.map((e) => e.path);
    expect(paths).not.toContain('etc/gshadow');
    const latest = (await getProfile(profiles, HOST)).profile;
    expect(fileRef(latest, '/etc/gshadow')).not.toHaveProperty('digest');
    expect((await everythingStored()).includes('shadow-group-secret-line')).toBe(false);
  });
});
