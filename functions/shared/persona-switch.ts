// Starting a persona switch and what its task needs: the clone task's dependencies (hosts,
// transports, snapshots for the baseline capture, the journal, the executors, the platforms that
// resize), the host's default and persona state, and CloudWatch for an EC2 host's thresholds.
import { randomUUID } from 'node:crypto';
import { CloudWatchClient } from '@aws-sdk/client-cloudwatch';
import { operationIdFor } from '../../core/operation/idempotency.js';
import type { Decision } from '../../core/persona/schema.js';
import {
  DynamoDefaultsStore,
  type SwitchDeps,
  type SwitchRequest,
  startSwitch,
} from '../../core/persona/switch.js';
import { HOST_PERSONAS_TABLE } from '../../core/storage/definitions.js';
import { cloneDeps } from './clone.js';
import { ddb, getRequiredEnv, hostPersonas, personas, traced } from './runtime.js';
import { workflows } from './workflows.js';

export interface PersonaSwitchRequest {
  readonly host: string;
  /** null: back to the host's default. */
  readonly to: { readonly name: string; readonly version: number } | null;
  /** Why, recorded with the operation. */
  readonly decision: Decision;
  readonly idempotencyKey?: string;
}

let own: { defaults: DynamoDefaultsStore; cloudwatch: CloudWatchClient | undefined } | undefined;

/**
 * CloudWatch where the deployment reaches AWS: in Lambda, and in the embedded runtime only
 * through AWS_ENDPOINT_URL_CLOUDWATCH (a stand-in), never the real endpoint.
 */
function cloudwatch(): CloudWatchClient | undefined {
  const embedded = process.env.PERSONA_RUNTIME === 'embedded';
  if (embedded && process.env.AWS_ENDPOINT_URL_CLOUDWATCH === undefined) return undefined;
  return traced(new CloudWatchClient({ maxAttempts: 5 }));
}

/**
 * The clone task's dependencies as they are now (the embedded runtime may hand the clone its own
 * platforms: useClonePlatforms), with the switch's own stores.
 */
export async function personaSwitchDeps(): Promise<SwitchDeps> {
  const clone = await cloneDeps();
  own ??= {
    defaults: new DynamoDefaultsStore(ddb(), getRequiredEnv(HOST_PERSONAS_TABLE.env)),
    cloudwatch: cloudwatch(),
  };
  return {
    operations: clone.operations,
    hosts: clone.hosts,
    documents: clone.documents,
    journal: clone.journal,
    snapshots: clone.snapshots,
    transportFor: clone.transportFor,
    executors: clone.executors,
    ...(clone.platforms ? { platforms: clone.platforms } : {}),
    defaults: own.defaults,
    hostPersonas: hostPersonas(),
    ...(own.cloudwatch ? { cloudwatch: own.cloudwatch } : {}),
  };
}

/**
 * Starts a switch of `request.host` to a persona version (or back to its default). The persona's
 * document is read from the persona store now and kept with the operation, so that a version
 * written later does not change a switch under way. With an idempotency key, the same request
 * finds the operation it started.
 */
export async function startPersonaSwitch(request: PersonaSwitchRequest): Promise<{ operationId: string }> {
  const deps = await personaSwitchDeps();
  const operationId =
    request.idempotencyKey === undefined
      ? randomUUID()
      : operationIdFor(`persona-switch#${request.host}#${request.idempotencyKey}`);
  const persona =
    request.to === null ? null : (await personas().getVersion(request.to.name, request.to.version)).persona;
  const switchRequest: SwitchRequest = {
    host: request.host,
    to: request.to,
    decision: request.decision,
    persona,
  };
  const started = await startSwitch(deps, operationId, switchRequest);
  if (started.operation.status === 'PENDING') await workflows().start('persona-switch', { operationId });
  return { operationId };
}
