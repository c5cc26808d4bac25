import middy from '@middy/core';
import * as z from 'zod';
import { failSwitch, rollbackSwitch, runSwitchStep, SWITCH_STEPS } from '../../../core/persona/switch.js';
import { personaSwitchDeps } from '../../shared/persona-switch.js';
import { observability } from '../../shared/runtime.js';

const Input = z.discriminatedUnion('step', [
  z.object({ operationId: z.string().min(1), step: z.enum(SWITCH_STEPS) }),
  z.object({
    operationId: z.string().min(1),
    step: z.enum(['rollback', 'fail']),
    error: z.object({ Error: z.string().optional(), Cause: z.string().optional() }).default({}),
  }),
]);

// One function for every step of the persona-switch workflow: the state names the step, the
// operation id names the switch, and the operation's documents hold everything else.
const handler = async (event: unknown) => {
  const input = Input.parse(event);
  const deps = await personaSwitchDeps();
  if (input.step === 'fail') {
    const op = await failSwitch(deps, input.operationId, input.error);
    return { operationId: input.operationId, status: op.status };
  }
  if (input.step === 'rollback') {
    const done = await rollbackSwitch(deps, input.operationId, input.error);
    return { operationId: input.operationId, reverted: done.reverted, failures: done.failures.length };
  }
  return { operationId: input.operationId, ...(await runSwitchStep(deps, input.operationId, input.step)) };
};

export const main = middy(handler).use(observability());
