import { createHmac } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  DecryptCommand,
  DisabledException,
  GenerateDataKeyCommand,
  IncorrectKeyException,
  InvalidCiphertextException,
  KMSClient,
  NotFoundException,
} from '@aws-sdk/client-kms';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { KeyError } from '../../../core/snapshot/errors.js';
import {
  chunkId,
  deriveKeys,
  GEAR_LENGTH,
  generateMasterKey,
  KmsKeyProvider,
  LocalKeyProvider,
} from '../../../core/snapshot/keys.js';

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (e) {
    return e;
  }
  throw new Error('expected a rejection');
}

/** HKDF-SHA256 written out from RFC 5869, to pin FORMAT.md's derivation independently of node:crypto. */
function hkdf(ikm: Uint8Array, salt: string, info: string, length: number): Buffer {
  const prk = createHmac('sha256', Buffer.from(salt, 'utf8')).update(ikm).digest();
  const blocks: Buffer[] = [];
  let previous = Buffer.alloc(0);
  for (let i = 1; blocks.length * 32 < length; i++) {
    previous = createHmac('sha256', prk)
      .update(Buffer.concat([previous, Buffer.from(info, 'utf8'), Buffer.from([i])]))
      .digest();
    blocks.push(previous);
  }
  return Buffer.concat(blocks).subarray(0, length);
}

describe('deriveKeys', () => {
  const master = generateMasterKey();

  it('derives the seal, id and gear keys with HKDF-SHA256, salt = store id, info = purpose', () => {
    const keys = deriveKeys(master, 'store-1');

    expect(Buffer.from(keys.sealKey)).toEqual(hkdf(master, 'store-1', 'persona/v1 seal', 32));
    expect(Buffer.from(keys.idKey)).toEqual(hkdf(master, 'store-1', 'persona/v1 id', 32));
    expect(Buffer.from(keys.gear)).toEqual(hkdf(master, 'store-1', 'persona/v1 gear', GEAR_LENGTH));
    expect(keys.gear).toHaveLength(1024);
  });

  it('gives another store other keys from the same master key', () => {
    const a = deriveKeys(master, 'store-a');
    const b = deriveKeys(master, 'store-b');

    expect(Buffer.from(a.sealKey).equals(Buffer.from(b.sealKey))).toBe(false);
    expect(Buffer.from(a.idKey).equals(Buffer.from(b.idKey))).toBe(false);
  });

  it('refuses a master key that is not 32 bytes', () => {
    expect(() => deriveKeys(new Uint8Array(16), 'store-1')).toThrow(RangeError);
  });
});

describe('generateMasterKey', () => {
  it('returns 32 fresh random bytes each time', () => {
    const a = generateMasterKey();
    const b = generateMasterKey();

    expect(a).toHaveLength(32);
    expect(Buffer.from(a).equals(Buffer.from(b))).toBe(false);
  });
});

describe('chunkId', () => {
  it('is the HMAC-SHA256 of the data under the id key, as 64 lowercase hex digits', () => {
    const { idKey } = deriveKeys(generateMasterKey(), 'store-1');
    const data = Buffer.from('hello');

    const id = chunkId(idKey, data);

    expect(id).toMatch(/^[0-9a-f]{64}$/);
    expect(id).toBe(createHmac('sha256', idKey).update(data).digest('hex'));
  });

  it('differs between stores for the same data, so ids do not reveal known files', () => {
    const master = generateMasterKey();
    const data = Buffer.from('/etc/passwd contents');

    expect(chunkId(deriveKeys(master, 'a').idKey, data)).not.toBe(
      chunkId(deriveKeys(master, 'b').idKey, data),
    );
  });
});

