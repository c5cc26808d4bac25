// What the clone task needs: everything a capture needs, and the journal, the inventory, the
// package store and the executors. Kept apart so that only the functions that change hosts
// bundle the orchestrator.
import { appendFile } from 'node:fs/promises';
import { EventBridgeClient, PutEventsCommand } from '@aws-sdk/client-eventbridge';
import { S3Client } from '@aws-sdk/client-s3';
import { OperationDocuments } from '../../core/clone/documents.js';
import type { CloneDeps, EventSink } from '../../core/clone/workflow.js';
import { debianExecutors, rhelExecutors } from '../../core/orchestrator/executors/index.js';
import { DynamoJournal } from '../../core/orchestrator/journal.js';
import { BareMetalInventory } from '../../core/platform/baremetal.js';
import { AptMirror } from '../../core/resolver/apt.js';
import { PackageStore } from '../../core/resolver/store.js';
import { S3ObjectStore } from '../../core/snapshot/object-store.js';
import { DATA_BUCKET, INVENTORY_TABLE, JOURNAL_TABLE } from '../../core/storage/definitions.js';
import { LocalTransport } from '../../core/transport/local.js';
import { captureDeps } from './capture.js';
import { ddb, getRequiredEnv } from './runtime.js';

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
  const client = new EventBridgeClient({});
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
  return r.exitCode === 0 ? new AptMirror(local) : undefined;
}

export function cloneDeps(): Promise<CloneDeps> {
  dependencies ??= (async () => {
    const capture = captureDeps();
    const doc = ddb();
    const s3 = new S3Client({ forcePathStyle: process.env.PERSONA_S3_PATH_STYLE === 'true' });
    const objects = new S3ObjectStore(s3, getRequiredEnv(DATA_BUCKET.env));
    const store = new PackageStore(objects);
    const mirror = await controlMirror();
    const events = eventSink();
    // Every package comes from Persona's store (filled from the control side's mirror where it
    // has one): targets with no route out get them as the others do. An rpm target is served
    // from the store alone until repositories are configured for the control side.
    const debian = debianExecutors({ store, ...(mirror ? { mirror } : {}), targetRepositories: 'offline' });
    const rhel = rhelExecutors({ store, targetRepositories: 'offline' });
    return {
      operations: capture.operations,
      hosts: capture.hosts,
      profiles: capture.profiles,
      snapshots: capture.snapshots,
      transportFor: capture.transportFor,
      documents: new OperationDocuments(objects),
      journal: new DynamoJournal(doc, getRequiredEnv(JOURNAL_TABLE.env)),
      inventory: new BareMetalInventory(doc, getRequiredEnv(INVENTORY_TABLE.env)),
      executors: (family) => (family === 'rpm' ? rhel : debian),
      packages: { store, ...(mirror ? { mirror } : {}) },
      ...(events ? { events } : {}),
    };
  })();
  return dependencies;
}
