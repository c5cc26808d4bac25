// Resolving secret references for one host: local references through the sealed store and only
// under the host's own prefix; aws-kms through KMS Decrypt with the host in the encryption context.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DecryptCommand, InvalidCiphertextException, KMSClient } from '@aws-sdk/client-kms';
import { S3Client } from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { Credentials } from '../../../core/capture/reach.js';
import { InvalidInputError } from '../../../core/errors.js';
import { HostRegistration } from '../../../core/host/schema.js';
import type { SecretRef } from '../../../core/profile/schema.js';
import { SecretResolver } from '../../../core/secret/resolve.js';
import { deriveKeys, generateMasterKey } from '../../../core/snapshot/keys.js';
import { S3ObjectStore } from '../../../core/snapshot/object-store.js';
import { SecretVault } from '../../../core/snapshot/secrets.js';
import { LOCAL_CREDENTIALS, LOCAL_REGION, type StandIns, startStandIns } from '../../../local/stand-ins.js';

let dir: string;
let standIns: StandIns;
let vault: SecretVault;
const kms = mockClient(KMSClient);

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'persona-resolve-'));
  standIns = await startStandIns({ dataDir: join(dir, 'data'), tables: [], buckets: ['secrets'] });
  const s3 = new S3Client({
    endpoint: standIns.s3Endpoint,
    region: LOCAL_REGION,
    credentials: LOCAL_CREDENTIALS,
    forcePathStyle: true,
  });
  vault = new SecretVault(new S3ObjectStore(s3, 'secrets'), deriveKeys(generateMasterKey(), 'resolve-test'));
}, 120_000);

