// What every function shares for the life of its execution environment: configuration read
// once from the environment, SDK clients built once and reused across invocations.

import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { KMSClient } from '@aws-sdk/client-kms';
import { S3Client } from '@aws-sdk/client-s3';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { ExecutionAlreadyExists, SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import { SSMClient } from '@aws-sdk/client-ssm';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { CaptureDeps } from '../../core/capture/operation.js';
import { Credentials, RegisteredHostKeys, transportFor } from '../../core/capture/reach.js';
import { DynamoHostRegistry, type HostRegistry } from '../../core/host/registry.js';
import { DynamoOperationStore, type OperationStore } from '../../core/operation/store.js';
import type { WorkflowName, WorkflowStarter } from '../../core/operation/workflows.js';
import { DynamoProfileStore } from '../../core/profile/dynamo-store.js';
import type { ProfileDeps } from '../../core/profile/service.js';
import { KmsKeyProvider, LocalKeyProvider } from '../../core/snapshot/keys.js';
import { S3ObjectStore } from '../../core/snapshot/object-store.js';
import { DynamoLocks, DynamoSnapshotRecords, type SnapshotRecords } from '../../core/snapshot/records.js';
import { SnapshotStore } from '../../core/snapshot/store.js';
import {
  DATA_BUCKET,
  HOSTS_TABLE,
  LOCKS_TABLE,
  OPERATIONS_TABLE,
  PROFILES_TABLE,
  SNAPSHOTS_TABLE,
} from '../../core/storage/definitions.js';

export const logger = new Logger({ serviceName: 'persona' });
// Published as embedded metric format through the function's logs: no PutMetricData calls,
// no extra permissions. Off in the embedded runtime (POWERTOOLS_DEV).
export const metrics = new Metrics({ namespace: 'Persona', serviceName: 'persona' });

/** Fails at cold start with the variable's name, not at the first request that needs it. */
export function getRequiredEnv(name: string): string {
  const value = process.env[name];
  if (value === undefined || value === '') throw new Error(`environment variable ${name} is not set`);
  return value;
}

let cached: ProfileDeps | undefined;
let records: SnapshotRecords | undefined;
let documentClient: DynamoDBDocumentClient | undefined;

const ddb = () => {
  documentClient ??= DynamoDBDocumentClient.from(new DynamoDBClient({}), {
    marshallOptions: { removeUndefinedValues: true },
  });
  return documentClient;
};

let hostRegistry: HostRegistry | undefined;
let operationStore: OperationStore | undefined;

export function hosts(): HostRegistry {
  hostRegistry ??= new DynamoHostRegistry(ddb(), getRequiredEnv(HOSTS_TABLE.env));
  return hostRegistry;
}

export function operations(): OperationStore {
  operationStore ??= new DynamoOperationStore(ddb(), getRequiredEnv(OPERATIONS_TABLE.env));
  return operationStore;
}

export function snapshotRecords(): SnapshotRecords {
  records ??= new DynamoSnapshotRecords(ddb(), getRequiredEnv(SNAPSHOTS_TABLE.env));
  return records;
}

export function stores(): ProfileDeps {
  if (cached === undefined) {
    const tableName = getRequiredEnv(PROFILES_TABLE.env);
    const bucketName = getRequiredEnv(DATA_BUCKET.env);
    // Endpoints come from the SDK's own AWS_ENDPOINT_URL_* variables; only the embedded
    // runtime sets them, and its S3-protocol server needs path-style addressing.
    const s3 = new S3Client({ forcePathStyle: process.env.PERSONA_S3_PATH_STYLE === 'true' });
    cached = { profiles: new DynamoProfileStore(ddb(), s3, { tableName, bucketName }) };
  }
  return cached;
}

let captureDependencies: CaptureDeps | undefined;

/** What a capture needs: every store, and how to reach hosts. */
export function captureDeps(): CaptureDeps {
  if (captureDependencies === undefined) {
    const doc = ddb();
    const s3 = new S3Client({ forcePathStyle: process.env.PERSONA_S3_PATH_STYLE === 'true' });
    const keyId = process.env.PERSONA_KEY_ID;
    const keys = keyId
      ? new KmsKeyProvider(new KMSClient({}), keyId)
      : new LocalKeyProvider(getRequiredEnv('PERSONA_KEYS_DIR'));
    let store: Promise<SnapshotStore> | undefined;
    const snapshots = () => {
      store ??= SnapshotStore.open({
        objects: new S3ObjectStore(s3, getRequiredEnv(DATA_BUCKET.env)),
        records: snapshotRecords(),
        locks: new DynamoLocks(doc, getRequiredEnv(LOCKS_TABLE.env)),
        keys,
      });
      return store;
    };
    const ssm = new SSMClient({});
    const credentials = new Credentials({
      secrets: new SecretsManagerClient({}),
      ssm,
      sealed: async (name) => (await snapshots()).getSecret(name),
    });
    captureDependencies = {
      hosts: hosts(),
      operations: operations(),
      profiles: stores(),
      snapshots,
      transportFor: (host, parameters) =>
        transportFor(
          { credentials, ssm, hostKeys: (h) => new RegisteredHostKeys(hosts(), h.name) },
          host,
          parameters,
        ),
    };
  }
  return captureDependencies;
}

let starter: WorkflowStarter | undefined;

/** The embedded runtime executes workflows itself and says so here. */
export function useWorkflowStarter(local: WorkflowStarter): void {
  starter = local;
}

export function workflows(): WorkflowStarter {
  if (starter === undefined) {
    const sfn = new SFNClient({});
    const arns: Record<WorkflowName, string> = { capture: getRequiredEnv('CAPTURE_STATE_MACHINE_ARN') };
    starter = {
      async start(workflow, input) {
        try {
          // Named after the operation: Step Functions itself refuses to start it twice.
          await sfn.send(
            new StartExecutionCommand({
              stateMachineArn: arns[workflow],
              name: input.operationId,
              input: JSON.stringify(input),
            }),
          );
        } catch (e) {
          if (!(e instanceof ExecutionAlreadyExists)) throw e;
        }
      },
    };
  }
  return starter;
}
