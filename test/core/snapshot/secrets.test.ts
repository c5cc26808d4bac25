// Sealed secrets on the real S3-protocol server: one object per value, names and digests keyed,
// sealed under a key that seals nothing else.
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InvalidInputError, NotFoundError } from '../../../core/errors.js';
import { CorruptionError } from '../../../core/snapshot/errors.js';
import { deriveKeys, generateMasterKey } from '../../../core/snapshot/keys.js';
import { S3ObjectStore } from '../../../core/snapshot/object-store.js';
import { open, seal, unseal } from '../../../core/snapshot/seal.js';
import { SECRET_PREFIX, SecretVault } from '../../../core/snapshot/secrets.js';
import { LOCAL_CREDENTIALS, LOCAL_REGION, type StandIns, startStandIns } from '../../../local/stand-ins.js';

let dir: string;
let standIns: StandIns;
let objects: S3ObjectStore;
const keys = deriveKeys(generateMasterKey(), 'secrets-test');
let vault: SecretVault;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'persona-secrets-'));
  standIns = await startStandIns({ dataDir: join(dir, 'data'), tables: [], buckets: ['secrets'] });
  const s3 = new S3Client({
    endpoint: standIns.s3Endpoint,
    region: LOCAL_REGION,
    credentials: LOCAL_CREDENTIALS,
    forcePathStyle: true,
  });
  objects = new S3ObjectStore(s3, 'secrets');
  vault = new SecretVault(objects, keys);
}, 120_000);

afterAll(async () => {
  await standIns?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

async function everyObject(): Promise<{ key: string; bytes: Buffer }[]> {
  const out: { key: string; bytes: Buffer }[] = [];
  for await (const o of objects.list(SECRET_PREFIX))
    out.push({ key: o.key, bytes: Buffer.from(await objects.get(o.key)) });
  return out;
}

describe('SecretVault', () => {
  it('seals a value so that neither it nor a plain hash of it or of its name is in the bucket', async () => {
    const name = 'web-a/env/shop-api/DB_PASSWORD';
    const value = 'hunter2-very-secret';
    const sealed = await vault.put(name, value);

    expect(await vault.getText(name, sealed.digest)).toBe(value);
    expect(sealed.digest).toMatch(/^[0-9a-f]{64}$/);
    expect(sealed.digest).not.toBe(sha256(value));
    expect(sealed.objectKey).toBe(`${SECRET_PREFIX}${sealed.objectKey.split('/')[2]}/${sealed.digest}`);
    for (const o of await everyObject()) {
      expect(o.bytes.includes(value)).toBe(false);
      expect(o.bytes.includes(Buffer.from(value).toString('base64'))).toBe(false);
      expect(o.key).not.toContain(sha256(value));
      expect(o.key).not.toContain(sha256(name));
      expect(o.key).not.toContain('DB_PASSWORD');
    }
  });

  it('keeps each value in an object of its own: a new value never replaces an older one', async () => {
    const name = 'web-a/file/etc/shadow';
    const v1 = await vault.put(name, 'root:$6$one:19000:0:99999:7:::\n');
    const v2 = await vault.put(name, 'root:$6$two:19001:0:99999:7:::\n');

    expect(v2.digest).not.toBe(v1.digest);
    expect(v2.objectKey).not.toBe(v1.objectKey);
    expect(await vault.getText(name, v1.digest)).toContain('$6$one');
    expect(await vault.getText(name, v2.digest)).toContain('$6$two');
  });

  it('writes nothing when the same value is sealed again', async () => {
    const name = 'web-a/env/shop-api/API_TOKEN';
    const first = await vault.put(name, 'token-1');
    const before = (await everyObject()).length;
    const again = await vault.put(name, 'token-1');

    expect(again).toEqual(first);
    expect((await everyObject()).length).toBe(before);
  });

  it('gives one value under two names two digests, and another store other digests', async () => {
    const a = vault.digest('web-a/env/app/DB_PASSWORD', 'same');
    const b = vault.digest('web-a/env/worker/DB_PASSWORD', 'same');
    const other = new SecretVault(objects, deriveKeys(generateMasterKey(), 'secrets-test'));

    expect(a).not.toBe(b);
    expect(other.digest('web-a/env/app/DB_PASSWORD', 'same')).not.toBe(a);
  });

  it('seals under a key of its own: a secret does not open with the file-content key, nor content with it', async () => {
    const name = 'web-a/file/etc/ssl/private/web.key';
    const sealed = await vault.put(name, '-----BEGIN PRIVATE KEY-----\nabc\n-----END PRIVATE KEY-----\n');
    const bytes = await objects.get(sealed.objectKey);

    expect(Buffer.from(keys.secretSealKey).equals(Buffer.from(keys.sealKey))).toBe(false);
    expect(unseal(keys.sealKey, bytes, `secret:${name}@${sealed.digest}`)).toBeUndefined();
    // An object sealed with the content key, put where the secret is, is refused.
    const forged = seal(keys.sealKey, Buffer.from('forged'), `secret:${name}@${sealed.digest}`);
    await objects.put(sealed.objectKey, forged);
    await expect(vault.get(name, sealed.digest)).rejects.toBeInstanceOf(CorruptionError);
    await objects.put(sealed.objectKey, bytes);
    expect(
      open(keys.secretSealKey, bytes, `secret:${name}@${sealed.digest}`, { objectKey: 'x' }),
    ).toBeDefined();
  });

  it("refuses one secret's object moved into another's place, and altered bytes, as corruption", async () => {
    const a = await vault.put('web-a/env/app/A', 'value-a');
    const b = await vault.put('web-a/env/app/B', 'value-b');
    const target = vault.objectKey('web-a/env/app/B', a.digest);
    await objects.put(target, await objects.get(a.objectKey));
    await expect(vault.get('web-a/env/app/B', a.digest)).rejects.toBeInstanceOf(CorruptionError);

    const altered = Buffer.from(await objects.get(b.objectKey));
    altered[20] = (altered[20] ?? 0) ^ 1;
    await objects.put(b.objectKey, altered);
    await expect(vault.get('web-a/env/app/B', b.digest)).rejects.toThrow(/web-a|snapshots\/secrets/);
  });

  it('answers NOT_FOUND for a digest it never stored', async () => {
    await vault.put('web-a/env/app/C', 'value-c');
    const error = await vault.get('web-a/env/app/C', 'a'.repeat(64)).catch((e) => e);
    expect(error).toBeInstanceOf(NotFoundError);
    expect(error.message).toContain('web-a/env/app/C');
  });

  it.each([
    ['/etc/shadow', /"\/"/],
    ['web-a/../other/env/x', /"\.\."/],
    ['web-a/./x', /"\."/],
    ['web-a/env/x\ny', /control/],
    ['web-a\\env', /backslash/],
    ['', /not empty/],
    ['x'.repeat(1025), /at most 1024/],
  ])('refuses %j as a secret name, saying why', async (name, why) => {
    const error = await vault.put(name, 'v').catch((e) => e);
    expect(error).toBeInstanceOf(InvalidInputError);
    expect(error.message).toMatch(why);
  });

  it('refuses a digest that is not 64 hex digits', async () => {
    await expect(vault.get('web-a/env/app/A', '../../config')).rejects.toBeInstanceOf(InvalidInputError);
  });
});
