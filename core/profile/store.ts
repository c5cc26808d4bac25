// What the profile domain needs from storage. The DynamoDB + S3 implementation is in
// dynamo-store.ts; tests and other runtimes can pass anything that keeps these promises.
import * as z from 'zod';

export const ProfileSummary = z
  .object({
    packages: z.number().int(),
    services: z.number().int(),
    files: z.number().int(),
    users: z.number().int(),
    kernelModules: z.number().int(),
  })
  .meta({ id: 'ProfileSummary' });

/** One immutable version of a profile. The document itself lives at `bodyKey`. */
export const ProfileVersion = z
  .object({
    name: z.string(),
    version: z.number().int().positive(),
    /** sha256 of the canonical document: equal hashes mean equal profiles. */
    hash: z.string(),
    /** sha256 of the canonical spec alone: what a host would be made to look like. */
    specHash: z.string(),
    bodyKey: z.string(),
    sizeBytes: z.number().int(),
    createdAt: z.iso.datetime(),
    description: z.string().optional(),
    labels: z.record(z.string(), z.string()).optional(),
    summary: ProfileSummary,
  })
  .meta({ id: 'ProfileVersion' });
export type ProfileVersion = z.infer<typeof ProfileVersion>;

/** One per profile: where its history currently ends. */
export const ProfileHead = z
  .object({
    name: z.string(),
    latest: z.number().int().positive(),
    hash: z.string(),
    createdAt: z.iso.datetime(),
    updatedAt: z.iso.datetime(),
    description: z.string().optional(),
    labels: z.record(z.string(), z.string()).optional(),
  })
  .meta({ id: 'ProfileHead' });
export type ProfileHead = z.infer<typeof ProfileHead>;

export interface PageRequest {
  readonly limit: number;
  /** Opaque token from a previous page's `nextCursor`. */
  readonly cursor?: string | undefined;
}

export interface Page<T> {
  readonly items: readonly T[];
  readonly nextCursor?: string;
}

export interface ProfileRepository {
  getHead(name: string): Promise<ProfileHead | undefined>;
  getVersion(name: string, version: number): Promise<ProfileVersion | undefined>;
  listHeads(page: PageRequest): Promise<Page<ProfileHead>>;
  listVersions(name: string, page: PageRequest): Promise<Page<ProfileVersion>>;
  /**
   * Records `record` as the next version, only if the head still says `expectedLatest`
   * (0: the profile must not exist yet). Throws ConflictError otherwise, writing nothing.
   */
  writeVersion(record: ProfileVersion, expectedLatest: number): Promise<void>;
  /** Stores a document body. Content-addressed keys make a repeated put harmless. */
  putBody(key: string, body: string): Promise<void>;
  getBody(key: string): Promise<string>;
}