describe('LocalKeyProvider', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'persona-keys-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('creates the key file with mode 0600 on first use and unwraps what it wrapped', async () => {
    const provider = new LocalKeyProvider(join(dir, 'keys'));

    const { plaintext, wrapped } = await provider.newMasterKey('store-1');
    const unwrapped = await provider.unwrap(wrapped, 'store-1');

    const info = await stat(join(dir, 'keys', 'store-1.key'));
    expect(info.mode & 0o777).toBe(0o600);
    expect(info.size).toBe(32);
    expect(provider.provider).toBe('local');
    expect(plaintext).toHaveLength(32);
    expect(Buffer.from(unwrapped).equals(Buffer.from(plaintext))).toBe(true);
    expect(Buffer.from(wrapped, 'base64')).toHaveLength(12 + 32 + 16);
  });

  it('keeps the key file of a store once created', async () => {
    const provider = new LocalKeyProvider(dir);
    const first = await provider.newMasterKey('store-1');
    const kek = await readFile(join(dir, 'store-1.key'));

    await provider.newMasterKey('store-1');

    expect((await readFile(join(dir, 'store-1.key'))).equals(kek)).toBe(true);
    expect(
      Buffer.from(await provider.unwrap(first.wrapped, 'store-1')).equals(Buffer.from(first.plaintext)),
    ).toBe(true);
  });

  it('agrees on one key file when several processes create it at once', async () => {
    const providers = Array.from({ length: 8 }, () => new LocalKeyProvider(dir));

    const made = await Promise.all(providers.map((p) => p.newMasterKey('store-1')));

    for (const m of made)
      expect(Buffer.from(await new LocalKeyProvider(dir).unwrap(m.wrapped, 'store-1'))).toEqual(
        Buffer.from(m.plaintext),
      );
    expect(await readdir(dir)).toEqual(['store-1.key']);
  });

  it('refuses a wrapped key made for another store with a KeyError naming the key file', async () => {
    const provider = new LocalKeyProvider(dir);
    const { wrapped } = await provider.newMasterKey('store-1');
    await provider.newMasterKey('store-2');

    const error = await rejection(provider.unwrap(wrapped, 'store-2'));

    expect(error).toBeInstanceOf(KeyError);
    expect(error).toMatchObject({ provider: 'local', keyId: join(dir, 'store-2.key') });
    expect(String(error)).toMatch(/another key file or for another store/);
  });

  it('refuses to unwrap when the store has no key file, without creating one', async () => {
    const { wrapped } = await new LocalKeyProvider(dir).newMasterKey('store-1');

    const error = await rejection(new LocalKeyProvider(join(dir, 'elsewhere')).unwrap(wrapped, 'store-1'));

    expect(error).toBeInstanceOf(KeyError);
    expect(String(error)).toMatch(/no key file/);
    await expect(stat(join(dir, 'elsewhere', 'store-1.key'))).rejects.toThrow();
  });

  it('refuses a wrapped key made with another key-encryption key', async () => {
    const { wrapped } = await new LocalKeyProvider(join(dir, 'a')).newMasterKey('store-1');
    const other = new LocalKeyProvider(join(dir, 'b'));
    await other.newMasterKey('store-1');

    await expect(other.unwrap(wrapped, 'store-1')).rejects.toBeInstanceOf(KeyError);
  });

  it('refuses an altered wrapped key and one that is not base64', async () => {
    const provider = new LocalKeyProvider(dir);
    const { wrapped } = await provider.newMasterKey('store-1');
    const bytes = Buffer.from(wrapped, 'base64');
    bytes[20] = (bytes[20] ?? 0) ^ 1;

    await expect(provider.unwrap(bytes.toString('base64'), 'store-1')).rejects.toBeInstanceOf(KeyError);
    await expect(provider.unwrap(`${wrapped}!`, 'store-1')).rejects.toThrow(/not valid base64/);
  });

  it('refuses a key file that does not hold 32 bytes', async () => {
    const provider = new LocalKeyProvider(dir);
    const { wrapped } = await provider.newMasterKey('store-1');
    await writeFile(join(dir, 'store-1.key'), Buffer.alloc(31));

    await expect(provider.unwrap(wrapped, 'store-1')).rejects.toThrow(/holds 31 bytes/);
  });

  it('refuses a store id that would name a file outside its directory', async () => {
    const error = await rejection(new LocalKeyProvider(dir).newMasterKey('../escape'));

    expect(error).toBeInstanceOf(KeyError);
  });
});

