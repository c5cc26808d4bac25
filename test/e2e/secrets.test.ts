// Secrets of a real host, end to end: a Debian test host with a password in /etc/shadow, a TLS key
// and an env file with DB_PASSWORD, captured over SSH by the `persona` command into the embedded
// runtime. No value in clear in any DynamoDB item, any bucket object, the Profile or a default
// export; a changed secret is a new Profile version; each version resolves its own values.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { DynamoDBClient, ListTablesCommand, paginateScan } from '@aws-sdk/client-dynamodb';
import { S3Client } from '@aws-sdk/client-s3';
import tar from 'tar-stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from '../../cli/connect.js';
import type { Profile, SecretRef } from '../../core/profile/schema.js';
import { SecretResolver } from '../../core/secret/resolve.js';
import { S3ObjectStore } from '../../core/snapshot/object-store.js';
import { LOCAL_BUCKET } from '../../local/runtime.js';
import { LOCAL_CREDENTIALS, LOCAL_REGION } from '../../local/stand-ins.js';
import { createHost, destroyAllHosts, type TestHost } from '../hosts/harness.js';
import { writeEnvironmentFile } from '../hosts/software.js';
import { runPersona } from '../support/cli.js';
import { startTestPersona, type TestPersona } from '../support/local.js';

const exec = promisify(execFile);
let api: TestPersona;
let host: TestHost;

const ENV_FILE = '/etc/default/shop-api';
const TLS_KEY = '/etc/ssl/private/web.key';
const tlsKey = (body: string) => `-----BEGIN PRIVATE KEY-----\n${body}\n-----END PRIVATE KEY-----\n`;
const V1 = {
  envFile: 'envfile-pw-e2e-one-7731',
  tls: 'TLSKEYBODYe2eONE0x5d1',
  process: 'proc-env-pw-e2e-4410',
};
const V2 = { envFile: 'envfile-pw-e2e-two-9902', tls: 'TLSKEYBODYe2eTWO0x8c2' };
let shadowHash = '';

const persona = (...args: string[]) => runPersona(api, ...args);
const captureArgs = () => [
  'capture',
  `ssh://root@${host.address}`,
  '--key',
  host.privateKeyPath,
  '--name',
  'web',
  '--accept-new-host-key',
  '--process',
  'shop-api',
];

/** `persona snapshot export` as bytes (a tar stream is not text). */
async function exportTar(...extra: string[]): Promise<Buffer> {
  const { stdout } = await exec(
    process.execPath,
    ['cli/bin.js', 'snapshot', 'export', '--host', 'web', ...extra],
    {
      env: { ...process.env, PERSONA_ENDPOINT: api.url, PERSONA_DATA: api.dataDir, NO_COLOR: '1' },
      encoding: 'buffer',
      maxBuffer: 256 * 1024 * 1024,
    },
  );
  return stdout;
}

async function tarEntries(bytes: Buffer): Promise<Map<string, { mode: number; content: string }>> {
  const extract = tar.extract();
  const out = new Map<string, { mode: number; content: string }>();
  const done = (async () => {
    for await (const item of extract) {
      const chunks: Buffer[] = [];
      for await (const c of item) chunks.push(c as Buffer);
      out.set(item.header.name.replace(/\/$/, ''), {
        mode: item.header.mode ?? 0,
        content: Buffer.concat(chunks).toString('utf8'),
      });
    }
  })();
  extract.end(bytes);
  await done;
  return out;
}

/** Every byte DynamoDB Local and the S3-protocol server hold, item by item and object by object. */
async function everythingStored(): Promise<Buffer> {
  const config = { region: LOCAL_REGION, credentials: LOCAL_CREDENTIALS };
  const ddb = new DynamoDBClient({ ...config, endpoint: api.dynamoEndpoint });
  const parts: Buffer[] = [];
  for (const TableName of (await ddb.send(new ListTablesCommand({}))).TableNames ?? []) {
    for await (const page of paginateScan({ client: ddb }, { TableName }))
      parts.push(Buffer.from(JSON.stringify(page.Items ?? [])));
  }
  const objects = new S3ObjectStore(
    new S3Client({ ...config, endpoint: api.s3Endpoint, forcePathStyle: true }),
    LOCAL_BUCKET,
  );
  for await (const o of objects.list('')) parts.push(Buffer.from(await objects.get(o.key)));
  ddb.destroy();
  return Buffer.concat(parts);
}

const secretsInClear = (): string[] => [V1.envFile, V1.tls, V1.process, V2.envFile, V2.tls, shadowHash];

beforeAll(async () => {
  api = await startTestPersona();
  host = await createHost({
    name: 'sec',
    hostname: 'web-s',
    setup: async (h) => {
      await h.run("echo 'root:Shadow-e2e-password-1' | chpasswd");
      await h.run('mkdir -p /etc/ssl/private && chmod 0710 /etc/ssl/private');
      await h.writeFile(TLS_KEY, tlsKey(V1.tls), 0o600);
      await writeEnvironmentFile(h, ENV_FILE, { PORT: '8080', DB_PASSWORD: V1.envFile });
      await h.run('cp /bin/sleep /usr/local/bin/shop-api');
      await h.run(
        `cd / && DB_PASSWORD=${V1.process} setsid /usr/local/bin/shop-api 100000 >/dev/null 2>&1 &`,
      );
    },
  });
  shadowHash = (await host.run('getent shadow root | cut -d: -f2')).trim();
}, 900_000);

afterAll(async () => {
  await destroyAllHosts();
  await api?.stop();
}, 120_000);

