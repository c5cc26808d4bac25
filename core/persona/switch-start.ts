// A persona switch as the API starts it: the operation and its request recorded, nothing else.
// Apart from switch.ts so that what starts a switch does not bundle what runs one.
import type { OperationDocuments } from '../clone/documents.js';
import type { Operation } from '../operation/schema.js';
import type { OperationStore } from '../operation/store.js';
import type { Decision, Persona } from './schema.js';

export const SWITCH_STEPS = ['validate', 'baseline', 'plan', 'resize', 'apply', 'verify', 'record'] as const;
export type SwitchStep = (typeof SWITCH_STEPS)[number];

/** What a switch is asked: the host, the persona (null: back to the host's default), and why. */
export interface SwitchRequest {
  readonly host: string;
  readonly to: { readonly name: string; readonly version: number } | null;
  readonly decision: Decision;
  /** The persona's document as it was read when the switch was asked: later versions do not move it. */
  readonly persona: Persona | null;
}

/** Records the operation and its request; the workflow does the rest. */
export async function startSwitch(
  deps: {
    readonly operations: OperationStore;
    readonly documents: OperationDocuments;
    readonly now?: () => Date;
  },
  id: string,
  request: SwitchRequest,
): Promise<{ operation: Operation; created: boolean }> {
  const at = (deps.now?.() ?? new Date()).toISOString();
  const started = await deps.operations.start({
    id,
    kind: 'activate',
    host: request.host,
    status: 'PENDING',
    percent: 0,
    steps: SWITCH_STEPS.map((name) => ({ name, status: 'PENDING' })),
    createdAt: at,
    updatedAt: at,
    parameters: {
      persona: request.to,
      decision: {
        action: request.decision.action,
        at: request.decision.at,
        from: request.decision.from,
        to: request.decision.to,
        mode: request.decision.mode,
        summary: request.decision.summary,
        reasons: request.decision.reasons.slice(0, 20),
      },
    },
    revision: 0,
  });
  if (started.created) await deps.documents.put(id, 'request', request);
  return started;
}
