import middy from '@middy/core';
import * as z from 'zod';
import { failMorph, MORPH_STEPS, rollbackMorph, runMorphStep } from '../../../core/morph/workflow.js';
import { observability } from '../../shared/runtime.js';
import { morphDeps } from './deps.js';

const Input = z.discriminatedUnion('step', [
  z.object({ operationId: z.string().min(1), step: z.enum(MORPH_STEPS) }),
  z.object({
    operationId: z.string().min(1),
    step: z.enum(['rollback', 'fail']),
    error: z.object({ Error: z.string().optional(), Cause: z.string().optional() }).default({}),
  }),
]);

// One function for every step of the morph workflow: the state names the step, the operation id
// names the morph, and the operation's documents hold everything else.
const handler = async (event: unknown) => {
  const input = Input.parse(event);
  const deps = await morphDeps();
  if (input.step === 'fail') {
    const op = await failMorph(deps, input.operationId, input.error);
    return { operationId: input.operationId, status: op.status };
  }
  if (input.step === 'rollback') {
    const done = await rollbackMorph(deps, input.operationId, input.error);
    return { operationId: input.operationId, reverted: done.reverted, failures: done.failures.length };
  }
  return { operationId: input.operationId, ...(await runMorphStep(deps, input.operationId, input.step)) };
};

export const main = middy(handler).use(observability());
