// What every workflow task does around its own work. Step Functions and Lambda deliver a task
// at least once, and Step Functions gives up on a task at its TimeoutSeconds while the function
// may still be running: the operation record, not the delivery, says what is left to do.
import { isFinished, type Operation } from './schema.js';
import type { OperationStore } from './store.js';

/** Ran again for an operation that has already ended: nothing was done. */
export interface Redelivered {
  readonly operationId: string;
  readonly status: Operation['status'];
  readonly redelivered: true;
}

/** Runs `work` unless the operation has ended, in which case the task succeeds doing nothing. */
export async function unlessFinished<T>(
  operations: Pick<OperationStore, 'get'>,
  operationId: string,
  work: () => Promise<T>,
): Promise<T | Redelivered> {
  const op = await operations.get(operationId);
  if (isFinished(op.status)) return { operationId, status: op.status, redelivered: true };
  return work();
}

/** The error a workflow's Catch hands on: Step Functions' `Error` and `Cause`. */
export interface WorkflowError {
  readonly Error?: string | undefined;
  readonly Cause?: string | undefined;
}

// What Step Functions says when a task outlives its TimeoutSeconds, and what Lambda says when
// the function outlives its own timeout.
const TIMEOUT_ERRORS = new Set(['States.Timeout', 'Sandbox.Timedout', 'States.HeartbeatTimeout']);

/** The operation's error for what a workflow caught: a time-out says so; a function's error its message. */
export function describeWorkflowError(error: WorkflowError): { code: string; message: string } {
  const name = error.Error ?? 'INTERNAL';
  let message = error.Cause?.trim() ?? '';
  // A function's error arrives as the JSON Lambda reports: {"errorType", "errorMessage", "trace"}.
  try {
    const parsed = JSON.parse(message) as { errorMessage?: unknown };
    if (typeof parsed.errorMessage === 'string') message = parsed.errorMessage;
  } catch {
    // Not JSON: the cause is the message.
  }
  if (TIMEOUT_ERRORS.has(name) || /\btimed out\b/i.test(message)) {
    return {
      code: 'TIMEOUT',
      message: `timed out (${name}): ${message && message !== name ? message : 'the step did not finish within its time limit'}`,
    };
  }
  return { code: name, message: message || 'the workflow failed' };
}

/**
 * A workflow's failure path: the operation ends FAILED with what the workflow caught, and a
 * step left running (the function timed out or died before recording anything) is marked
 * failed with that reason. An operation that has ended already is left as it ended.
 */
export async function recordWorkflowFailure(
  deps: { readonly operations: OperationStore; readonly now?: () => Date },
  operationId: string,
  error: WorkflowError,
): Promise<Operation> {
  const op = await deps.operations.get(operationId);
  if (isFinished(op.status)) return op;
  return deps.operations.finish(
    operationId,
    { status: 'FAILED', error: describeWorkflowError(error) },
    deps.now?.() ?? new Date(),
  );
}
