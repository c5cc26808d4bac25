// Starting a morph, wherever it is asked (POST /hosts/{host}/morph, a morph policy): the
// target's document read now and kept with the operation (editing its YAML later does not
// change a morph under way), the operation and its request, the host's last morph noted for
// the policies' cool-down, and the workflow started. Nothing of the morph's own task
// (transports, the snapshot store) is imported here.
import { DynamoMorphLedger, type MorphLedger } from '../../core/morph/ledger.js';
import { type MorphTriggerRecord, startMorph } from '../../core/morph/start.js';
import type { WatchOverride } from '../../core/morph/target.js';
import type { Operation } from '../../core/operation/schema.js';
import type { OperationStore } from '../../core/operation/store.js';
import { OPERATIONS_TABLE } from '../../core/storage/definitions.js';
import { cloneDocuments } from './documents.js';
import { targetCatalog } from './morph-targets.js';
import { ddb, getRequiredEnv } from './runtime.js';
import { workflows } from './workflows.js';

let ledger: MorphLedger | undefined;

/** Each host's last morph, beside the operations. */
export function morphLedger(): MorphLedger {
  ledger ??= new DynamoMorphLedger(ddb(), getRequiredEnv(OPERATIONS_TABLE.env));
  return ledger;
}

/** Starts (or, for an id that exists, finds) the morph of `request.host` toward a target by name. */
export async function startHostMorph(
  operations: OperationStore,
  id: string,
  request: {
    readonly host: string;
    readonly target: string;
    readonly watch?: WatchOverride;
    readonly trigger: MorphTriggerRecord;
  },
): Promise<{ operation: Operation; created: boolean }> {
  const target = await targetCatalog().get(request.target);
  const started = await startMorph({ operations, documents: cloneDocuments(), ledger: morphLedger() }, id, {
    host: request.host,
    target,
    ...(request.watch ? { watch: request.watch } : {}),
    trigger: request.trigger,
  });
  // A PENDING operation found again is one whose workflow may not have started: start it (the
  // same name twice is one execution).
  if (started.operation.status === 'PENDING') await workflows().start('morph', { operationId: id });
  return started;
}
