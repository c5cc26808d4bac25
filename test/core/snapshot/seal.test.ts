import { createDecipheriv, randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PersonaError } from '../../../core/errors.js';
import { CorruptionError } from '../../../core/snapshot/errors.js';
import { open, SEAL_OVERHEAD, seal } from '../../../core/snapshot/seal.js';

const key = randomBytes(32);
const where = { objectKey: 'snapshots/packs/ab/ab12', chunkId: '3f9e' };

function thrownBy(f: () => unknown): unknown {
  try {
    f();
  } catch (e) {
    return e;
  }
  return undefined;
}

describe('seal', () => {
  it('lays out nonce (12) ‖ AES-256-GCM ciphertext ‖ tag (16), with the AAD bound in', () => {
    const plaintext = Buffer.from('the configuration of web-1');

    const sealed = Buffer.from(seal(key, plaintext, 'blob:abc'));

    expect(sealed).toHaveLength(plaintext.length + SEAL_OVERHEAD);
    const decipher = createDecipheriv('aes-256-gcm', key, sealed.subarray(0, 12));
    decipher.setAAD(Buffer.from('blob:abc'));
    decipher.setAuthTag(sealed.subarray(sealed.length - 16));
    const opened = Buffer.concat([
      decipher.update(sealed.subarray(12, sealed.length - 16)),
      decipher.final(),
    ]);
    expect(opened.equals(plaintext)).toBe(true);
  });

  it('uses a fresh nonce each time, so equal plaintexts seal differently', () => {
    const a = seal(key, Buffer.from('same'), 'x');
    const b = seal(key, Buffer.from('same'), 'x');

    expect(Buffer.from(a).equals(Buffer.from(b))).toBe(false);
  });

  it('refuses a key that is not 32 bytes as a programming error, not as corruption', () => {
    expect(() => seal(randomBytes(16), Buffer.alloc(1), 'x')).toThrow(RangeError);
  });
});

describe('open', () => {
  it('returns what was sealed, for any bytes and any AAD', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 512 }), fc.string(), (plaintext, aad) => {
        const opened = open(key, seal(key, plaintext, aad), aad, where);
        expect(Buffer.from(opened).equals(Buffer.from(plaintext))).toBe(true);
      }),
      { numRuns: 200 },
    );
  });

  it('refuses a flipped bit anywhere — nonce, ciphertext or tag — with a CorruptionError naming the object and chunk', () => {
    const sealed = seal(key, Buffer.from('0123456789abcdef'), 'blob:3f9e');

    for (let i = 0; i < sealed.length; i++) {
      for (const bit of [0x01, 0x80]) {
        const damaged = Uint8Array.from(sealed);
        damaged[i] = (damaged[i] ?? 0) ^ bit;

        const error = thrownBy(() => open(key, damaged, 'blob:3f9e', where));

        expect(error, `byte ${i}`).toBeInstanceOf(CorruptionError);
        expect(error).toMatchObject({ code: 'CORRUPT', objectKey: where.objectKey, chunkId: where.chunkId });
      }
    }
  });

  it('says where and what in its message', () => {
    const sealed = Uint8Array.from(seal(key, Buffer.from('data'), 'blob:3f9e'));
    sealed[13] = (sealed[13] ?? 0) ^ 4;

    const error = thrownBy(() => open(key, sealed, 'blob:3f9e', where));

    expect(error).toBeInstanceOf(PersonaError);
    expect(String((error as Error).message)).toBe(
      'snapshots/packs/ab/ab12 chunk 3f9e: authentication failed (the bytes were altered)',
    );
  });

  it('refuses another AAD: an object moved to another role or name does not open', () => {
    const sealed = seal(key, Buffer.from('data'), 'blob:aaaa');

    expect(() => open(key, sealed, 'blob:bbbb', where)).toThrow(CorruptionError);
    expect(() => open(key, sealed, 'index:', { objectKey: 'snapshots/index/x' })).toThrow(
      /^snapshots\/index\/x: authentication failed/,
    );
  });

  it('refuses another key', () => {
    const sealed = seal(key, Buffer.from('data'), 'x');

    expect(() => open(randomBytes(32), sealed, 'x', where)).toThrow(CorruptionError);
  });

  it('refuses every truncation with a CorruptionError, never a raw crypto exception', () => {
    const sealed = seal(key, Buffer.from('0123456789'), 'x');

    for (let length = 0; length < sealed.length; length++) {
      const error = thrownBy(() => open(key, sealed.subarray(0, length), 'x', where));
      expect(error, `length ${length}`).toBeInstanceOf(CorruptionError);
    }
    expect(() => open(key, new Uint8Array(5), 'x', where)).toThrow(
      /5 bytes, shorter than its 28-byte nonce and tag/,
    );
  });
});