async function profileVersion(version: number): Promise<Profile> {
  const r = await api.call('GET', `/profiles/web/versions/${version}`);
  expect(r.status).toBe(200);
  return r.body.profile as Profile;
}

const fileRef = (p: Profile, path: string) =>
  p.spec.configuration.files.find((f) => f.path === path)?.secretRef as SecretRef | undefined;

async function resolveFor(hostName: string, ref: SecretRef | undefined): Promise<string> {
  process.env.PERSONA_DATA = api.dataDir;
  const store = await (await connect()).snapshots();
  const value = await new SecretResolver({ vault: async () => store.secrets }).resolve({
    ref: ref as SecretRef,
    host: hostName,
  });
  return Buffer.from(value).toString('utf8');
}

describe('secrets of a captured host', () => {
  it('are in clear in no DynamoDB item, no bucket object and not in the Profile', async () => {
    expect(shadowHash).toMatch(/^\$/);
    const r = await persona(...captureArgs());
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/profile\s+web version 1/);

    const profile = await profileVersion(1);
    const json = JSON.stringify(profile);
    for (const value of secretsInClear()) expect(json, value).not.toContain(value);
    for (const path of ['/etc/shadow', TLS_KEY, ENV_FILE]) {
      expect(fileRef(profile, path), path).toMatchObject({
        provider: 'local',
        key: `web/file${path}`,
        digest: expect.stringMatching(/^[0-9a-f]{64}$/),
      });
    }

    const stored = await everythingStored();
    for (const value of secretsInClear()) expect(stored.includes(value), value).toBe(false);
  });

  it('are not in a default export, and come back with --include-secrets', async () => {
    const plain = await tarEntries(await exportTar());
    expect(plain.has('etc/hostname')).toBe(true);
    for (const path of ['etc/shadow', 'etc/ssl/private/web.key', 'etc/default/shop-api'])
      expect(plain.has(path), path).toBe(false);
    const everything = [...plain.values()].map((e) => e.content).join('');
    for (const value of secretsInClear()) expect(everything.includes(value), value).toBe(false);

    const full = await tarEntries(await exportTar('--include-secrets'));
    expect(full.get('etc/shadow')?.content).toContain(shadowHash);
    expect(full.get('etc/ssl/private/web.key')).toEqual({ mode: 0o600, content: tlsKey(V1.tls) });
    expect(full.get('etc/default/shop-api')?.content).toContain(`DB_PASSWORD=${V1.envFile}`);
    expect(full.has('etc/hostname')).toBe(true);
  });

  it('make a new Profile version when they change, whose diff names them but holds no value', async () => {
    await host.writeFile(TLS_KEY, tlsKey(V2.tls), 0o600);
    await writeEnvironmentFile(host, ENV_FILE, { PORT: '8080', DB_PASSWORD: V2.envFile });
    const r = await persona(...captureArgs());
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/profile\s+web version 2/);

    const diff = await api.call('GET', '/profiles/web/diff?from=1&to=2');
    expect(diff.status).toBe(200);
    const keys = diff.body.changes.map((c: { key: string }) => c.key);
    expect(keys).toEqual(expect.arrayContaining([TLS_KEY, ENV_FILE]));
    expect(keys).not.toContain('/etc/shadow');
    const text = JSON.stringify(diff.body);
    for (const value of secretsInClear()) expect(text, value).not.toContain(value);
  });

  it('resolve, version by version, to the values each version saw, for their own host only', async () => {
    const [v1, v2] = [await profileVersion(1), await profileVersion(2)];
    expect(await resolveFor('web', fileRef(v1, TLS_KEY))).toBe(tlsKey(V1.tls));
    expect(await resolveFor('web', fileRef(v2, TLS_KEY))).toBe(tlsKey(V2.tls));
    expect(await resolveFor('web', fileRef(v1, ENV_FILE))).toContain(V1.envFile);
    expect(await resolveFor('web', fileRef(v2, ENV_FILE))).toContain(V2.envFile);
    await expect(resolveFor('web-other', fileRef(v2, TLS_KEY))).rejects.toThrow(/"web-other\/…"/);

    const stored = await everythingStored();
    for (const value of secretsInClear()) expect(stored.includes(value), value).toBe(false);
  });

  it('refuse, in the embedded runtime, a credential sealed by KMS: no KMS here, said before any host is reached', async () => {
    const registered = await api.call('POST', '/hosts', {
      body: {
        name: 'web-kms',
        platform: 'baremetal',
        transport: 'ssh',
        address: '127.0.0.1',
        port: 1,
        credentialRef: {
          provider: 'aws-kms',
          keyId: 'alias/persona-hosts',
          ciphertext: Buffer.from('wrapped-key').toString('base64'),
        },
      },
    });
    expect(registered.status).toBe(201);
    const started = await api.call('POST', '/hosts/web-kms/capture', {
      headers: { 'idempotency-key': 'capture-web-kms-1' },
    });
    expect(started.status).toBe(202);
    let op = started.body;
    for (let i = 0; i < 200 && op.status !== 'FAILED' && op.status !== 'SUCCEEDED'; i++) {
      await new Promise((r) => setTimeout(r, 100));
      op = (await api.call('GET', `/operations/${started.body.id}`)).body;
    }
    expect(op.status).toBe('FAILED');
    expect(op.error.code).toBe('INVALID_INPUT');
    expect(op.error.message).toMatch(/aws-kms references need AWS KMS, which this runtime does not have/);
  });
});