describe('KmsKeyProvider', () => {
  const kms = mockClient(KMSClient);
  const keyId = 'arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab';
  const provider = new KmsKeyProvider(new KMSClient({ region: 'eu-west-1' }), keyId);
  const plaintext = new Uint8Array(32).fill(7);
  const ciphertext = new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]);

  beforeEach(() => {
    kms.reset();
  });

  it('asks GenerateDataKey for an AES-256 key with the store id as encryption context', async () => {
    kms
      .on(GenerateDataKeyCommand)
      .resolves({ Plaintext: plaintext, CiphertextBlob: ciphertext, KeyId: keyId });

    const made = await provider.newMasterKey('store-1');

    expect(kms.commandCalls(GenerateDataKeyCommand)).toHaveLength(1);
    expect(kms.commandCalls(GenerateDataKeyCommand)[0]?.args[0].input).toEqual({
      KeyId: keyId,
      KeySpec: 'AES_256',
      EncryptionContext: { 'persona:store': 'store-1' },
    });
    expect(made.plaintext).toEqual(plaintext);
    expect(made.wrapped).toBe(Buffer.from(ciphertext).toString('base64'));
    expect(provider).toMatchObject({ provider: 'aws-kms', keyId });
  });

  it('unwraps with Decrypt naming the key and the same encryption context', async () => {
    kms.on(DecryptCommand).resolves({ Plaintext: plaintext, KeyId: keyId });

    const master = await provider.unwrap(Buffer.from(ciphertext).toString('base64'), 'store-1');

    expect(master).toEqual(plaintext);
    const input = kms.commandCalls(DecryptCommand)[0]?.args[0].input;
    expect(input).toEqual({
      CiphertextBlob: ciphertext,
      KeyId: keyId,
      EncryptionContext: { 'persona:store': 'store-1' },
    });
  });

  const failures: [string, () => Error, RegExp][] = [
    [
      'InvalidCiphertextException',
      () => new InvalidCiphertextException({ message: 'invalid', $metadata: {} }),
      /made for another store, or damaged/,
    ],
    [
      'IncorrectKeyException',
      () => new IncorrectKeyException({ message: 'incorrect', $metadata: {} }),
      /another KMS key/,
    ],
    [
      'AccessDeniedException',
      () =>
        Object.assign(new Error('User is not authorized to perform kms:Decrypt'), {
          name: 'AccessDeniedException',
        }),
      /access denied/,
    ],
    [
      'NotFoundException',
      () => new NotFoundException({ message: 'not found', $metadata: {} }),
      /does not exist/,
    ],
    ['DisabledException', () => new DisabledException({ message: 'disabled', $metadata: {} }), /is disabled/],
  ];

  it.each(failures)('turns %s from Decrypt into a KeyError naming the key', async (_name, make, reason) => {
    const cause = make();
    kms.on(DecryptCommand).rejects(cause);

    const error = await rejection(provider.unwrap(Buffer.from(ciphertext).toString('base64'), 'store-1'));

    expect(error).toBeInstanceOf(KeyError);
    expect(error).toMatchObject({ provider: 'aws-kms', keyId, cause });
    expect(String(error)).toContain(keyId);
    expect(String(error)).toMatch(/Decrypt: /);
    expect(String(error)).toMatch(reason);
  });

  it('turns a refusal of GenerateDataKey into a KeyError', async () => {
    kms.on(GenerateDataKeyCommand).rejects(new DisabledException({ message: 'disabled', $metadata: {} }));

    await expect(provider.newMasterKey('store-1')).rejects.toThrow(
      /GenerateDataKey: the KMS key is disabled/,
    );
  });

  it('lets throttling through as it is, so that callers retry it', async () => {
    const throttled = Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' });
    kms.on(DecryptCommand).rejects(throttled);

    const error = await rejection(provider.unwrap(Buffer.from(ciphertext).toString('base64'), 'store-1'));

    expect(error).not.toBeInstanceOf(KeyError);
    expect(error).toMatchObject({ name: 'ThrottlingException' });
  });

  it('refuses a data key that is not 32 bytes', async () => {
    kms.on(DecryptCommand).resolves({ Plaintext: new Uint8Array(16) });

    await expect(
      provider.unwrap(Buffer.from(ciphertext).toString('base64'), 'store-1'),
    ).rejects.toBeInstanceOf(KeyError);
  });

  it('refuses a wrapped key that is not base64 without calling KMS', async () => {
    await expect(provider.unwrap('not base64!', 'store-1')).rejects.toBeInstanceOf(KeyError);
    expect(kms.commandCalls(DecryptCommand)).toHaveLength(0);
  });
});
