// Keys of a snapshot store (FORMAT.md, "Keys"): one random master key per store, kept only wrapped
// by a key provider, and the working keys HKDF derives from it.

import { createHmac, hkdfSync, randomBytes } from 'node:crypto';
import { link, mkdir, open as openFile, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { DecryptCommand, GenerateDataKeyCommand, type KMSClient } from '@aws-sdk/client-kms';
import { KeyError } from './errors.js';
import { KEY_LENGTH, seal, unseal } from './seal.js';

export const MASTER_KEY_LENGTH = 32;
export const GEAR_LENGTH = 1024;

export interface StoreKeys {
  /** AES-256-GCM key for blobs, pack headers, indexes and manifests. */
  readonly sealKey: Uint8Array;
  /** HMAC-SHA256 key for chunk ids. */
  readonly idKey: Uint8Array;
  /** Key material for the chunker's gear table: 256 uint32, little-endian (chunker.ts `gearTable`). */
  readonly gear: Uint8Array;
  /**
   * AES-256-GCM key for sealed secrets only (secrets.ts). Apart from `sealKey` so that no object
   * sealed as file content can ever be opened as a secret, nor the other way round, and so that
   * what can read snapshots is not by that alone what can read credentials.
   */
  readonly secretSealKey: Uint8Array;
  /** HMAC-SHA256 key for secret object names and value digests (never a bare hash of a value). */
  readonly secretIdKey: Uint8Array;
}

export function generateMasterKey(): Uint8Array {
  return new Uint8Array(randomBytes(MASTER_KEY_LENGTH));
}

/** HKDF-SHA256 with salt = store id and info = purpose, so two stores never share a working key. */
export function deriveKeys(master: Uint8Array, storeId: string): StoreKeys {
  if (master.length !== MASTER_KEY_LENGTH)
    throw new RangeError(`a master key is ${MASTER_KEY_LENGTH} bytes, not ${master.length}`);
  if (storeId === '') throw new RangeError('a store id is not empty');
  const derive = (info: string, length: number) =>
    new Uint8Array(
      hkdfSync('sha256', master, Buffer.from(storeId, 'utf8'), Buffer.from(info, 'utf8'), length),
    );
  return {
    sealKey: derive('persona/v1 seal', KEY_LENGTH),
    idKey: derive('persona/v1 id', 32),
    gear: derive('persona/v1 gear', GEAR_LENGTH),
    secretSealKey: derive('persona/v1 secret', KEY_LENGTH),
    secretIdKey: derive('persona/v1 secret id', 32),
  };
}

/** A chunk's id: HMAC-SHA256 under the store's id key, 64 lowercase hex digits. */
export function chunkId(idKey: Uint8Array, data: Uint8Array): string {
  return createHmac('sha256', idKey).update(data).digest('hex');
}

export interface KeyProvider {
  readonly provider: 'aws-kms' | 'local';
  /** The KMS key id or ARN; recorded in `snapshots/config`. */
  readonly keyId?: string;
  /** A fresh master key, in clear for this process and wrapped (base64) for `snapshots/config`. */
  newMasterKey(storeId: string): Promise<{ plaintext: Uint8Array; wrapped: string }>;
  /** The master key from its wrapped form; KeyError when this provider cannot or may not unwrap it. */
  unwrap(wrapped: string, storeId: string): Promise<Uint8Array>;
}

/**
 * The embedded runtime's provider: one key-encryption key per store in `<directory>/<store>.key`
 * (mode 0600, created on first use), wrapping the master key with AES-256-GCM, AAD = store id.
 */
export class LocalKeyProvider implements KeyProvider {
  readonly provider = 'local';

  constructor(private readonly directory: string) {}

  keyFile(storeId: string): string {
    // The store id becomes a file name: nothing that could leave the directory or hide the file.
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(storeId))
      throw new KeyError(
        'local',
        join(this.directory, '?'),
        `store id ${JSON.stringify(storeId)} cannot name a key file`,
      );
    return join(this.directory, `${storeId}.key`);
  }

  async newMasterKey(storeId: string): Promise<{ plaintext: Uint8Array; wrapped: string }> {
    const kek = await this.kek(storeId, true);
    const plaintext = generateMasterKey();
    return { plaintext, wrapped: Buffer.from(seal(kek, plaintext, storeId)).toString('base64') };
  }

  async unwrap(wrapped: string, storeId: string): Promise<Uint8Array> {
    const file = this.keyFile(storeId);
    const kek = await this.kek(storeId, false);
    const master = unseal(kek, decodeBase64(wrapped, 'local', file), storeId);
    if (master === undefined)
      throw new KeyError(
        'local',
        file,
        `the wrapped master key does not open with this key file (it was made with another key file or for another store than ${storeId})`,
      );
    if (master.length !== MASTER_KEY_LENGTH)
      throw new KeyError(
        'local',
        file,
        `the unwrapped master key is ${master.length} bytes, not ${MASTER_KEY_LENGTH}`,
      );
    return new Uint8Array(master);
  }

  private async kek(storeId: string, create: boolean): Promise<Uint8Array> {
    const file = this.keyFile(storeId);
    const existing = await readKeyFile(file);
    if (existing !== undefined) return existing;
    if (!create)
      throw new KeyError(
        'local',
        file,
        'no key file: the store was created elsewhere or the file was removed',
      );
    await mkdir(this.directory, { recursive: true, mode: 0o700 });
    // Written in full and synced under a temporary name, then linked into place: link() fails if the
    // name exists, so two processes racing to create the key agree on one, and a crash never
    // leaves a short key file behind. Losing this file loses every snapshot of the store.
    const temporary = `${file}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
    const handle = await openFile(temporary, 'wx', 0o600);
    try {
      await handle.writeFile(randomBytes(KEY_LENGTH));
      await handle.sync();
    } finally {
      await handle.close();
    }
    try {
      await link(temporary, file);
    } catch (error) {
      if (!isErrno(error, 'EEXIST')) throw error;
    } finally {
      await rm(temporary, { force: true });
    }
    const created = await readKeyFile(file);
    if (created === undefined)
      throw new KeyError('local', file, 'the key file vanished right after it was created');
    return created;
  }
}

async function readKeyFile(file: string): Promise<Uint8Array | undefined> {
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (error) {
    if (isErrno(error, 'ENOENT')) return undefined;
    throw new KeyError('local', file, `cannot read the key file (${(error as Error).message})`, {
      cause: error,
    });
  }
  if (bytes.length !== KEY_LENGTH)
    throw new KeyError('local', file, `the key file holds ${bytes.length} bytes, not ${KEY_LENGTH}`);
  return new Uint8Array(bytes);
}

/** The provider in AWS: GenerateDataKey / Decrypt under one KMS key, the store id as encryption context. */
export class KmsKeyProvider implements KeyProvider {
  readonly provider = 'aws-kms';

  constructor(
    private readonly client: KMSClient,
    readonly keyId: string,
  ) {}

  async newMasterKey(storeId: string): Promise<{ plaintext: Uint8Array; wrapped: string }> {
    const out = await this.call(
      () =>
        this.client.send(
          new GenerateDataKeyCommand({
            KeyId: this.keyId,
            KeySpec: 'AES_256',
            EncryptionContext: encryptionContext(storeId),
          }),
        ),
      'GenerateDataKey',
      storeId,
    );
    if (out.Plaintext?.length !== MASTER_KEY_LENGTH || out.CiphertextBlob === undefined)
      throw new KeyError(
        'aws-kms',
        this.keyId,
        `GenerateDataKey did not return a ${MASTER_KEY_LENGTH}-byte data key`,
      );
    return {
      plaintext: new Uint8Array(out.Plaintext),
      wrapped: Buffer.from(out.CiphertextBlob).toString('base64'),
    };
  }

  async unwrap(wrapped: string, storeId: string): Promise<Uint8Array> {
    const ciphertext = decodeBase64(wrapped, 'aws-kms', this.keyId);
    const out = await this.call(
      () =>
        this.client.send(
          new DecryptCommand({
            CiphertextBlob: ciphertext,
            // Naming the key makes KMS refuse a ciphertext made under any other key, instead of
            // following the key id embedded in the ciphertext.
            KeyId: this.keyId,
            EncryptionContext: encryptionContext(storeId),
          }),
        ),
      'Decrypt',
      storeId,
    );
    if (out.Plaintext?.length !== MASTER_KEY_LENGTH)
      throw new KeyError(
        'aws-kms',
        this.keyId,
        `Decrypt did not return a ${MASTER_KEY_LENGTH}-byte master key`,
      );
    return new Uint8Array(out.Plaintext);
  }

  private async call<T>(send: () => Promise<T>, operation: string, storeId: string): Promise<T> {
    try {
      return await send();
    } catch (error) {
      const reason = error instanceof Error ? KMS_REASONS[error.name]?.(storeId) : undefined;
      // Throttling, KMS internal errors and network failures are not key problems: they keep their
      // own type so that callers (and Step Functions retries) treat them as transient.
      if (reason === undefined) throw error;
      throw new KeyError('aws-kms', this.keyId, `${operation}: ${reason}`, { cause: error });
    }
  }
}

const KMS_REASONS: Readonly<Record<string, (storeId: string) => string>> = {
  InvalidCiphertextException: (storeId) =>
    `the wrapped master key does not decrypt for store ${storeId} (made for another store, or damaged)`,
  IncorrectKeyException: () => 'the wrapped master key was made under another KMS key',
  AccessDeniedException: () => 'access denied: the caller may not use this KMS key',
  NotFoundException: () => 'the KMS key does not exist (wrong id, region or account, or deleted)',
  DisabledException: () => 'the KMS key is disabled',
  KMSInvalidStateException: () =>
    'the KMS key is not usable in its current state (pending deletion or import)',
  KeyUnavailableException: () => 'the KMS key is unavailable (its key store is disconnected)',
  InvalidKeyUsageException: () => 'the KMS key is not a symmetric encryption key',
};

const encryptionContext = (storeId: string): Record<string, string> => ({ 'persona:store': storeId });

function decodeBase64(wrapped: string, provider: 'aws-kms' | 'local', keyId: string): Uint8Array {
  // Buffer's decoder skips characters it does not know; a wrapped key that does not survive a
  // round trip was edited, and would otherwise fail later with a less helpful message.
  const bytes = Buffer.from(wrapped, 'base64');
  if (bytes.length === 0 || bytes.toString('base64') !== wrapped)
    throw new KeyError(provider, keyId, 'the wrapped master key in the store config is not valid base64');
  return new Uint8Array(bytes);
}

function isErrno(error: unknown, code: string): boolean {
  return error instanceof Error && (error as NodeJS.ErrnoException).code === code;
}