afterAll(async () => {
  await standIns?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

beforeEach(() => kms.reset());

const text = (b: Uint8Array) => Buffer.from(b).toString('utf8');

describe('SecretResolver, local references', () => {
  it("resolves each pinned value of the host's own secret", async () => {
    const resolver = new SecretResolver({ vault: async () => vault });
    const v1 = await vault.put('web/env/app/DB_PASSWORD', 'first-value');
    const v2 = await vault.put('web/env/app/DB_PASSWORD', 'second-value');
    const ref = (digest: string): SecretRef => ({
      provider: 'local',
      key: 'web/env/app/DB_PASSWORD',
      digest,
    });

    expect(text(await resolver.resolve({ ref: ref(v1.digest), host: 'web' }))).toBe('first-value');
    expect(text(await resolver.resolve({ ref: ref(v2.digest), host: 'web' }))).toBe('second-value');
  });

  it("refuses another host's secret even with its right digest, naming the field", async () => {
    const resolver = new SecretResolver({ vault: async () => vault });
    const theirs = await vault.put('db/env/postgres/POSTGRES_PASSWORD', 'not-yours');
    const error = await resolver
      .resolve({
        ref: { provider: 'local', key: 'db/env/postgres/POSTGRES_PASSWORD', digest: theirs.digest },
        host: 'web',
        field: 'credentialRef',
      })
      .catch((e) => e);

    expect(error).toBeInstanceOf(InvalidInputError);
    expect(error.issues[0].path).toBe('credentialRef.key');
    expect(error.message).toContain('"web/…"');
    // A host whose name is a prefix of another's is not that other host.
    await expect(
      resolver.resolve({
        ref: { provider: 'local', key: 'db/env/postgres/POSTGRES_PASSWORD', digest: theirs.digest },
        host: 'd',
      }),
    ).rejects.toBeInstanceOf(InvalidInputError);
  });

  it.each([
    'file:/etc/shadow',
    '/etc/shadow',
    'web/../db/env/postgres/POSTGRES_PASSWORD',
    'web/env/app/\u0000',
  ])('refuses %j: a reference never names a file or leaves its host', async (key) => {
    const resolver = new SecretResolver({ vault: async () => vault });
    await expect(
      resolver.resolve({ ref: { provider: 'local', key, digest: 'a'.repeat(64) }, host: 'web' }),
    ).rejects.toBeInstanceOf(InvalidInputError);
  });

  it('refuses a local reference that pins no value', async () => {
    const resolver = new SecretResolver({ vault: async () => vault });
    await vault.put('web/env/app/X', 'x');
    const error = await resolver
      .resolve({ ref: { provider: 'local', key: 'web/env/app/X' }, host: 'web' })
      .catch((e) => e);
    expect(error).toBeInstanceOf(InvalidInputError);
    expect(error.issues[0].path).toBe('secretRef.digest');
  });

  it('refuses local references where the runtime holds no secret store', () => {
    expect(() =>
      new SecretResolver({}).check({
        ref: { provider: 'local', key: 'web/env/app/X', digest: 'a'.repeat(64) },
        host: 'web',
      }),
    ).toThrow(/not available to this runtime/);
  });
});

describe('SecretResolver, aws-kms references', () => {
  const ref: SecretRef = {
    provider: 'aws-kms',
    keyId: 'arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab',
    ciphertext: Buffer.from('sealed-by-kms').toString('base64'),
  };

  it('decrypts with the key named and an encryption context naming the host', async () => {
    kms.on(DecryptCommand).resolves({ Plaintext: Buffer.from('db-password'), KeyId: ref.keyId });
    const resolver = new SecretResolver({ kms: new KMSClient({ region: 'eu-west-1' }) });

    expect(text(await resolver.resolve({ ref, host: 'web' }))).toBe('db-password');
    const calls = kms.commandCalls(DecryptCommand);
    expect(calls).toHaveLength(1);
    expect(calls[0]?.args[0].input).toEqual({
      CiphertextBlob: Buffer.from('sealed-by-kms'),
      KeyId: ref.keyId,
      EncryptionContext: { 'persona:host': 'web' },
    });
  });

  it("passes on KMS's refusal of a ciphertext made for another host", async () => {
    kms
      .on(DecryptCommand)
      .rejects(new InvalidCiphertextException({ message: 'context mismatch', $metadata: {} }));
    const resolver = new SecretResolver({ kms: new KMSClient({ region: 'eu-west-1' }) });
    await expect(resolver.resolve({ ref, host: 'db' })).rejects.toBeInstanceOf(InvalidCiphertextException);
  });

  it('is refused at validation, with a clear message, where there is no KMS', () => {
    const error = (() => {
      try {
        new SecretResolver({ vault: async () => vault }).check({ ref, host: 'web', field: 'credentialRef' });
      } catch (e) {
        return e as InvalidInputError;
      }
    })();
    expect(error).toBeInstanceOf(InvalidInputError);
    expect(error?.issues[0]?.path).toBe('credentialRef.provider');
    expect(error?.message).toMatch(/aws-kms references need AWS KMS, which this runtime does not have/);
    expect(kms.commandCalls(DecryptCommand)).toHaveLength(0);
  });
});

describe('host registrations', () => {
  const base = { name: 'web', platform: 'baremetal', transport: 'ssh', address: '10.0.0.2' } as const;

  it('refuse a credential that names a file on the machine that runs Persona', () => {
    const parsed = HostRegistration.safeParse({
      ...base,
      credentialRef: { provider: 'local', key: 'file:/root/.ssh/id_ed25519' },
    });
    expect(parsed.success).toBe(false);
    expect(parsed.error?.issues[0]?.path).toEqual(['credentialRef', 'key']);
    expect(parsed.error?.issues[0]?.message).toContain('"web/…"');
  });

  it("refuse a credential that names another host's secret", () => {
    const parsed = HostRegistration.safeParse({
      ...base,
      credentialRef: { provider: 'local', key: 'db/credential/ssh', digest: 'a'.repeat(64) },
    });
    expect(parsed.success).toBe(false);
    expect(parsed.error?.issues[0]?.path).toEqual(['credentialRef', 'key']);
  });

  it("accept the host's own sealed credential, and the capture resolves it for that host only", async () => {
    const key = await vault.put('web/credential/ssh', 'PRIVATE KEY BYTES');
    const registration = HostRegistration.parse({
      ...base,
      credentialRef: { provider: 'local', key: 'web/credential/ssh', digest: key.digest },
    });
    const credentials = new Credentials({ vault: async () => vault });
    const ref = registration.credentialRef as SecretRef;

    expect(text(await credentials.resolve(ref, 'web'))).toBe('PRIVATE KEY BYTES');
    await expect(credentials.resolve(ref, 'other')).rejects.toBeInstanceOf(InvalidInputError);
  });
});
