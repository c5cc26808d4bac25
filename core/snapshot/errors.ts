// Errors of the snapshot store. Both name the object (and chunk, or key) they are about:
// `persona check` and restore print them as they are, and an operator acts on that line alone.

import { PersonaError } from '../errors.js';

/** Where a sealed object was read from: the object key, and the chunk when the object is a blob. */
export interface Where {
  readonly objectKey: string;
  readonly chunkId?: string;
}

/**
 * Stored bytes failed verification: a GCM tag, a SHA-256 name or an HMAC chunk id does not match.
 * Retrying does not help; the object has to be repaired or the snapshot given up.
 */
export class CorruptionError extends PersonaError {
  readonly code = 'CORRUPT';
  readonly objectKey: string;
  readonly chunkId: string | undefined;
  /** What failed, without the location: `authentication failed (the bytes were altered)`. */
  readonly reason: string;
  constructor(where: Where, reason: string, options?: ErrorOptions) {
    super(`${describeWhere(where)}: ${reason}`, options);
    this.name = 'CorruptionError';
    this.objectKey = where.objectKey;
    this.chunkId = where.chunkId;
    this.reason = reason;
  }
}

export type KeyProviderName = 'aws-kms' | 'local';

/**
 * The store's master key cannot be had: the key provider refused, the key is disabled or gone, or
 * the wrapped key was made with another key-encryption key or for another store. Not a
 * PersonaError: none of the stable codes fits, and no code path should treat it as bad input.
 */
export class KeyError extends Error {
  readonly provider: KeyProviderName;
  /** The KMS key id or ARN, or the local key file's path. */
  readonly keyId: string | undefined;
  constructor(provider: KeyProviderName, keyId: string | undefined, reason: string, options?: ErrorOptions) {
    super(`${provider} key ${keyId ?? '(unnamed)'}: ${reason}`, options);
    this.name = 'KeyError';
    this.provider = provider;
    this.keyId = keyId;
  }
}

function describeWhere(where: Where): string {
  return where.chunkId === undefined ? where.objectKey : `${where.objectKey} chunk ${where.chunkId}`;
}
