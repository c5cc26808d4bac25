// Sealed secrets (FORMAT.md, "Secrets"): values found on a host that a Profile refers to instead
// of holding. Each value of a secret is its own object, so a Profile version that pinned a value
// keeps resolving to it after the host's secret changed.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { InvalidInputError, NotFoundError } from '../errors.js';
import { localSecretKeyProblem } from '../profile/schema.js';
import { CorruptionError } from './errors.js';
import type { StoreKeys } from './keys.js';
import type { ObjectStore } from './object-store.js';
import { open, seal } from './seal.js';

export const SECRET_PREFIX = 'snapshots/secrets/';

/** Secrets are credentials and small files (keys, shadow, env files), not trees. */
export const MAX_SECRET_BYTES = 8 * 1024 * 1024;

// A name is a `local` reference's key: one grammar for both (core/profile/schema.ts).
function checkName(name: string): void {
  const problem = localSecretKeyProblem(name);
  if (problem !== undefined)
    throw new InvalidInputError(`${JSON.stringify(name.slice(0, 80))} cannot name a secret: ${problem}`, [
      { path: 'key', message: problem },
    ]);
}

const DIGEST = /^[0-9a-f]{64}$/;

/** One stored value of a secret. */
export interface SealedSecret {
  readonly name: string;
  /** Keyed digest of the value: what a Profile's reference pins. */
  readonly digest: string;
  readonly objectKey: string;
}

/**
 * The store's sealed secrets. Names and values are hashed with a key of their own (HMAC, never a
 * bare SHA-256, which would let anyone holding the bucket confirm a guessed password), and the
 * values are sealed under a key that seals nothing else.
 */
export class SecretVault {
  constructor(
    private readonly objects: ObjectStore,
    private readonly keys: Pick<StoreKeys, 'secretSealKey' | 'secretIdKey'>,
  ) {}

  /**
   * The digest a value of `name` has in this store. The name is part of it, so that two secrets
   * holding the same value (one password in two places) do not show as equal in a Profile.
   */
  digest(name: string, value: Uint8Array | string): string {
    checkName(name);
    return this.mac('value', name, toBytes(value));
  }

  /** Where a value lives: `snapshots/secrets/<HMAC of the name>/<digest>`. */
  objectKey(name: string, digest: string): string {
    checkName(name);
    if (!DIGEST.test(digest))
      throw new InvalidInputError(`${JSON.stringify(digest.slice(0, 80))} is not a secret digest`, [
        { path: 'digest', message: 'expected 64 lower-case hex digits' },
      ]);
    return `${SECRET_PREFIX}${this.mac('name', name)}/${digest}`;
  }

  /** Seals a value of `name`. Sealing a value already stored writes nothing. */
  async put(name: string, value: Uint8Array | string): Promise<SealedSecret> {
    const bytes = toBytes(value);
    if (bytes.length > MAX_SECRET_BYTES)
      throw new InvalidInputError(`secret ${name} is ${bytes.length} bytes, more than a secret may hold`, [
        { path: name, message: `at most ${MAX_SECRET_BYTES} bytes` },
      ]);
    const digest = this.digest(name, bytes);
    const objectKey = this.objectKey(name, digest);
    // Objects are immutable once written: a capture that sees the same value again adds nothing.
    if (!(await this.objects.head(objectKey))) {
      await this.objects.put(objectKey, seal(this.keys.secretSealKey, bytes, aad(name, digest)));
    }
    return { name, digest, objectKey };
  }

  /** The value of `name` that `digest` pins, verified against the digest. */
  async get(name: string, digest: string): Promise<Uint8Array> {
    const objectKey = this.objectKey(name, digest);
    if (!(await this.objects.head(objectKey)))
      throw new NotFoundError(`secret ${name} has no stored value with digest ${digest}`, name);
    const plain = open(this.keys.secretSealKey, await this.objects.get(objectKey), aad(name, digest), {
      objectKey,
    });
    const again = Buffer.from(this.mac('value', name, plain), 'hex');
    if (!timingSafeEqual(again, Buffer.from(digest, 'hex')))
      throw new CorruptionError({ objectKey }, 'the secret does not match its digest');
    return plain;
  }

  /** `get` as UTF-8 text. */
  async getText(name: string, digest: string): Promise<string> {
    return Buffer.from(await this.get(name, digest)).toString('utf8');
  }

  private mac(purpose: 'name' | 'value', name: string, value?: Uint8Array): string {
    // Names have no NUL (checkName), so `purpose NUL name NUL value` splits one way only.
    const h = createHmac('sha256', this.keys.secretIdKey).update(`${purpose}\0${name}`, 'utf8');
    if (value !== undefined) h.update('\0').update(value);
    return h.digest('hex');
  }
}

const aad = (name: string, digest: string) => `secret:${name}@${digest}`;

const toBytes = (v: Uint8Array | string): Uint8Array => (typeof v === 'string' ? Buffer.from(v, 'utf8') : v);
