// How a workflow's operation ends when a step failed: what the clone, the persona switch and the
// morph share. A failure before anything changed ends FAILED; one after ends, once Rollback has
// done what it could, ROLLED_BACK when it put everything back and FAILED with
// ROLLBACK_INCOMPLETE (naming what it could not) when it did not. Either way the step that
// failed is marked with the reason, and an operation that has ended already is left as it ended.
import type { Operation } from './schema.js';
import { isFinished } from './schema.js';
import type { OperationStore } from './store.js';

/** What a Step Functions Catch hands on: the error's name and its cause (often JSON). */
export interface CaughtError {
  readonly Error?: string | undefined;
  readonly Cause?: string | undefined;
}

export interface FailureReason {
  readonly code: string;
  readonly message: string;
}

/**
 * The code and message of a caught error: a domain code as it was thrown (INVALID_INPUT,
 * CONFLICT, ...), TIMEOUT for a state that timed out, a workflow's own error names mapped by
 * `named`, else the error's name; the message from a Lambda error's JSON cause, or the cause.
 */
export function reasonOf(error: CaughtError, named: Readonly<Record<string, string>> = {}): FailureReason {
  let message = error.Cause?.trim() ?? '';
  try {
    const parsed = JSON.parse(message) as { errorMessage?: unknown };
    if (typeof parsed.errorMessage === 'string') message = parsed.errorMessage;
  } catch {
    // The cause is the message.
  }
  const name = error.Error ?? '';
  const code = /^[A-Z_]+$/.test(name)
    ? name
    : (named[name] ?? (name === 'States.Timeout' ? 'TIMEOUT' : name || 'INTERNAL'));
  return { code, message: message || code };
}

/** The step a failure happened in: the one running, else the first. */
export const failedStepOf = (op: Operation, first: string): string =>
  op.steps.find((s) => s.status === 'RUNNING')?.name ?? first;

export const rollbackKeyOf = (id: string) => `operations/${id}/rollback.json`;

/**
 * A failure before anything changed: the step and the operation FAILED with the reason.
 * `before` runs first (putting back what evaluation recorded, say) when the operation is open.
 */
export async function failBeforeChange(
  operations: Pick<OperationStore, 'get' | 'step' | 'finish'>,
  id: string,
  caught: CaughtError,
  options: { readonly firstStep: string; readonly now: () => Date; readonly before?: () => Promise<void> },
): Promise<{ readonly operation: Operation; readonly ended: boolean }> {
  const op = await operations.get(id);
  if (isFinished(op.status)) return { operation: op, ended: false };
  const reason = reasonOf(caught);
  const step = failedStepOf(op, options.firstStep);
  await options.before?.();
  await operations.step(id, step, 'FAILED', options.now(), reason.message);
  const operation = await operations.finish(
    id,
    { status: 'FAILED', error: { code: reason.code, message: reason.message, step } },
    options.now(),
  );
  return { operation, ended: true };
}

/**
 * The end after Rollback: ROLLED_BACK with the failed step and reason when `problems` is empty,
 * else FAILED with ROLLBACK_INCOMPLETE naming the first few (`what` says what was not brought
 * back: "the target", "everything").
 */
export async function endAfterRollback(
  operations: Pick<OperationStore, 'step' | 'finish'>,
  id: string,
  ending: {
    readonly failedStep: string;
    readonly reason: FailureReason;
    readonly reverted: number;
    readonly problems: readonly string[];
    readonly incomplete: string;
    readonly now: () => Date;
  },
): Promise<Operation> {
  const { failedStep, reason } = ending;
  await operations.step(id, failedStep, 'FAILED', ending.now(), reason.message).catch(() => undefined);
  return operations.finish(
    id,
    ending.problems.length === 0
      ? {
          status: 'ROLLED_BACK',
          error: { code: reason.code, message: reason.message, step: failedStep },
          result: { rollback: rollbackKeyOf(id), reverted: ending.reverted },
        }
      : {
          status: 'FAILED',
          error: {
            code: 'ROLLBACK_INCOMPLETE',
            message: `${failedStep} failed (${reason.message}) and the rollback ${ending.incomplete}: ${ending.problems
              .slice(0, 5)
              .join('; ')}`,
            step: failedStep,
          },
          result: { rollback: rollbackKeyOf(id) },
        },
    ending.now(),
  );
}

/** A rollback failure as the endings name it. */
export const problemOf = (f: { readonly kind: string; readonly key: string; readonly error: string }) =>
  `${f.kind} ${f.key}: ${f.error}`;
