// An operation: one run of a workflow (capture, clone, migrate, morph, activate), its steps,
// progress and result. Status values are shared by the API, the state machines and the CLI.
import * as z from 'zod';

export const OPERATION_KINDS = ['capture', 'clone', 'migrate', 'morph', 'activate'] as const;
// ROLLED_BACK: the operation failed (or was cancelled) after it changed a host, and every change
// it made was undone: the host is as it was before it started.
export const OPERATION_STATUSES = ['PENDING', 'RUNNING', 'SUCCEEDED', 'FAILED', 'ROLLED_BACK'] as const;
export const STEP_STATUSES = ['PENDING', 'RUNNING', 'SUCCEEDED', 'FAILED', 'SKIPPED'] as const;

export type OperationStatus = (typeof OPERATION_STATUSES)[number];
export type StepStatus = (typeof STEP_STATUSES)[number];

export const Step = z.object({
  name: z.string(),
  status: z.enum(STEP_STATUSES),
  startedAt: z.iso.datetime().optional(),
  endedAt: z.iso.datetime().optional(),
  detail: z.string().optional(),
});
export type Step = z.infer<typeof Step>;

export const Operation = z
  .object({
    id: z.string(),
    kind: z.enum(OPERATION_KINDS),
    host: z.string(),
    status: z.enum(OPERATION_STATUSES),
    /** 0–100: the share of steps finished. */
    percent: z.number().min(0).max(100),
    steps: z.array(Step),
    createdAt: z.iso.datetime(),
    updatedAt: z.iso.datetime(),
    /** How it was asked to run (e.g. whether a new host key may be recorded). */
    parameters: z.record(z.string(), z.unknown()).optional(),
    /** What the operation produced: ids and keys, never documents. */
    result: z.record(z.string(), z.unknown()).optional(),
    error: z
      .object({
        code: z.string(),
        message: z.string(),
        /** The step that failed, where the operation has steps. */
        step: z.string().optional(),
      })
      .optional(),
    /** Asked to stop (POST /operations/{id}/cancel): the workflow rolls back at its next check. */
    cancelRequestedAt: z.iso.datetime().optional(),
    /**
     * The Idempotency-Key of the request that started it, scoped as `<route>#<host>#<key>`: the
     * same key sent to another route or host names another operation.
     */
    idempotencyKey: z.string().optional(),
    /** SHA-256 of the request the key was first sent with (canonical JSON). */
    requestHash: z.string().optional(),
    /** Incremented by every update; updates are conditional on it, so none is lost. */
    revision: z.number().int().nonnegative(),
  })
  .meta({ id: 'Operation' });
export type Operation = z.infer<typeof Operation>;

/** An operation in one of these states has ended: nothing changes it any more. */
export const isFinished = (status: OperationStatus): boolean =>
  status === 'SUCCEEDED' || status === 'FAILED' || status === 'ROLLED_BACK';

/** How an operation ends: a result on success; an error (and what was undone) otherwise. */
export type OperationOutcome =
  | { status: 'SUCCEEDED'; result: Record<string, unknown> }
  | {
      status: 'FAILED' | 'ROLLED_BACK';
      error: { code: string; message: string; step?: string };
      result?: Record<string, unknown>;
    };

export const percentOf = (steps: readonly Step[]): number =>
  steps.length === 0
    ? 0
    : Math.round(
        (100 *
          steps.filter((s) => s.status === 'SUCCEEDED' || s.status === 'SKIPPED' || s.status === 'FAILED')
            .length) /
          steps.length,
      );
