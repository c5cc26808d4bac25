import middy from '@middy/core';
import * as z from 'zod';
import { failClone, rollbackClone, runCloneStep } from '../../../core/clone/workflow.js';
import { cloneDeps } from '../../shared/clone.js';
import { observability } from '../../shared/runtime.js';

const Input = z.discriminatedUnion('step', [
  z.object({
    operationId: z.string().min(1),
    step: z.enum(['validate', 'provision', 'poll', 'baseline', 'plan', 'apply', 'start', 'verify', 'record']),
  }),
  z.object({
    operationId: z.string().min(1),
    step: z.enum(['rollback', 'fail']),
    error: z.object({ Error: z.string().optional(), Cause: z.string().optional() }).default({}),
  }),
]);

// One function for every step of the clone workflow: the state names the step, the operation
// id names the clone, and the operation record and its documents hold everything else.
const handler = async (event: unknown) => {
  const input = Input.parse(event);
  const deps = await cloneDeps();
  if (input.step === 'fail') {
    const op = await failClone(deps, input.operationId, input.error);
    return { operationId: input.operationId, status: op.status };
  }
  if (input.step === 'rollback') {
    const done = await rollbackClone(deps, input.operationId, input.error);
    return { operationId: input.operationId, reverted: done.reverted, verified: done.verified };
  }
  return { operationId: input.operationId, ...(await runCloneStep(deps, input.operationId, input.step)) };
};

export const main = middy(handler).use(observability());
