// What the capture task needs, kept apart from runtime.ts so that only the functions that
// reach hosts bundle the SSH and SSM transports.
import { KMSClient } from '@aws-sdk/client-kms';
import { S3Client } from '@aws-sdk/client-s3';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { SSMClient } from '@aws-sdk/client-ssm';
import type { CaptureDeps } from '../../core/capture/operation.js';
import { Credentials, RegisteredHostKeys, transportFor } from '../../core/capture/reach.js';
import { S3_CHECKSUMS } from '../../core/snapshot/object-store.js';
import {
  DATA_BUCKET,
  LOCKS_TABLE,
  SSM_OUTPUT_BUCKET,
  SSM_OUTPUT_PREFIX,
} from '../../core/storage/definitions.js';
import {
  ddb,
  getRequiredEnv,
  hosts,
  keepOnSuccess,
  operations,
  snapshotRecords,
  stores,
  traced,
} from './runtime.js';

let captureDependencies: CaptureDeps | undefined;

/** What a capture needs: every store, and how to reach hosts. */
export function captureDeps(): CaptureDeps {
  if (captureDependencies === undefined) {
    const doc = ddb();
    const s3 = traced(
      new S3Client({ ...S3_CHECKSUMS, forcePathStyle: process.env.PERSONA_S3_PATH_STYLE === 'true' }),
    );
    const keyId = process.env.PERSONA_KEY_ID;
    // Read now, so that a missing variable fails the first call, not the first snapshot.
    const keysDir = keyId ? undefined : getRequiredEnv('PERSONA_KEYS_DIR');
    const keys = async () => {
      const { KmsKeyProvider, LocalKeyProvider } = await import('../../core/snapshot/keys.js');
      return keyId
        ? new KmsKeyProvider(traced(new KMSClient({})), keyId)
        : new LocalKeyProvider(keysDir as string);
    };
    // Loaded when first opened: installing an agent or sampling a host reaches it without the
    // snapshot store, unless the host's credential is in its vault.
    const snapshots = keepOnSuccess(async () => {
      const [{ SnapshotStore }, { S3ObjectStore }, { DynamoLocks }] = await Promise.all([
        import('../../core/snapshot/store.js'),
        import('../../core/snapshot/object-store.js'),
        import('../../core/snapshot/records.js'),
      ]);
      return SnapshotStore.open({
        objects: new S3ObjectStore(s3, getRequiredEnv(DATA_BUCKET.env)),
        records: snapshotRecords(),
        locks: new DynamoLocks(doc, getRequiredEnv(LOCKS_TABLE.env)),
        keys: await keys(),
      });
    });
    // The embedded runtime reaches no AWS service but the stand-ins it is pointed at (the SDK's
    // own AWS_ENDPOINT_URL_* variables): without one, hosts behind SSM and credentials in
    // Secrets Manager or Parameter Store are refused there, by name, rather than sent to the
    // real endpoints with the stand-ins' credentials. Lambda, in turn, never captures the
    // machine it runs on (its environment holds the function's own credentials).
    const embedded = process.env.PERSONA_RUNTIME === 'embedded';
    const reachable = (service: string) =>
      !embedded || process.env[`AWS_ENDPOINT_URL_${service}`] !== undefined;
    const ssm = reachable('SSM') ? traced(new SSMClient({})) : undefined;
    // The stack always sets it; the embedded runtime, which has no SSM, does not.
    const ssmOutputBucket = process.env[SSM_OUTPUT_BUCKET.env];
    const ssmOutput = ssmOutputBucket
      ? { bucket: ssmOutputBucket, prefix: SSM_OUTPUT_PREFIX, s3 }
      : undefined;
    const credentials = new Credentials({
      ...(reachable('SECRETS_MANAGER') ? { secretsManager: traced(new SecretsManagerClient({})) } : {}),
      ...(ssm ? { ssm } : {}),
      // Only where there is a KMS key to work with: the embedded runtime has none.
      ...(keyId ? { kms: traced(new KMSClient({})) } : {}),
      vault: async () => (await snapshots()).secrets,
    });
    captureDependencies = {
      hosts: hosts(),
      // Opened when first used: installing and removing an agent reach hosts through these
      // dependencies and are given neither the operations nor the profiles.
      get operations() {
        return operations();
      },
      get profiles() {
        return stores();
      },
      snapshots,
      transportFor: (host, parameters) =>
        transportFor(
          {
            credentials,
            ...(ssm ? { ssm } : {}),
            allowLocal: embedded,
            ...(ssmOutput ? { ssmOutput } : {}),
            hostKeys: (h) => new RegisteredHostKeys(hosts(), h.name),
          },
          host,
          parameters,
        ),
    };
  }
  return captureDependencies;
}
