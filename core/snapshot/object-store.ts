// The little the snapshot store needs from S3, as an interface so that the store runs against
// AWS, the embedded S3-protocol server and tests alike.
import {
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { ConflictError, NotFoundError } from '../errors.js';

export interface ObjectInfo {
  readonly key: string;
  readonly size: number;
  readonly lastModified: Date;
}

export interface PutOptions {
  /** Refuse to replace an existing object (see `put`). */
  readonly ifAbsent?: boolean;
  /**
   * The SHA-256 of the bytes, lowercase hex, where the caller has it already (a pack is named
   * by it): the request is signed with it instead of hashing the bytes once more. S3 checks it
   * against what it receives and refuses a write whose bytes do not match.
   */
  readonly sha256?: string;
}

export interface ObjectStore {
  /** Where the objects live, e.g. `s3://bucket`: names the store in locks and messages. */
  readonly location: string;
  /**
   * With `ifAbsent`, refuses to replace an existing object (ConflictError), where the service
   * supports conditional writes; S3 does, and so does the embedded S3-protocol server.
   */
  put(key: string, bytes: Uint8Array, options?: PutOptions): Promise<void>;
  get(key: string): Promise<Uint8Array>;
  /**
   * `length` bytes from `offset`: reading one blob without fetching its whole pack. With `into`
   * (at least `length` long), a store may read into it and return a view of it; the caller
   * copies what comes back elsewhere.
   */
  getRange(key: string, offset: number, length: number, into?: Uint8Array): Promise<Uint8Array>;
  head(key: string): Promise<ObjectInfo | undefined>;
  list(prefix: string): AsyncIterable<ObjectInfo>;
  delete(keys: readonly string[]): Promise<void>;
}

const isMissing = (e: unknown) => {
  const name = (e as { name?: string }).name;
  return (
    name === 'NoSuchKey' ||
    name === 'NotFound' ||
    (e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404
  );
};

// 412: the key exists. 409: another conditional write of the key was under way, and one of
// the two will have won: either way the caller reads what is there.
const isRefusedCondition = (e: unknown) => {
  const name = (e as { name?: string }).name;
  const status = (e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
  return (
    name === 'PreconditionFailed' || name === 'ConditionalRequestConflict' || status === 412 || status === 409
  );
};

/**
 * A response body as one buffer, filled as its pieces arrive when the length is known: the SDK's
 * own collector keeps every piece and then copies them all into another buffer, twice the bytes
 * of every read held at once. A body longer than expected is returned whole, so that the caller
 * sees its length.
 */
async function bodyBytes(
  body: { transformToByteArray(): Promise<Uint8Array> } | undefined,
  expected: number | undefined,
  into?: Uint8Array,
): Promise<Uint8Array> {
  if (!body) return new Uint8Array();
  if (expected === undefined || !(Symbol.asyncIterator in body)) return body.transformToByteArray();
  const out = into !== undefined && into.length >= expected ? into : Buffer.allocUnsafe(expected);
  let at = 0;
  let beyond: Uint8Array[] | undefined;
  for await (const piece of body as AsyncIterable<Uint8Array>) {
    if (beyond) beyond.push(piece);
    else if (at + piece.length > expected) beyond = [out.subarray(0, at), piece];
    else {
      out.set(piece, at);
      at += piece.length;
    }
  }
  return beyond ? Buffer.concat(beyond) : out.subarray(0, at);
}

/**
 * The S3 client settings for Persona's buckets: no CRC32 of every body sent and received unless
 * the operation requires one. What Persona stores is checked end to end by its own means (packs,
 * indexes, manifests and listings sealed with AES-GCM and named or indexed by their hash, packages
 * by the digests their repository signs, documents over TLS), so the SDK's checksum added only
 * main-thread CPU: about 0.16 s over the snapshot bench's first version.
 */
export const S3_CHECKSUMS = {
  requestChecksumCalculation: 'WHEN_REQUIRED',
  responseChecksumValidation: 'WHEN_REQUIRED',
} as const;

const PAYLOAD_HASH_HEADER = 'x-amz-content-sha256';
const SHA256_HEX = /^[0-9a-f]{64}$/;

export class S3ObjectStore implements ObjectStore {
  readonly location: string;

  constructor(
    private readonly s3: S3Client,
    private readonly bucket: string,
  ) {
    this.location = `s3://${bucket}`;
  }

  async put(key: string, bytes: Uint8Array, options: PutOptions = {}): Promise<void> {
    const command = new PutObjectCommand({
      Bucket: this.bucket,
      Key: key,
      Body: bytes,
      ContentType: 'application/octet-stream',
      // S3 refuses the write with 412 when the key exists (conditional writes).
      ...(options.ifAbsent ? { IfNoneMatch: '*' } : {}),
    });
    const { sha256 } = options;
    if (sha256 !== undefined) {
      if (!SHA256_HEX.test(sha256))
        throw new TypeError(`sha256 must be 64 lowercase hex digits, got ${sha256}`);
      // SigV4 signs the payload's hash as the request carries it in this header, and computes
      // it only when the header is absent: a pack's 16 MiB were hashed a second time.
      command.middlewareStack.add(
        (next) => (args) => {
          (args.request as { headers: Record<string, string> }).headers[PAYLOAD_HASH_HEADER] = sha256;
          return next(args);
        },
        { step: 'build', name: 'personaPayloadSha256' },
      );
    }
    try {
      await this.s3.send(command);
    } catch (cause) {
      if (options.ifAbsent && isRefusedCondition(cause)) {
        throw new ConflictError(`object ${key} exists already in ${this.location}`, undefined, { cause });
      }
      throw cause;
    }
  }

  async get(key: string): Promise<Uint8Array> {
    try {
      const out = await this.s3.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
      return await bodyBytes(out.Body, out.ContentLength);
    } catch (cause) {
      if (isMissing(cause))
        throw new NotFoundError(`object ${key} is missing from the bucket`, key, { cause });
      throw cause;
    }
  }

  async getRange(key: string, offset: number, length: number, into?: Uint8Array): Promise<Uint8Array> {
    if (length === 0) return new Uint8Array();
    try {
      const out = await this.s3.send(
        new GetObjectCommand({
          Bucket: this.bucket,
          Key: key,
          Range: `bytes=${offset}-${offset + length - 1}`,
        }),
      );
      return await bodyBytes(out.Body, length, into);
    } catch (cause) {
      if (isMissing(cause))
        throw new NotFoundError(`object ${key} is missing from the bucket`, key, { cause });
      throw cause;
    }
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    try {
      const out = await this.s3.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      return { key, size: out.ContentLength ?? 0, lastModified: out.LastModified ?? new Date(0) };
    } catch (cause) {
      if (isMissing(cause)) return undefined;
      throw cause;
    }
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    let token: string | undefined;
    do {
      const out = await this.s3.send(
        new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ContinuationToken: token }),
      );
      for (const o of out.Contents ?? []) {
        if (o.Key) yield { key: o.Key, size: o.Size ?? 0, lastModified: o.LastModified ?? new Date(0) };
      }
      token = out.IsTruncated ? out.NextContinuationToken : undefined;
    } while (token);
  }

  async delete(keys: readonly string[]): Promise<void> {
    // DeleteObjects takes at most 1000 keys a call.
    for (let i = 0; i < keys.length; i += 1000) {
      const batch = keys.slice(i, i + 1000);
      const out = await this.s3.send(
        new DeleteObjectsCommand({
          Bucket: this.bucket,
          Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true },
        }),
      );
      if (out.Errors && out.Errors.length > 0) {
        const first = out.Errors[0];
        throw new Error(
          `could not delete ${out.Errors.length} objects, first ${first?.Key}: ${first?.Message}`,
        );
      }
    }
  }
}
