// What the clone task needs: everything a capture needs, and the journal, the inventory, the
// package store and the executors. Kept apart so that only the functions that change hosts
// bundle the orchestrator.
import { appendFile } from 'node:fs/promises';
import { EventBridgeClient, PutEventsCommand } from '@aws-sdk/client-eventbridge';
import { S3Client } from '@aws-sdk/client-s3';
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import type { CloudPlatforms } from '../../core/clone/cloud.js';
import { OperationDocuments } from '../../core/clone/documents.js';
import type { CloneDeps, EventSink, TargetDocument } from '../../core/clone/workflow.js';
import { NotFoundError } from '../../core/errors.js';
import type { Executors } from '../../core/orchestrator/executors/index.js';
import { DynamoJournal } from '../../core/orchestrator/journal.js';
import { BareMetalInventory } from '../../core/platform/baremetal.js';
import { lazyAdaptor } from '../../core/platform/lazy.js';
import type { PlatformAdaptor, ProvisionHandle } from '../../core/platform/platform.js';
import type { AptMirror } from '../../core/resolver/apt.js';
import type { Family } from '../../core/resolver/manager.js';
import { PackageStore } from '../../core/resolver/store.js';
import { S3_CHECKSUMS, S3ObjectStore } from '../../core/snapshot/object-store.js';
import {
  DATA_BUCKET,
  INVENTORY_TABLE,
  JOURNAL_TABLE,
  SSM_OUTPUT_BUCKET,
  SSM_OUTPUT_PREFIX,
} from '../../core/storage/definitions.js';
import { loginKeyPair } from '../../core/transport/key-pair.js';
import { LocalTransport } from '../../core/transport/local.js';
import { captureDeps } from './capture.js';
import { ddb, getRequiredEnv, traced } from './runtime.js';

/** The bus clone outcomes go to, and the source they carry. */
export const EVENT_BUS = { env: 'PERSONA_EVENT_BUS', source: 'persona' } as const;

let dependencies: Promise<CloneDeps> | undefined;

function eventSink(): EventSink | undefined {
  // The embedded runtime has no EventBridge: it appends the same events to a file.
  const file = process.env.PERSONA_EVENTS_FILE;
  if (file)
    return {
      async publish(detailType, detail) {
        await appendFile(
          file,
          `${JSON.stringify({ source: EVENT_BUS.source, 'detail-type': detailType, detail })}\n`,
        );
      },
    };
  const bus = process.env[EVENT_BUS.env];
  if (!bus) return undefined;
  const client = traced(new EventBridgeClient({}));
  return {
    async publish(detailType, detail) {
      const out = await client.send(
        new PutEventsCommand({
          Entries: [
            {
              EventBusName: bus,
              Source: EVENT_BUS.source,
              DetailType: detailType,
              Detail: JSON.stringify(detail),
            },
          ],
        }),
      );
      if ((out.FailedEntryCount ?? 0) > 0)
        throw new Error(
          `EventBridge refused the event: ${out.Entries?.[0]?.ErrorMessage ?? 'no reason given'}`,
        );
    },
  };
}

/** The control side's own apt, where it has one (the embedded runtime, the CLI): a mirror for packages. */
async function controlMirror(): Promise<AptMirror | undefined> {
  if (process.env.PERSONA_RUNTIME !== 'embedded') return undefined;
  const local = new LocalTransport();
  const r = await local.run('command -v apt-get >/dev/null 2>&1 && command -v apt-cache >/dev/null 2>&1');
  if (r.exitCode !== 0) return undefined;
  const { AptMirror } = await import('../../core/resolver/apt.js');
  return new AptMirror(local);
}

/** The Secrets Manager secret holding the Azure service principal (infra/cloud.ts sets it). */
export const AZURE_CREDENTIALS_SECRET_ENV = 'PERSONA_AZURE_CREDENTIALS_SECRET';

/** What a platform factory is given: how to open the login key Persona made for a host. */
export interface PlatformKeys {
  privateKeyFor(handle: ProvisionHandle): Promise<string>;
}
export type PlatformsFactory = (keys: PlatformKeys) => CloudPlatforms;

let givenPlatforms: PlatformsFactory | undefined;

/**
 * The embedded runtime's own adaptors (startLocal's `platforms`), in place of those the
 * environment names: how it clones to clouds it is handed rather than reaches.
 */
export function useClonePlatforms(factory: PlatformsFactory | undefined): void {
  givenPlatforms = factory;
  dependencies = undefined;
}

/**
 * Azure, where the deployer stored a service principal in Secrets Manager as
 * `{"tenantId","clientId","clientSecret","subscriptionId"}`: read once per cold start, held in
 * memory only, handed to @azure/identity.
 */
async function azurePlatform(keys: PlatformKeys, secretId: string): Promise<PlatformAdaptor> {
  const out = await traced(new SecretsManagerClient({})).send(
    new GetSecretValueCommand({ SecretId: secretId }),
  );
  const parsed = JSON.parse(out.SecretString ?? '{}') as Record<string, unknown>;
  const field = (name: string) => {
    const value = parsed[name];
    if (typeof value !== 'string' || value === '')
      throw new Error(`the Azure credentials secret has no ${name}`);
    return value;
  };
  // The Azure SDK loads only where Azure is configured.
  const [
    { ComputeManagementClient },
    { NetworkManagementClient },
    { ClientSecretCredential },
    { AzurePlatform },
  ] = await Promise.all([
    import('@azure/arm-compute'),
    import('@azure/arm-network'),
    import('@azure/identity'),
    import('../../core/platform/azure.js'),
  ]);
  const credential = new ClientSecretCredential(field('tenantId'), field('clientId'), field('clientSecret'));
  const subscriptionId = field('subscriptionId');
  return new AzurePlatform({
    compute: new ComputeManagementClient(credential, subscriptionId),
    network: new NetworkManagementClient(credential, subscriptionId),
    subscriptionId,
    privateKeyFor: keys.privateKeyFor,
  });
}

