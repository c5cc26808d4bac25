// Where the CLI's direct work (snapshots, captures) goes: the embedded runtime's stand-ins,
// found through the endpoints file `npm start` writes, or AWS, through PERSONA_BUCKET and the
// table names from the stack's outputs, with the usual AWS credentials.
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { KMSClient } from '@aws-sdk/client-kms';
import { S3Client } from '@aws-sdk/client-s3';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { InvalidInputError, NotFoundError } from '../core/errors.js';
import { DynamoHostRegistry } from '../core/host/registry.js';
import { DynamoOperationStore } from '../core/operation/store.js';
import { DynamoProfileStore } from '../core/profile/dynamo-store.js';
import type { ProfileDeps } from '../core/profile/service.js';
import { type KeyProvider, KmsKeyProvider, LocalKeyProvider } from '../core/snapshot/keys.js';
import { S3_CHECKSUMS, S3ObjectStore } from '../core/snapshot/object-store.js';
import { DynamoLocks, DynamoSnapshotRecords } from '../core/snapshot/records.js';
import { SnapshotStore } from '../core/snapshot/store.js';
import {
  HOSTS_TABLE,
  LOCKS_TABLE,
  OPERATIONS_TABLE,
  PROFILES_TABLE,
  SNAPSHOTS_TABLE,
} from '../core/storage/definitions.js';
import { personaCacheDir } from './compile-cache.js';

interface Endpoints {
  region: string;
  dynamoEndpoint: string;
  s3Endpoint: string;
  bucket: string;
  tables: Record<string, string>;
  keysDir: string;
}

export interface Connection {
  /** Where the data lives, for messages and for state kept beside it (pinned host keys). */
  readonly home: string;
  snapshots(): Promise<SnapshotStore>;
  profiles(): ProfileDeps;
  hosts(): DynamoHostRegistry;
  operations(): DynamoOperationStore;
}

/**
 * Where the snapshot store keeps listing chunks on this machine (core/snapshot/listing-cache.ts):
 * PERSONA_LISTING_CACHE (`off` for none), else `persona/listings` under the user's cache directory.
 */
export function listingCacheDir(env = process.env): string | undefined {
  const set = env.PERSONA_LISTING_CACHE;
  if (set === 'off') return undefined;
  if (set) return resolve(set);
  const base = personaCacheDir(env);
  return base === undefined ? undefined : join(base, 'listings');
}

export async function connect(): Promise<Connection> {
  let ddb: DynamoDBClient;
  let s3: S3Client;
  let bucket: string;
  let table: (env: string) => string;
  let keys: KeyProvider;
  let home: string;
  if (process.env.PERSONA_BUCKET) {
    const need = (name: string) => {
      const v = process.env[name];
      if (!v)
        throw new InvalidInputError(`${name} is not set`, [
          { path: name, message: 'required with PERSONA_BUCKET' },
        ]);
      return v;
    };
    bucket = process.env.PERSONA_BUCKET;
    table = (env) => need(`PERSONA_${env}`);
    ddb = new DynamoDBClient({});
    s3 = new S3Client({ ...S3_CHECKSUMS });
    keys = new KmsKeyProvider(new KMSClient({}), need('PERSONA_KMS_KEY_ID'));
    home = resolve(process.env.PERSONA_HOME ?? join(process.env.HOME ?? '.', '.persona'));
  } else {
    const dataDir = resolve(process.env.PERSONA_DATA ?? '.persona/data');
    const file = join(dataDir, 'endpoints.json');
    if (!existsSync(file)) {
      throw new NotFoundError(
        'Persona is not running here: start the embedded runtime (npm start), or set PERSONA_BUCKET and the table names for AWS',
        file,
      );
    }
    const e = JSON.parse(readFileSync(file, 'utf8')) as Endpoints;
    // The stand-ins' own credentials (local/stand-ins.ts).
    const credentials = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };
    ddb = new DynamoDBClient({ endpoint: e.dynamoEndpoint, region: e.region, credentials });
    s3 = new S3Client({
      ...S3_CHECKSUMS,
      endpoint: e.s3Endpoint,
      region: e.region,
      credentials,
      forcePathStyle: true,
    });
    bucket = e.bucket;
    table = (env) => e.tables[env] ?? '';
    keys = new LocalKeyProvider(e.keysDir);
    home = dataDir;
  }
  const doc = DynamoDBDocumentClient.from(ddb, { marshallOptions: { removeUndefinedValues: true } });
  let store: Promise<SnapshotStore> | undefined;
  return {
    home,
    snapshots: () => {
      const cacheDir = listingCacheDir();
      store ??= SnapshotStore.open({
        objects: new S3ObjectStore(s3, bucket),
        records: new DynamoSnapshotRecords(doc, table(SNAPSHOTS_TABLE.env)),
        locks: new DynamoLocks(doc, table(LOCKS_TABLE.env)),
        keys,
        ...(cacheDir ? { cacheDir } : {}),
      });
      return store;
    },
    profiles: () => ({
      profiles: new DynamoProfileStore(doc, s3, { tableName: table(PROFILES_TABLE.env), bucketName: bucket }),
    }),
    hosts: () => new DynamoHostRegistry(doc, table(HOSTS_TABLE.env)),
    operations: () => new DynamoOperationStore(doc, table(OPERATIONS_TABLE.env)),
  };
}
