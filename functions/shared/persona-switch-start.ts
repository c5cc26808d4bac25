// Starting a persona switch from where evaluation runs (POST /signals, POST /metrics, the
// triggers' evaluate function): the operation, its request document and the workflow's start.
// Nothing of what the switch's own task needs (transports, the snapshot store, ssh2 and its
// native add-ons) is imported here, so that an API function's bundle stays small and builds.
import { randomUUID } from 'node:crypto';
import { S3Client } from '@aws-sdk/client-s3';
import { OperationDocuments } from '../../core/clone/documents.js';
import { operationIdFor } from '../../core/operation/idempotency.js';
import type { PersonaSwitchRequest } from '../../core/persona/service.js';
import { startSwitch } from '../../core/persona/switch-start.js';
import { S3_CHECKSUMS, S3ObjectStore } from '../../core/snapshot/object-store.js';
import { DATA_BUCKET } from '../../core/storage/definitions.js';
import { getRequiredEnv, operations, personas } from './runtime.js';
import { workflows } from './workflows.js';

let documents: OperationDocuments | undefined;

function operationDocuments(): OperationDocuments {
  documents ??= new OperationDocuments(
    new S3ObjectStore(
      new S3Client({ ...S3_CHECKSUMS, forcePathStyle: process.env.PERSONA_S3_PATH_STYLE === 'true' }),
      getRequiredEnv(DATA_BUCKET.env),
    ),
  );
  return documents;
}

/**
 * Starts a switch of `request.host` to a persona version (or back to its default), as
 * functions/shared/persona-switch.ts does, under the same operation id for the same key: the
 * persona's document is read now and kept with the operation, so a later version does not move
 * a switch under way.
 */
export async function startPersonaSwitch(request: PersonaSwitchRequest): Promise<{ operationId: string }> {
  const operationId =
    request.idempotencyKey === undefined
      ? randomUUID()
      : operationIdFor(`persona-switch#${request.host}#${request.idempotencyKey}`);
  const persona =
    request.to === null ? null : (await personas().getVersion(request.to.name, request.to.version)).persona;
  const started = await startSwitch(
    { operations: operations(), documents: operationDocuments() },
    operationId,
    {
      host: request.host,
      to: request.to,
      decision: request.decision,
      persona,
    },
  );
  if (started.operation.status === 'PENDING') await workflows().start('persona-switch', { operationId });
  return { operationId };
}
