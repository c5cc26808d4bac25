// Sealing (FORMAT.md, "Sealing"): nonce (12) ‖ AES-256-GCM ciphertext ‖ tag (16). The AAD names the
// object's role and identity, so a sealed object only opens where it was meant to be read.

import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { CorruptionError, type Where } from './errors.js';

export const NONCE_LENGTH = 12;
export const TAG_LENGTH = 16;
/** Bytes a sealed object has beyond its plaintext. */
export const SEAL_OVERHEAD = NONCE_LENGTH + TAG_LENGTH;
export const KEY_LENGTH = 32;

/** Encrypts and authenticates `plaintext`, binding it to `aad` (UTF-8). */
export function seal(key: Uint8Array, plaintext: Uint8Array, aad: string): Uint8Array {
  checkKey(key);
  // Random 96-bit nonces stay safe for 2^32 objects per key (NIST SP 800-38D), far beyond a store's
  // chunk count at the chunker's sizes; a counter would need state shared by concurrent writers.
  const nonce = randomBytes(NONCE_LENGTH);
  const cipher = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG_LENGTH });
  cipher.setAAD(Buffer.from(aad, 'utf8'));
  const head = cipher.update(plaintext);
  const tail = cipher.final();
  return Buffer.concat([nonce, head, tail, cipher.getAuthTag()]);
}

/**
 * `seal` of the parts laid end to end, as the pieces of the sealed object in order (nonce,
 * ciphertext, tag) rather than one buffer: a pack copies them into its own buffer, and joining
 * them first would allocate and copy every blob once more.
 */
export function sealPieces(key: Uint8Array, parts: readonly Uint8Array[], aad: string): Uint8Array[] {
  checkKey(key);
  const nonce = randomBytes(NONCE_LENGTH);
  const cipher = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG_LENGTH });
  cipher.setAAD(Buffer.from(aad, 'utf8'));
  const pieces: Uint8Array[] = [nonce];
  for (const part of parts) {
    const c = cipher.update(part);
    if (c.length > 0) pieces.push(c);
  }
  const tail = cipher.final();
  if (tail.length > 0) pieces.push(tail);
  pieces.push(cipher.getAuthTag());
  return pieces;
}

/**
 * Opens what `seal` made with the same key and AAD. Any failure — short input, altered bytes, another
 * AAD or key — is a CorruptionError naming `where`, never a bare crypto exception.
 */
export function open(key: Uint8Array, sealed: Uint8Array, aad: string, where: Where): Uint8Array {
  if (sealed.length < SEAL_OVERHEAD)
    throw new CorruptionError(
      where,
      `sealed object is ${sealed.length} bytes, shorter than its ${SEAL_OVERHEAD}-byte nonce and tag`,
    );
  const plaintext = unseal(key, sealed, aad);
  if (plaintext === undefined)
    throw new CorruptionError(where, 'authentication failed (the bytes were altered)');
  return plaintext;
}

/** `open` without a location: undefined when the object does not authenticate. */
export function unseal(key: Uint8Array, sealed: Uint8Array, aad: string): Uint8Array | undefined {
  checkKey(key);
  if (sealed.length < SEAL_OVERHEAD) return undefined;
  const nonce = sealed.subarray(0, NONCE_LENGTH);
  const body = sealed.subarray(NONCE_LENGTH, sealed.length - TAG_LENGTH);
  const tag = sealed.subarray(sealed.length - TAG_LENGTH);
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG_LENGTH });
    decipher.setAAD(Buffer.from(aad, 'utf8'));
    decipher.setAuthTag(tag);
    const head = decipher.update(body);
    // GCM releases plaintext from update() before the tag is checked; it is returned only after
    // final() has verified it. GCM's final() gives no bytes: head is the whole plaintext, and
    // joining it to nothing would copy every blob a restore reads once more.
    const tail = decipher.final();
    return tail.length === 0 ? head : Buffer.concat([head, tail]);
  } catch {
    return undefined;
  }
}

function checkKey(key: Uint8Array): void {
  // A wrong-sized key is a programming error, not damaged data: it must not read as corruption.
  if (key.length !== KEY_LENGTH) throw new RangeError(`a seal key is ${KEY_LENGTH} bytes, not ${key.length}`);
}
