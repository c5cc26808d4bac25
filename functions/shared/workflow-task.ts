// The one function every step of a workflow runs (clone, persona switch, morph): the state names
// the step, the operation id names the operation, and its documents hold everything else. A
// Catch hands Rollback (something may have changed) or Fail (nothing did) what it caught.
import middy from '@middy/core';
import * as z from 'zod';
import type { CaughtError } from '../../core/operation/endings.js';
import type { Operation } from '../../core/operation/schema.js';
import { observability } from './runtime.js';

export interface WorkflowTask<Deps, Step extends string, Rollback> {
  readonly steps: readonly [Step, ...Step[]];
  readonly deps: () => Promise<Deps>;
  readonly run: (deps: Deps, id: string, step: Step) => Promise<Record<string, unknown>>;
  readonly rollback: (deps: Deps, id: string, caught: CaughtError) => Promise<Rollback>;
  readonly fail: (deps: Deps, id: string, caught: CaughtError) => Promise<Operation>;
  /** What the Rollback state gets back (counts, not the document). */
  readonly rolledBack: (done: Rollback) => Record<string, unknown>;
}

export function workflowTask<Deps, Step extends string, Rollback>(task: WorkflowTask<Deps, Step, Rollback>) {
  const Step = z.object({ operationId: z.string().min(1), step: z.enum(task.steps) });
  const Ending = z.object({
    operationId: z.string().min(1),
    step: z.enum(['rollback', 'fail']),
    error: z.object({ Error: z.string().optional(), Cause: z.string().optional() }).default({}),
  });
  const handler = async (event: unknown) => {
    const ending = Ending.safeParse(event);
    // A malformed input fails before anything is opened.
    const input = ending.success ? undefined : Step.parse(event);
    const deps = await task.deps();
    if (ending.success) {
      const { operationId: id, step, error } = ending.data;
      return step === 'fail'
        ? { operationId: id, status: (await task.fail(deps, id, error)).status }
        : { operationId: id, ...task.rolledBack(await task.rollback(deps, id, error)) };
    }
    const { operationId, step } = input as z.infer<typeof Step>;
    return { operationId, ...(await task.run(deps, operationId, step as Step)) };
  };
  return { handler, main: middy(handler).use(observability()) };
}
