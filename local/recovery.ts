// What the embedded runtime does, once at start, for operations an earlier run left open. Its
// executions lived in that process and died with it (a crash, a kill, a power cut), so nothing
// would ever end them, and a host could stay half-changed. In AWS, Step Functions' Catch and the
// abandoned-operation sweeper see to it; here:
//
//   RUNNING   handed to its workflow's own failure path, as a Catch would: Rollback where the
//             operation may have changed a host (clone, migrate, persona switch, morph: their
//             journals in DynamoDB say what to undo), the catch-all for a capture, which changes
//             no host. The operation ends ROLLED_BACK (or FAILED) with code WORKFLOW_ABORTED.
//   PENDING   its workflow never started: started now, as a retried request would start it.
import { randomUUID } from 'node:crypto';
import type { Context } from 'aws-lambda';
import type { Operation } from '../core/operation/schema.js';
import type { OperationStore } from '../core/operation/store.js';
import type { WorkflowName, WorkflowStarter } from '../core/operation/workflows.js';
import { lambdaContext } from './http.js';

type StepHandler = (event: unknown, context: Context) => Promise<unknown>;

/** The workflow each kind of operation runs. */
const WORKFLOW_OF: Readonly<Record<Operation['kind'], WorkflowName>> = {
  capture: 'capture',
  clone: 'clone',
  migrate: 'clone',
  activate: 'persona-switch',
  morph: 'morph',
};

/** The task function whose failure path ends an interrupted operation of each workflow. */
const FAILURE_PATH: Readonly<Record<WorkflowName, { fn: string; step?: 'rollback' }>> = {
  capture: { fn: 'fail-operation' },
  clone: { fn: 'clone', step: 'rollback' },
  'persona-switch': { fn: 'persona-switch', step: 'rollback' },
  morph: { fn: 'morph', step: 'rollback' },
};

export const INTERRUPTED = {
  Error: 'WORKFLOW_ABORTED',
  Cause:
    'the embedded runtime stopped while this operation ran; what it had done was undone when the runtime started again',
} as const;

export interface Recovered {
  readonly id: string;
  readonly kind: Operation['kind'];
  /** rolled-back: its failure path ran; restarted: its workflow was started; failed: see error. */
  readonly outcome: 'rolled-back' | 'restarted' | 'failed';
  readonly status?: Operation['status'];
  readonly error?: string;
}

export interface RecoveryDeps {
  readonly operations: Pick<OperationStore, 'list' | 'get'>;
  readonly workflows: WorkflowStarter;
  /** The task function of a workflow, as the workflows bind it. */
  readonly task: (fn: string) => Promise<StepHandler>;
}

async function open(operations: RecoveryDeps['operations'], status: 'RUNNING' | 'PENDING') {
  const found: Operation[] = [];
  let cursor: string | undefined;
  do {
    const page = await operations.list({ limit: 100, cursor, status });
    found.push(...page.items);
    cursor = page.nextCursor;
  } while (cursor !== undefined);
  return found;
}

/** What an earlier run left open. Read before this run takes requests: only those are its own to end. */
export async function findInterrupted(
  operations: RecoveryDeps['operations'],
): Promise<{ readonly running: readonly Operation[]; readonly pending: readonly Operation[] }> {
  return { running: await open(operations, 'RUNNING'), pending: await open(operations, 'PENDING') };
}

/** Ends or restarts every operation `found` names, one at a time. */
export async function recoverInterrupted(
  deps: RecoveryDeps,
  found: Awaited<ReturnType<typeof findInterrupted>>,
): Promise<Recovered[]> {
  const out: Recovered[] = [];
  for (const op of found.running) {
    const path = FAILURE_PATH[WORKFLOW_OF[op.kind]];
    try {
      const handler = await deps.task(path.fn);
      await handler(
        { operationId: op.id, ...(path.step ? { step: path.step } : {}), error: INTERRUPTED },
        lambdaContext(path.fn, randomUUID(), 900_000),
      );
      const after = await deps.operations.get(op.id);
      out.push({ id: op.id, kind: op.kind, outcome: 'rolled-back', status: after.status });
    } catch (e) {
      out.push({ id: op.id, kind: op.kind, outcome: 'failed', error: (e as Error).message });
    }
  }
  for (const op of found.pending) {
    try {
      await deps.workflows.start(WORKFLOW_OF[op.kind], { operationId: op.id });
      out.push({ id: op.id, kind: op.kind, outcome: 'restarted' });
    } catch (e) {
      out.push({ id: op.id, kind: op.kind, outcome: 'failed', error: (e as Error).message });
    }
  }
  return out;
}
