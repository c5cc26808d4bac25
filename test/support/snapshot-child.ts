// A snapshot writer in its own process, for tests that kill it part-way.
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { S3Client } from '@aws-sdk/client-s3';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { LocalKeyProvider } from '../../core/snapshot/keys.js';
import { type PutOptions, S3ObjectStore } from '../../core/snapshot/object-store.js';
import { DynamoLocks, DynamoSnapshotRecords } from '../../core/snapshot/records.js';
import { PACK_PREFIX, SnapshotStore } from '../../core/snapshot/store.js';
import { directorySource } from '../../core/snapshot/tree.js';
import { LOCAL_CREDENTIALS, LOCAL_REGION } from '../../local/stand-ins.js';

const [dir, host] = process.argv.slice(2) as [string, string];
const env = (name: string) => process.env[name] as string;
const ddb = DynamoDBDocumentClient.from(
  new DynamoDBClient({ endpoint: env('STORE_DYNAMO'), region: LOCAL_REGION, credentials: LOCAL_CREDENTIALS }),
  { marshallOptions: { removeUndefinedValues: true } },
);
const s3 = new S3Client({
  endpoint: env('STORE_S3'),
  region: LOCAL_REGION,
  credentials: LOCAL_CREDENTIALS,
  forcePathStyle: true,
});
// It says "uploaded" once its first pack is in the bucket: what the test kills it after.
let told = false;
class ReportingObjects extends S3ObjectStore {
  override async put(key: string, bytes: Uint8Array, options?: PutOptions) {
    await super.put(key, bytes, options);
    if (!told && key.startsWith(PACK_PREFIX)) {
      told = true;
      process.stdout.write('uploaded\n');
    }
  }
}
const store = await SnapshotStore.open({
  objects: new ReportingObjects(s3, env('STORE_BUCKET')),
  records: new DynamoSnapshotRecords(ddb, 'snapshots'),
  locks: new DynamoLocks(ddb, 'locks', {
    ttlMs: Number(env('LOCK_TTL_MS')),
    clockSkewMs: Number(env('LOCK_SKEW_MS')),
  }),
  keys: new LocalKeyProvider(env('STORE_KEYS')),
});
await store.create(directorySource(dir), { host });
process.stdout.write('done\n');
