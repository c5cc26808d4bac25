// Starting a morph: the operation and its request document, nothing more. Kept apart from the
// workflow's steps so that the API function that starts a morph bundles none of the
// orchestrator, the capture or the transports.
import type { OperationDocuments } from '../clone/documents.js';
import type { Operation } from '../operation/schema.js';
import type { OperationStore } from '../operation/store.js';
import type { CriterionReason } from '../persona/schema.js';
import type { MorphLedger } from './ledger.js';
import { TargetProfile, Watch, type WatchOverride } from './target.js';

export const MORPH_STEPS = ['profile', 'target', 'delta', 'snapshot', 'apply', 'watch', 'record'] as const;
export type MorphStep = (typeof MORPH_STEPS)[number];

export const MORPH_TRIGGERS = ['manual', 'schedule', 'demand', 'detection', 'predicted'] as const;
export type MorphTrigger = (typeof MORPH_TRIGGERS)[number];

/** What a morph is asked: the host, the target's document as it was read, how to watch, and why. */
export interface MorphRequest {
  readonly host: string;
  readonly target: TargetProfile;
  readonly watch: Watch;
  readonly trigger: MorphTriggerRecord;
}

/** Why a morph started, as its operation's parameters keep it: the operator reads it there. */
export interface MorphTriggerRecord {
  readonly kind: MorphTrigger;
  readonly detail?: string;
  /** The morph policy that started it, when one did. */
  readonly policy?: string;
  /** The policy's decision: what held, with the values read. */
  readonly reasons?: readonly CriterionReason[];
}

export interface StartDeps {
  readonly operations: OperationStore;
  readonly documents: OperationDocuments;
  /** Where the host's last morph is noted, for policies' cool-down and detection. */
  readonly ledger?: Pick<MorphLedger, 'note'>;
  readonly now?: () => Date;
}

const isoNow = (deps: Pick<StartDeps, 'now'>) => deps.now?.() ?? new Date();

/** Records the operation and its request; the workflow does the rest. */
export async function startMorph(
  deps: StartDeps,
  id: string,
  request: { host: string; target: TargetProfile; watch?: WatchOverride; trigger: MorphRequest['trigger'] },
): Promise<{ operation: Operation; created: boolean }> {
  const target = TargetProfile.parse(request.target);
  const base = target.spec.watch ?? Watch.parse({});
  const over = request.watch ?? {};
  const watch = Watch.parse({
    ...base,
    ...over,
    tolerance: { ...base.tolerance, ...(over.tolerance ?? {}) },
  });
  const full: MorphRequest = { host: request.host, target, watch, trigger: request.trigger };
  const at = isoNow(deps).toISOString();
  const started = await deps.operations.start({
    id,
    kind: 'morph',
    host: request.host,
    status: 'PENDING',
    percent: 0,
    steps: MORPH_STEPS.map((name) => ({ name, status: 'PENDING' })),
    createdAt: at,
    updatedAt: at,
    parameters: {
      target: target.metadata.name,
      trigger: full.trigger,
      watch: { periodSeconds: watch.periodSeconds, samples: watch.samples, probe: watch.probe.kind },
    },
    revision: 0,
  });
  if (started.created) {
    await deps.documents.put(id, 'request', full);
    await deps.ledger?.note({
      host: request.host,
      operationId: id,
      target: target.metadata.name,
      at: Date.parse(at),
      trigger: full.trigger.kind,
      ...(full.trigger.policy === undefined ? {} : { policy: full.trigger.policy }),
    });
  }
  return started;
}
