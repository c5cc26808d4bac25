// Fresh ed25519 key pairs in OpenSSH form, made with node:crypto and encoded here. ssh2's own
// generator drops a leading zero byte from a key half (about one key in 128), and OpenSSH then
// refuses the key ("is not a public key file"): a VM's host key or a login key must never be
// one of those, so the 32-byte halves are taken from their fixed-size DER encodings instead.
import { generateKeyPairSync, randomBytes } from 'node:crypto';

const TYPE = 'ssh-ed25519';

/** An OpenSSH wire string: a 32-bit big-endian length, then the bytes. */
function string(value: Uint8Array | string): Buffer {
  const bytes = typeof value === 'string' ? Buffer.from(value, 'utf8') : Buffer.from(value);
  const length = Buffer.alloc(4);
  length.writeUInt32BE(bytes.length);
  return Buffer.concat([length, bytes]);
}

function uint32(value: number): Buffer {
  const out = Buffer.alloc(4);
  out.writeUInt32BE(value);
  return out;
}

export interface KeyPair {
  /** `-----BEGIN OPENSSH PRIVATE KEY-----` …, unencrypted, ending in a newline. */
  readonly privateKey: string;
  /** `ssh-ed25519 AAAA… comment`, one line, no newline. */
  readonly publicKey: string;
  /** The public key blob (what a host key verifier is handed and fingerprints). */
  readonly publicBlob: Buffer;
}

/** A fresh ed25519 key pair; `comment` is stored in both halves (no newline in it). */
export function ed25519KeyPair(comment: string): KeyPair {
  if (/[\r\n]/.test(comment)) throw new Error('a key comment is one line');
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  // SPKI and PKCS#8 of ed25519 end in the raw 32-byte public key and seed respectively.
  const pub = publicKey.export({ format: 'der', type: 'spki' }).subarray(-32);
  const seed = privateKey.export({ format: 'der', type: 'pkcs8' }).subarray(-32);
  const publicBlob = Buffer.concat([string(TYPE), string(pub)]);

  // PROTOCOL.key: the private section, padded with 1, 2, 3, … to the cipher's block size (8 for
  // "none"), begins with a random check word repeated so a decryption can be verified.
  const check = randomBytes(4).readUInt32BE();
  let section = Buffer.concat([
    uint32(check),
    uint32(check),
    string(TYPE),
    string(pub),
    string(Buffer.concat([seed, pub])),
    string(comment),
  ]);
  const padding = (8 - (section.length % 8)) % 8;
  section = Buffer.concat([section, Buffer.from(Array.from({ length: padding }, (_, i) => i + 1))]);
  const body = Buffer.concat([
    Buffer.from('openssh-key-v1\0', 'latin1'),
    string('none'),
    string('none'),
    string(''),
    uint32(1),
    string(publicBlob),
    string(section),
  ]).toString('base64');
  const lines = body.match(/.{1,70}/g) ?? [];
  return {
    privateKey: `-----BEGIN OPENSSH PRIVATE KEY-----\n${lines.join('\n')}\n-----END OPENSSH PRIVATE KEY-----\n`,
    publicKey: `${TYPE} ${publicBlob.toString('base64')}${comment ? ` ${comment}` : ''}`,
    publicBlob,
  };
}

/**
 * A fresh ed25519 key pair in OpenSSH form: the login key Persona makes for a host it
 * provisions (the private half sealed in the store, the public half authorised on the host).
 */
export function loginKeyPair(comment: string): { privateKey: string; publicKey: string } {
  const { privateKey, publicKey } = ed25519KeyPair(comment);
  return { privateKey, publicKey };
}