/** Instance types to try after the one mapped from the source, comma-separated. */
export const EC2_PREFERRED_TYPES_ENV = 'PERSONA_EC2_PREFERRED_TYPES';

/**
 * The clouds this deployment provisions clones on. EC2 wherever AWS is reachable: always in
 * Lambda, and in the embedded runtime only through the SDK's own AWS_ENDPOINT_URL_EC2 and
 * AWS_ENDPOINT_URL_SSM (stand-ins), never the real endpoints with the stand-ins' credentials.
 */
function platforms(s3: S3Client, keys: PlatformKeys): CloudPlatforms {
  if (givenPlatforms) return givenPlatforms(keys);
  const embedded = process.env.PERSONA_RUNTIME === 'embedded';
  const reachable = (service: string) =>
    !embedded || process.env[`AWS_ENDPOINT_URL_${service}`] !== undefined;
  const out: { -readonly [K in keyof CloudPlatforms]: CloudPlatforms[K] } = {};
  const region = process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION;
  if (reachable('EC2') && reachable('SSM') && region) {
    const outputBucket = process.env[SSM_OUTPUT_BUCKET.env];
    // The deployer's own fallback after the mapped type (reserved or usual types), in order.
    const preferred = (process.env[EC2_PREFERRED_TYPES_ENV] ?? '')
      .split(',')
      .map((t) => t.trim())
      .filter((t) => t !== '');
    out.aws = lazyAdaptor('ec2', async () => {
      const [{ EC2Client }, { SSMClient }, { Ec2Platform }] = await Promise.all([
        import('@aws-sdk/client-ec2'),
        import('@aws-sdk/client-ssm'),
        import('../../core/platform/ec2.js'),
      ]);
      // The SDK's standard retry strategy handles throttling; five attempts ride out a burst.
      return new Ec2Platform({
        ec2: traced(new EC2Client({ maxAttempts: 5 })),
        ssm: traced(new SSMClient({ maxAttempts: 5 })),
        region,
        ...(preferred.length > 0 ? { preferredTypes: preferred } : {}),
        ...(outputBucket ? { ssmOutput: { bucket: outputBucket, prefix: SSM_OUTPUT_PREFIX, s3 } } : {}),
      });
    });
  }
  // The service principal is read, and the Azure SDK loaded, by the first call that needs them.
  const azureSecret = process.env[AZURE_CREDENTIALS_SECRET_ENV];
  if (azureSecret) out.azure = lazyAdaptor('azure', () => azurePlatform(keys, azureSecret));
  return out;
}

export function cloneDeps(): Promise<CloneDeps> {
  dependencies ??= (async () => {
    const capture = captureDeps();
    const doc = ddb();
    const s3 = traced(
      new S3Client({ ...S3_CHECKSUMS, forcePathStyle: process.env.PERSONA_S3_PATH_STYLE === 'true' }),
    );
    const objects = new S3ObjectStore(s3, getRequiredEnv(DATA_BUCKET.env));
    const store = new PackageStore(objects);
    const mirror = await controlMirror();
    const events = eventSink();
    const documents = new OperationDocuments(objects);
    // The login key of a provisioned host, sealed when it was made (core/clone/cloud.ts).
    const keys: PlatformKeys = {
      async privateKeyFor(handle) {
        const target = await documents.get<TargetDocument>(handle.operation, 'target');
        const credential = target.cloud?.credential;
        if (!credential)
          throw new NotFoundError(`operation ${handle.operation} made no login key`, handle.id);
        return (await capture.snapshots()).secrets.getText(credential.key, credential.digest);
      },
    };
    // Every package comes from Persona's store (filled from the control side's mirror where it
    // has one): targets with no route out get them as the others do. An rpm target is served
    // from the store alone until repositories are configured for the control side.
    // Built by the first step that plans or changes a host: the others never load them.
    let executors: Promise<{ debian: Executors; rhel: Executors }> | undefined;
    const executorsFor = async (family: Family | undefined) => {
      executors ??= import('../../core/orchestrator/executors/index.js').then((e) => ({
        debian: e.debianExecutors({ store, ...(mirror ? { mirror } : {}), targetRepositories: 'offline' }),
        rhel: e.rhelExecutors({ store, targetRepositories: 'offline' }),
      }));
      const built = await executors;
      return family === 'rpm' ? built.rhel : built.debian;
    };
    return {
      operations: capture.operations,
      hosts: capture.hosts,
      profiles: capture.profiles,
      snapshots: capture.snapshots,
      transportFor: capture.transportFor,
      documents,
      journal: new DynamoJournal(doc, getRequiredEnv(JOURNAL_TABLE.env)),
      inventory: new BareMetalInventory(doc, getRequiredEnv(INVENTORY_TABLE.env)),
      platforms: platforms(s3, keys),
      loginKeys: loginKeyPair,
      executors: executorsFor,
      packages: { store, ...(mirror ? { mirror } : {}) },
      ...(events ? { events } : {}),
    };
  })();
  return dependencies;
}
